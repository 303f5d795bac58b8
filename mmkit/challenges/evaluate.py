"""Image -> image retrieval by class, the challenges' one score.

A query image's relevant gallery images are those of its class; the query's own scene is left
out of the gallery (also when the gallery holds the same scene drawn in another style, which
would otherwise be a free hit). R@1 is the hit rate at 1 and AP the average precision over the
whole ranked gallery (:mod:`mmkit.metrics`); :func:`per_class` averages AP per query class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmkit.errors import InputError
from mmkit.metrics import average_precision, hit_rate_at_k


@dataclass(frozen=True)
class ClassRetrieval:
    """Per-query results of one class-retrieval run.

    Attributes:
        ap: float [Q] average precision of each query.
        hit1: float [Q] 1.0 where the top gallery image has the query's class.
        labels: int [Q] the query classes.
        top1: int [Q] the class of each query's top gallery image.
    """

    ap: np.ndarray
    hit1: np.ndarray
    labels: np.ndarray
    top1: np.ndarray

    @property
    def r1(self) -> float:
        return float(self.hit1.mean())

    @property
    def map(self) -> float:
        return float(self.ap.mean())

    def metrics(self) -> dict[str, float]:
        """``{"R@1": ..., "mAP": ...}`` rounded to 4 places."""
        return {"R@1": round(self.r1, 4), "mAP": round(self.map, 4)}


def class_retrieval(query: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray,
                    gallery_labels: np.ndarray, query_scenes: np.ndarray | None = None,
                    gallery_scenes: np.ndarray | None = None) -> ClassRetrieval:
    """Rank ``gallery`` [G, D] by cosine (dot product of unit vectors) for each ``query``
    [Q, D]; relevant = same label. Gallery items whose scene id equals the query's
    (``query_scenes`` [Q], ``gallery_scenes`` [G]) are removed from that query's ranking.
    Queries without any relevant gallery item are dropped (none exist in a balanced split).
    """
    q = np.asarray(query, np.float32)
    g = np.asarray(gallery, np.float32)
    ql, gl = np.asarray(query_labels), np.asarray(gallery_labels)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise InputError(f"class_retrieval: query [Q, D] and gallery [G, D] must share D, got "
                         f"{q.shape} and {g.shape}")
    if len(ql) != len(q) or len(gl) != len(g):
        raise InputError("class_retrieval: one label per query and per gallery item")
    scores = q @ g.T
    relevant = (ql[:, None] == gl[None, :]).astype(np.float32)
    if (query_scenes is None) != (gallery_scenes is None):
        raise InputError("class_retrieval: give both query_scenes and gallery_scenes, or neither")
    if query_scenes is not None:
        same = np.asarray(query_scenes)[:, None] == np.asarray(gallery_scenes)[None, :]
        scores = np.where(same, -np.inf, scores)
        relevant = np.where(same, 0.0, relevant)
    keep = relevant.sum(1) > 0
    scores, relevant, ql = scores[keep], relevant[keep], ql[keep]
    # -inf columns rank last and are not relevant: they change neither AP nor R@1
    finite = np.where(np.isfinite(scores), scores, np.float32(-1e9))
    top = np.argmax(finite, axis=1)
    return ClassRetrieval(ap=average_precision(finite, relevant),
                          hit1=hit_rate_at_k(finite, relevant, 1).astype(np.float64),
                          labels=ql, top1=gl[top])


def per_class(run: ClassRetrieval, n_classes: int) -> np.ndarray:
    """Mean AP of the queries of each class: float [n_classes] (NaN for a class without
    queries)."""
    out = np.full(n_classes, np.nan)
    for c in np.unique(run.labels):
        out[c] = run.ap[run.labels == c].mean()
    return out
