"""Binary-relevance ranking metrics: P@k, R@k, F1@k, AP/mAP, R-precision, MAP@R, RR/MRR.

Every function takes

- ``scores``: a score matrix [Q, N] (numpy or torch; higher is better), or
  :class:`~mmkit.metrics.ranks.RankedLists` (item ids [Q, L], -1 padded), or an already
  computed :class:`~mmkit.metrics.ranks.JudgedRanks` (then ``relevance=None``);
- ``relevance``: [Q, N] dense or scipy.sparse, values >= 0; an item is relevant iff
  relevance >= ``level`` (default 1, so for integer labels: relevance > 0);

and returns one float64 value per query, shape [Q].

Conventions (those of trec_eval): ties are broken by score descending, then column index
ascending (a stable sort); relevant items that were not retrieved count in every
denominator; a query with no relevant item scores 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mmkit.metrics.checks import check_k, check_level
from mmkit.metrics.ranks import JudgedRanks, divide_or_zero, judged_ranks


def _hits(ranks: np.ndarray, cutoff: float | np.ndarray) -> np.ndarray:
    """[Q] number of ranks <= cutoff (a number, or one cut-off per query [Q])."""
    return np.count_nonzero(ranks <= np.reshape(cutoff, (-1, 1)), axis=1)


def precision_at_k(scores: Any, relevance: Any, k: int, *, level: float = 1) -> np.ndarray:
    """P@k [Q]: relevant items in the top k, divided by k (even if fewer than k are ranked)."""
    k, level = check_k(k), check_level(level)
    ranks = judged_ranks(scores, relevance).relevant_ranks(level)
    return _hits(ranks, k) / k


def recall_at_k(scores: Any, relevance: Any, k: int, *, level: float = 1) -> np.ndarray:
    """IR recall@k [Q]: relevant items in the top k / all relevant items (0 if none).

    Not the cross-modal "Recall@K" hit rate: that is :func:`hit_rate_at_k`.
    """
    k, level = check_k(k), check_level(level)
    judged = judged_ranks(scores, relevance)
    return divide_or_zero(_hits(judged.relevant_ranks(level), k), judged.n_relevant(level))


def f1_at_k(scores: Any, relevance: Any, k: int, *, level: float = 1) -> np.ndarray:
    """F1@k [Q]: harmonic mean of P@k and R@k, = 2 hits / (k + R); 0 if no hit."""
    k, level = check_k(k), check_level(level)
    judged = judged_ranks(scores, relevance)
    return 2.0 * _hits(judged.relevant_ranks(level), k) / (k + judged.n_relevant(level))


def average_precision(scores: Any, relevance: Any, k: int | None = None, *,
                      level: float = 1) -> np.ndarray:
    """AP [Q]: mean over ALL relevant items of the precision at their rank (0 if not retrieved).

    AP = (1/R) sum_m m / rank_m, over the relevant items in rank order (m = 1, 2, ...).
    With ``k``, only ranks <= k contribute, still divided by R (trec_eval ``map_cut_k``,
    ranx ``map@k``; torchmetrics divides by the relevant items retrieved instead).
    R = 0 gives 0, as trec_eval.
    """
    k = np.inf if k is None else check_k(k)
    return _average_precision(judged_ranks(scores, relevance), k, check_level(level))


def mean_average_precision(scores: Any, relevance: Any, k: int | None = None, *,
                           level: float = 1) -> float:
    """mAP: the mean of :func:`average_precision` over the queries."""
    return float(np.mean(average_precision(scores, relevance, k, level=level)))


def r_precision(scores: Any, relevance: Any, *, level: float = 1) -> np.ndarray:
    """R-precision [Q]: precision at rank R = number of relevant items (0 if R = 0)."""
    judged, level = judged_ranks(scores, relevance), check_level(level)
    n_relevant = judged.n_relevant(level)
    return divide_or_zero(_hits(judged.relevant_ranks(level), n_relevant), n_relevant)


def map_at_r(scores: Any, relevance: Any, *, level: float = 1) -> np.ndarray:
    """Per-query MAP@R [Q] (pytorch-metric-learning): AP truncated at rank R, divided by R.

    R = number of relevant items; the mean over queries is the reported MAP@R. 0 if R = 0.
    """
    judged, level = judged_ranks(scores, relevance), check_level(level)
    return _average_precision(judged, judged.n_relevant(level), level)


def reciprocal_rank(scores: Any, relevance: Any, *, level: float = 1) -> np.ndarray:
    """RR [Q]: 1 / rank of the first relevant item; 0 if none is retrieved."""
    ranks = judged_ranks(scores, relevance).relevant_ranks(check_level(level))
    return 1.0 / ranks[:, 0]


def mean_reciprocal_rank(scores: Any, relevance: Any, *, level: float = 1) -> float:
    """MRR: the mean of :func:`reciprocal_rank` over the queries."""
    return float(np.mean(reciprocal_rank(scores, relevance, level=level)))


def _average_precision(judged: JudgedRanks, cutoff: float | np.ndarray, level: float) -> np.ndarray:
    """AP with the sum cut at ``cutoff`` (a number or [Q]); the divisor stays R."""
    ranks = judged.relevant_ranks(level)  # ascending: the m-th column is the m-th relevant
    m = np.arange(1, ranks.shape[1] + 1)
    precision_at_rank = np.where(ranks <= np.reshape(cutoff, (-1, 1)), m / ranks, 0.0)
    return divide_or_zero(precision_at_rank.sum(axis=1), judged.n_relevant(level))
