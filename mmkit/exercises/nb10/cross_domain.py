"""Exercise of notebook 10, section 1 (cross-domain retrieval): a style-normalised embedding.

The learner subtracts each style's mean embedding from that style's embeddings of the
evaluation scenes, renormalises the rows, and reports photo -> sketch R@1 of the committed
``challenge_photo`` model; the checker recomputes it with
:func:`mmkit.challenges.cross_domain.normalise_styles`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from mmkit.challenges.cross_domain import (cross_style_run, normalise_styles,
                                          style_embeddings)
from mmkit.challenges.data import eval_scenes
from mmkit.checkpoints import load
from mmkit.exercises import Feedback, close, not_answered, number

MODEL = "challenge_photo"
QUERY, GALLERY = "photo", "sketch"


@lru_cache(maxsize=1)
def _embeddings(name: str = MODEL) -> dict[str, np.ndarray]:
    model, _ = load(name, progress=False)
    return style_embeddings(model)


def _r1(embeddings: dict[str, np.ndarray], query: str = QUERY, gallery: str = GALLERY) -> float:
    return cross_style_run(embeddings, query, gallery).r1


def solution_style_normalised_r1(embeddings: dict[str, np.ndarray] | None = None) -> float:
    """Exercise 1, a worked solution: pass the notebook's ``emb["challenge_photo"]`` (a dict
    ``{style: [441, 128]}``, the evaluation scenes in the same order in every style)."""
    emb = _embeddings() if embeddings is None else embeddings
    norm = {}
    for style, e in emb.items():
        centred = e - e.mean(axis=0, keepdims=True)                     # remove the style's mean
        norm[style] = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    scores = norm[QUERY] @ norm[GALLERY].T                              # [441, 441]
    np.fill_diagonal(scores, -np.inf)                                   # same scene: left out
    labels = eval_scenes().labels
    return float(np.mean(labels[scores.argmax(axis=1)] == labels))


def check_style_normalised_r1(answer: float | None) -> Feedback:
    """The learner's photo -> sketch R@1 of ``challenge_photo`` after subtracting each style's
    mean embedding and renormalising (tolerance 1e-4: one query of 441 is 0.0023)."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None or not 0 <= value <= 1:
        return Feedback(False, f"answer with an R@1 between 0 and 1, got {answer!r}")
    emb = _embeddings()
    expected = _r1(normalise_styles(emb))
    plain = _r1(emb)
    if close(value, expected, 1e-4):
        return Feedback(True, f"photo -> sketch R@1 goes from {plain:.3f} to {expected:.3f} "
                              "with each style's mean removed")
    centred = {s: e - e.mean(0, keepdims=True) for s, e in emb.items()}
    hints = [(plain, "that is the R@1 of the raw embeddings; subtract each style's mean first"),
             (_r1(centred), "centred but not renormalised: divide every row by its length"),
             (_r1(normalise_styles(emb), GALLERY, QUERY),
              "that is sketch -> photo; the queries are the photos, the gallery the sketches")]
    for wrong, hint in hints:
        if close(value, wrong, 1e-4) and not close(wrong, expected, 1e-4):
            return Feedback(False, hint)
    return Feedback(False, "per style: e - e.mean(0), then divide rows by their norm; score "
                           "with cross_style_run(emb, 'photo', 'sketch').r1")
