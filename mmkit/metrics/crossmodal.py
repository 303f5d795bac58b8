"""Cross-modal retrieval metrics: the Recall@K hit rate, median and mean rank.

Papers on image-text retrieval report "Recall@K": the fraction of queries with at least
one positive in the top K. That is a hit rate, not IR recall (the fraction of all positives
retrieved, :func:`~mmkit.metrics.ranking.recall_at_k`); here it is called
:func:`hit_rate_at_k`. With several positives per query (an image has ~5 captions), an
image query is a hit if ANY of its captions is in the top K; a caption query ranks its one
image. Ranks are 1-based; ties: score descending, then column index ascending.

``positives``: [Q, N] dense (bool or numbers) or scipy.sparse; an item is a positive iff
its value >= ``level`` (default 1: True, or any positive integer label).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import scipy.sparse as sp

from mmkit.errors import InputError
from mmkit.metrics.checks import check_k, check_level, check_scores, to_numpy
from mmkit.metrics.ranks import judged_ranks


def first_positive_rank(scores: Any, positives: Any, *, level: float = 1) -> np.ndarray:
    """[Q] float64 1-based rank of the best-ranked positive; ``inf`` if none is ranked."""
    return judged_ranks(scores, positives).relevant_ranks(check_level(level))[:, 0]


def hit_rate_at_k(scores: Any, positives: Any, k: int, *, level: float = 1) -> np.ndarray:
    """[Q] 1.0 if any positive is in the top k, else 0.0 (mean over queries = "Recall@K")."""
    k = check_k(k)
    return (first_positive_rank(scores, positives, level=level) <= k).astype(np.float64)


def median_rank(scores: Any, positives: Any, *, level: float = 1) -> float:
    """Median over queries of :func:`first_positive_rank` ("MedR"; inf if most have none)."""
    return float(np.median(first_positive_rank(scores, positives, level=level)))


def mean_rank(scores: Any, positives: Any, *, level: float = 1) -> float:
    """Mean over queries of :func:`first_positive_rank` ("MeanR"; inf if any has none)."""
    return float(np.mean(first_positive_rank(scores, positives, level=level)))


def image_text_retrieval(similarity: Any, caption_image: Any,
                         ks: Iterable[int] = (1, 5, 10)) -> dict[str, float]:
    """Both directions of image-text retrieval from one similarity matrix.

    ``similarity``: [I, C] image-caption scores; ``caption_image``: [C] int, the image of
    each caption. Returns ``{"i2t_hit@K": .., "t2i_hit@K": .., "i2t_median_rank": ..,
    "i2t_mean_rank": .., "t2i_median_rank": .., "t2i_mean_rank": ..}`` (means over queries).
    """
    ks = [check_k(k, "ks") for k in ks]
    s = check_scores(similarity)
    owner = to_numpy(caption_image)
    n_images, n_captions = s.shape
    if owner.shape != (n_captions,) or owner.dtype.kind not in "iu":
        raise InputError(f"caption_image: expected {n_captions} integer image indices, "
                         f"got shape {owner.shape} and dtype {owner.dtype}")
    if n_captions and not 0 <= owner.min() <= owner.max() < n_images:
        raise InputError(f"caption_image: indices must be in 0..{n_images - 1}")
    links = sp.csr_array((np.ones(n_captions), (owner, np.arange(n_captions))),
                         shape=(n_images, n_captions))
    result = {}
    for name, scores, positives in (("i2t", s, links), ("t2i", s.T, links.T)):
        ranks = first_positive_rank(scores, positives)
        for k in ks:
            result[f"{name}_hit@{k}"] = float(np.mean(ranks <= k))
        result[f"{name}_median_rank"] = float(np.median(ranks))
        result[f"{name}_mean_rank"] = float(np.mean(ranks))
    return result
