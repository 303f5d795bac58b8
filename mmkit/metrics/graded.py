"""Graded-relevance metrics: DCG@k and NDCG@k.

DCG@k = sum over ranks r <= k of gain(rel_r) / log2(r + 1), with gain "linear" (rel, as
trec_eval and ranx ``ndcg``) or "exp" (2^rel - 1, as ranx ``ndcg_burges``).
The ideal DCG sorts ALL judged items with relevance > 0, retrieved or not (trec_eval);
torchmetrics and sklearn build it from the scored list only.
Every item with relevance > 0 has a gain: there is no relevance level here (as trec_eval).
Ties: score descending, then column index ascending (stable sort), not averaged.
Inputs as in :mod:`mmkit.metrics.ranking`; outputs are float64 [Q].
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mmkit.errors import InputError
from mmkit.metrics.checks import check_k
from mmkit.metrics.ranks import divide_or_zero, judged_ranks

GAINS = ("linear", "exp")


def _check(k: int | None, gain: str) -> float:
    """The rank cut-off for ``k`` (inf for None), after checking ``k`` and ``gain``."""
    if gain not in GAINS:
        raise InputError(f"gain must be one of {GAINS}, got {gain!r}")
    return np.inf if k is None else check_k(k)


def _gain(grades: np.ndarray, gain: str) -> np.ndarray:
    return grades if gain == "linear" else np.exp2(grades) - 1.0


def _dcg(ranks: np.ndarray, grades: np.ndarray, cutoff: float, gain: str) -> np.ndarray:
    """[Q] DCG of items at ``ranks`` (inf = not retrieved) with relevance ``grades``."""
    discounted = _gain(grades, gain) / np.log2(ranks + 1.0)  # 0 where rank is inf
    return np.where(ranks <= cutoff, discounted, 0.0).sum(axis=1)


def dcg_at_k(scores: Any, relevance: Any, k: int | None, gain: str = "linear") -> np.ndarray:
    """DCG@k [Q]; ``k=None`` means the whole ranked list."""
    cutoff = _check(k, gain)
    judged = judged_ranks(scores, relevance)
    return _dcg(judged.ranks, judged.grades, cutoff, gain)


def ndcg_at_k(scores: Any, relevance: Any, k: int | None, gain: str = "linear") -> np.ndarray:
    """NDCG@k [Q] = DCG@k / ideal DCG@k; 0 for a query with no relevant item.

    ``k=None`` means the whole ranked list (trec_eval ``ndcg``; ``ndcg_cut_k`` is k=k).
    """
    cutoff = _check(k, gain)
    judged = judged_ranks(scores, relevance)
    ideal_grades = -np.sort(-judged.grades, axis=1)
    ideal_ranks = np.arange(1.0, ideal_grades.shape[1] + 1)
    ideal = _dcg(np.broadcast_to(ideal_ranks, ideal_grades.shape), ideal_grades, cutoff, gain)
    return divide_or_zero(_dcg(judged.ranks, judged.grades, cutoff, gain), ideal)
