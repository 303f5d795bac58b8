"""Cross-domain retrieval: a query drawn in one style, a gallery drawn in another.

The world can draw the *same* evaluation scene as a photo, a sketch or a painting
(:func:`~mmkit.challenges.data.eval_scenes`), so the domain gap is measured with only the style
changing. Checkpoints (``mmkit train NAME``):

- ``challenge_photo``: labelled photos only (the source domain);
- ``challenge_style_aug``: photos only, with the photometric :func:`~mmkit.challenges.data.
  style_augment` on every batch (knows nothing of how sketches and paintings are drawn);
- ``challenge_dann``: photos only, plus unlabelled sketches and paintings of another fresh
  world fed to a style classifier behind the gradient reversal layer (DANN; Ganin &
  Lempitsky 2015);
- ``challenge_all_styles``: labelled data in all three styles (what labelled target data
  would give: the reference).

Measurements:

- :func:`style_embeddings`: the evaluation scenes embedded in every style;
- :func:`style_matrix`: query style x gallery style R@1 and mAP (query's own scene excluded);
- :func:`domain_gap`: mean cross-style vs mean same-style R@1, their ratio, and how far apart
  the styles sit in the embedding (centroid gap and a linear style probe);
- :func:`sibling_breakdown`: cross-style R@1 of the classes whose sibling differs in colour,
  texture, shape or size.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mmkit.challenges.data import STYLES, eval_scenes, style_index
from mmkit.challenges.evaluate import ClassRetrieval, class_retrieval
from mmkit.challenges.model import ChallengeNet
from mmkit.challenges.training import challenge_spec
from mmkit.data import vocab as V
from mmkit.errors import InputError
from mmkit.scoring import modality_gap, modality_probe

PHOTO_ONLY = (1.0, 0.0, 0.0)

CHECKPOINTS = {
    "challenge_photo": challenge_spec(
        "challenge_photo", "challenge encoder trained on labelled photos only (source domain)",
        seconds=300, style_probs=PHOTO_ONLY),
    "challenge_style_aug": challenge_spec(
        "challenge_style_aug", "challenge encoder on labelled photos with photometric style "
        "augmentation", seconds=400, style_probs=PHOTO_ONLY, style_augment=True),
    "challenge_dann": challenge_spec(
        "challenge_dann", "challenge encoder on labelled photos + unlabelled sketches and "
        "paintings behind a gradient reversal layer (DANN)", seconds=500,
        style_probs=PHOTO_ONLY, target_styles=(0.0, 0.5, 0.5), style_adversary=1.0),
    "challenge_all_styles": challenge_spec(
        "challenge_all_styles", "challenge encoder on labelled scenes of all three styles "
        "(reference: labelled target data)", seconds=300,
        style_probs=(1 / 3, 1 / 3, 1 / 3)),
}


@dataclass(frozen=True)
class StyleMatrix:
    """Query style x gallery style retrieval on the evaluation scenes.

    Attributes:
        r1: float [S, S] R@1 (row: query style, column: gallery style).
        map: float [S, S] mAP.
        styles: the style names, in row/column order.
    """

    r1: np.ndarray
    map: np.ndarray
    styles: tuple[str, ...]

    def table(self, metric: str = "R@1") -> list[dict[str, object]]:
        """One row per query style: ``{"query": style, gallery style: value, ...}`` (4 places)."""
        values = {"R@1": self.r1, "mAP": self.map}
        if metric not in values:
            raise InputError(f"metric must be 'R@1' or 'mAP', got {metric!r}")
        m = values[metric]
        return [{"query": q, **{g: round(float(m[i, j]), 4) for j, g in enumerate(self.styles)}}
                for i, q in enumerate(self.styles)]

    def to_dict(self) -> dict[str, object]:
        return {"styles": list(self.styles), "R@1": np.round(self.r1, 4).tolist(),
                "mAP": np.round(self.map, 4).tolist()}


def _model_embeddings(model: ChallengeNet) -> dict[str, np.ndarray]:
    return {s: model.embed_images(eval_scenes(s).images) for s in STYLES}


def style_embeddings(model: ChallengeNet | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The evaluation scenes (:func:`~mmkit.challenges.data.eval_scenes`, 441) embedded in
    each style: ``{"photo": float [441, D], "sketch": ..., "painting": ...}``; a mapping of
    precomputed embeddings is checked and returned as is."""
    if isinstance(model, ChallengeNet):
        return _model_embeddings(model)
    if not isinstance(model, Mapping) or set(model) != set(STYLES):
        raise InputError(f"give a ChallengeNet or a dict of embeddings keyed {', '.join(STYLES)}")
    n = len(eval_scenes(STYLES[0]).labels)
    out = {}
    for s in STYLES:
        e = np.asarray(model[s], np.float32)
        if e.ndim != 2 or len(e) != n:
            raise InputError(f"{s} embeddings must be [{n}, D], got {e.shape}")
        out[s] = e
    return out


def cross_style_run(embeddings: Mapping[str, np.ndarray], query_style: str,
                    gallery_style: str) -> ClassRetrieval:
    """Class retrieval of the evaluation scenes drawn in ``query_style`` against the same
    scenes drawn in ``gallery_style`` (``embeddings``: :func:`style_embeddings`), each query's
    own scene left out of the gallery."""
    ref = eval_scenes(STYLES[0])  # labels and scene ids (not the own-style images: no render)
    for s in (query_style, gallery_style):
        style_index(s)
    return class_retrieval(embeddings[query_style], ref.labels, embeddings[gallery_style],
                           ref.labels, ref.scenes, ref.scenes)


def style_matrix(model: ChallengeNet | Mapping[str, np.ndarray]) -> StyleMatrix:
    """R@1 and mAP of every (query style, gallery style) pair on the evaluation scenes: 441
    queries against 440 gallery scenes (the query's own scene, drawn in any style, is left
    out). ``model``: a :class:`ChallengeNet` or :func:`style_embeddings`' dict."""
    emb = style_embeddings(model)
    n = len(STYLES)
    r1, ap = np.zeros((n, n)), np.zeros((n, n))
    for i, q in enumerate(STYLES):
        for j, g in enumerate(STYLES):
            run = cross_style_run(emb, q, g)
            r1[i, j], ap[i, j] = run.r1, run.map
    return StyleMatrix(r1, ap, STYLES)


def style_separation(embeddings: Mapping[str, np.ndarray]) -> dict[str, float]:
    """How far apart the styles sit in the embedding, averaged over the 3 style pairs: the
    distance between the style centroids (:func:`mmkit.scoring.modality_gap`, 0-2) and the
    held-out accuracy of a linear probe telling two styles apart
    (:func:`mmkit.scoring.modality_probe`, 0.5 = indistinguishable)."""
    emb = style_embeddings(embeddings)
    pairs = [(a, b) for k, a in enumerate(STYLES) for b in STYLES[k + 1:]]
    gap = [modality_gap(emb[a], emb[b]) for a, b in pairs]
    probe = [modality_probe(emb[a], emb[b]) for a, b in pairs]
    return {"centroid_gap": round(float(np.mean(gap)), 4),
            "style_probe": round(float(np.mean(probe)), 4)}


def domain_gap(matrix: StyleMatrix, separation: Mapping[str, float] | None = None
               ) -> dict[str, float]:
    """Summary of a :class:`StyleMatrix`: mean same-style R@1 (the diagonal), mean cross-style
    R@1 (the 6 off-diagonal cells), their ratio (1 = no domain gap), the gap in percent of
    the same-style R@1 and the worst cell; with ``separation`` (:func:`style_separation`)
    its numbers too."""
    r1 = matrix.r1
    off = ~np.eye(len(r1), dtype=bool)
    same, cross = float(np.diag(r1).mean()), float(r1[off].mean())
    out = {"same_style_r1": round(same, 4), "cross_style_r1": round(cross, 4),
           "ratio": round(cross / same, 4) if same > 0 else float("nan"),
           "gap_percent": round(100 * (1 - cross / same), 2) if same > 0 else float("nan"),
           "worst_cross_r1": round(float(r1[off].min()), 4)}
    if separation is not None:
        out.update({k: float(v) for k, v in separation.items()})
    return out


def sibling_pairs() -> list[tuple[int, int, str]]:
    """The world's designed sibling pairs ``(base, sibling, attribute)``: each class 32-63 was
    made from a base class (0-31) by moving one attribute to its near neighbour
    (:data:`mmkit.data.vocab.SIBLING_PAIRS`); unlike :func:`mmkit.data.vocab.
    fine_grained_pairs` (every pair of classes differing in one attribute), one pair per
    sibling."""
    return [(int(a), int(b), str(attr)) for a, b, attr in V.SIBLING_PAIRS]


def sibling_groups() -> dict[str, np.ndarray]:
    """Classes grouped by the attribute that separates them from their designed sibling
    (:func:`sibling_pairs`): ``{"colour" | "texture" | "shape": int [k] classes (both members
    of each pair), "none": classes without a sibling}`` (a base class with two siblings may
    sit in two groups)."""
    groups: dict[str, set[int]] = {"colour": set(), "texture": set(), "shape": set()}
    for a, b, attr in sibling_pairs():
        groups[attr].update((a, b))
    paired = set().union(*groups.values())
    out = {k: np.array(sorted(v), np.int64) for k, v in groups.items()}
    out["none"] = np.array(sorted(set(range(V.N_CLASSES)) - paired), np.int64)
    return out


def sibling_breakdown(embeddings: ChallengeNet | Mapping[str, np.ndarray], query_style: str,
                      gallery_style: str) -> dict[str, dict[str, float]]:
    """R@1 of ``query_style -> gallery_style`` restricted to the queries of each
    :func:`sibling_groups` group, and how often the top-1 is exactly the designed sibling:
    ``{group: {"queries": n, "R@1": r1, "sibling_top1": fraction}}`` (no ``sibling_top1`` for
    ``"none"``)."""
    emb = style_embeddings(embeddings)
    run = cross_style_run(emb, query_style, gallery_style)
    sib: dict[str, dict[int, set[int]]] = {"colour": {}, "texture": {}, "shape": {}}
    for a, b, attr in sibling_pairs():
        sib[attr].setdefault(a, set()).add(b)
        sib[attr].setdefault(b, set()).add(a)
    out = {}
    for group, classes in sibling_groups().items():
        rows = np.isin(run.labels, classes)
        if not rows.any():
            continue
        entry: dict[str, float] = {"queries": int(rows.sum()),
                                   "R@1": round(float(run.hit1[rows].mean()), 4)}
        if group != "none":
            hits = [int(t) in sib[group].get(int(c), ()) for c, t in zip(run.labels[rows],
                                                                        run.top1[rows])]
            entry["sibling_top1"] = round(float(np.mean(hits)), 4)
        out[group] = entry
    return out


def normalise_styles(embeddings: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A cheap feature-level alignment: from each style's embeddings [N, D] subtract that
    style's mean row, then L2-normalise the rows again (rows of zero length stay zero)."""
    emb = style_embeddings(embeddings)
    out = {}
    for s, e in emb.items():
        c = e - e.mean(0, keepdims=True)
        out[s] = (c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
                  ).astype(np.float32)
    return out
