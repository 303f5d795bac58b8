"""Notebook 10, section 3 (fine-grained retrieval): re-rank the plain model's top 10 with
predicted attributes.

The learner takes ``challenge_plain``'s image -> image scores on the evaluation scenes,
keeps each query's top ``k`` gallery items (own scene left out), adds ``w`` times the cosine
between the query's and the item's predicted class attributes (``challenge_attributes``'s
attribute head, sigmoid, the shape/colour/texture columns), re-sorts those ``k`` and reports
R@1 over the queries whose class has a sibling.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from mmkit.challenges.data import eval_scenes
from mmkit.challenges.fine_grained import (
    CLASS_ATTRIBUTE_COLUMNS,
    embed_model,
    has_sibling,
    load_model,
)
from mmkit.exercises import Feedback, close, not_answered, number

__all__ = [
    "attribute_vectors",
    "check_attribute_rerank",
    "rerank_hits",
    "rerank_sibling_r1",
    "solution_attribute_rerank",
]


def attribute_vectors(images: np.ndarray) -> np.ndarray:
    """Unit-length predicted class attributes float32 [N, 22]: the sigmoid of
    ``challenge_attributes``'s attribute head on uint8 ``images`` [N, H, W, 3], shape,
    colour and texture columns only."""
    logits = load_model("challenge_attributes").predict(images, "attribute")
    p = 1.0 / (1.0 + np.exp(-logits[:, CLASS_ATTRIBUTE_COLUMNS]))
    return (p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)


def rerank_hits(scores: np.ndarray, attrs: np.ndarray, labels: np.ndarray,
                w: float = 1.0, k: int = 10) -> np.ndarray:
    """bool [N]: whether each query's new top 1 has its class after re-ranking its top ``k``.

    ``scores`` float [N, N]: image -> image cosines over one set of scenes (a scene is its own
    query's gallery item: the diagonal is left out); ``attrs`` float [N, A] unit attribute
    vectors; ``labels`` int [N]. Each of the top ``k`` (ties by gallery position) gets
    ``score + w * attrs[q] @ attrs[g]`` and the best of them is the new top 1."""
    s = np.array(scores, np.float64)
    attrs = np.asarray(attrs, np.float64)
    np.fill_diagonal(s, -np.inf)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]                  # [N, k]
    rows = np.arange(len(s))[:, None]
    boosted = s[rows, top] + w * np.einsum("nd,nkd->nk", attrs, attrs[top])
    best = top[np.arange(len(s)), np.argmax(boosted, axis=1)]
    return labels[best] == labels


def rerank_sibling_r1(scores: np.ndarray, attrs: np.ndarray, labels: np.ndarray,
                      w: float = 1.0, k: int = 10) -> float:
    """R@1 over the queries whose class has a sibling after :func:`rerank_hits`."""
    return float(rerank_hits(scores, attrs, labels, w, k)[has_sibling()[labels]].mean())


@lru_cache(maxsize=1)
def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``challenge_plain``'s image -> image cosines [441, 441] on the evaluation scenes, the
    attribute vectors [441, 22] and the labels [441] (computed once per process; read-only)."""
    sc = eval_scenes()
    z = embed_model("challenge_plain", sc.images)
    out = (z @ z.T, attribute_vectors(sc.images), sc.labels.copy())
    for a in out:
        a.flags.writeable = False
    return out


def solution_attribute_rerank(w: float = 1.0, k: int = 10) -> float:
    """A solution: R@1 on sibling-class queries of ``challenge_plain`` on the evaluation
    scenes after re-ranking its top ``k`` with ``w`` x the cosine of the predicted attributes
    of ``challenge_attributes``."""
    sc = eval_scenes()
    z = embed_model("challenge_plain", sc.images)
    logits = load_model("challenge_attributes").predict(sc.images, "attribute")
    p = 1 / (1 + np.exp(-logits[:, :22]))                 # shape, colour, texture columns
    a = (p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float64)
    s = (z @ z.T).astype(np.float64)
    np.fill_diagonal(s, -np.inf)                          # a scene does not retrieve itself
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    new = s[np.arange(len(s))[:, None], top] + w * (a[:, None, :] * a[top]).sum(-1)
    best = top[np.arange(len(s)), new.argmax(1)]
    sib = has_sibling()[sc.labels]
    return float((sc.labels[best] == sc.labels)[sib].mean())


def check_attribute_rerank(answer: float | None, w: float = 1.0, k: int = 10) -> Feedback:
    """Exercise: R@1 on the sibling-class queries of ``challenge_plain`` after re-ranking its
    top ``k`` with ``w`` x the cosine of ``challenge_attributes``'s predicted attributes
    (tolerance 1e-6)."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None or not 0 <= value <= 1:
        return Feedback(False, f"answer with R@1, a number between 0 and 1, got {answer!r}")
    scores, attrs, labels = _inputs()
    expected = rerank_sibling_r1(scores, attrs, labels, w, k)
    before = rerank_sibling_r1(scores, attrs, labels, 0.0, k)
    if close(value, expected, 1e-6):
        change = "raises" if expected > before else "does not raise"
        return Feedback(True, f"re-ranking the top {k} with the attributes {change} R@1 on "
                              f"sibling classes: {before:.3f} -> {expected:.3f}")
    if close(value, before, 1e-6):
        return Feedback(False, "that is R@1 before re-ranking: add w * (cosine of the two "
                               "attribute vectors) to each of the top-k scores, then take "
                               "the best of those k")
    if close(value, float(rerank_hits(scores, attrs, labels, w, k).mean()), 1e-6):
        return Feedback(False, "that is R@1 over every query: keep only the queries whose "
                               "class has a sibling (fine_grained.has_sibling()[labels])")
    return Feedback(False, "keep only the queries whose class has a sibling "
                           "(fine_grained.has_sibling()[labels]); leave each query's own scene "
                           "out (diagonal = -inf); use sigmoid(attribute logits)[:, :22], "
                           "unit length")
