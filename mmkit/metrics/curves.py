"""Precision-recall curves: per cut-off, and trec_eval's 11-point interpolated precision.

Inputs as in :mod:`mmkit.metrics.ranking` (score matrix, RankedLists or JudgedRanks, plus
relevance; relevant iff relevance >= ``level``). Recall divides by ALL relevant items,
retrieved or not; a query with no relevant item has recall 0 and precision 0 everywhere.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mmkit.metrics.checks import check_level
from mmkit.metrics.ranks import divide_or_zero, judged_ranks

RECALL_LEVELS = np.arange(11) / 10
"""The 11 recall levels 0.0, 0.1, ..., 1.0 of :func:`interpolated_precision`."""


def precision_recall_curve(scores: Any, relevance: Any, *,
                           level: float = 1) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each of the first L ranks: two float64 arrays [Q, L].

    Column c holds P@(c+1) and R@(c+1); L = N for a score matrix, the list width for
    RankedLists. P@k divides by k even past the end of a shorter list (as trec_eval).
    """
    judged, level = judged_ranks(scores, relevance), check_level(level)
    ranks = judged.relevant_ranks(level)
    length = int(judged.n_ranked.max(initial=0))
    hits = np.zeros((judged.n_queries, length + 1))
    q, m = np.nonzero(np.isfinite(ranks))
    hits[q, ranks[q, m].astype(np.int64)] = 1.0
    hits_at = np.cumsum(hits[:, 1:], axis=1)
    recall = divide_or_zero(hits_at, judged.n_relevant(level)[:, None])
    return hits_at / np.arange(1, length + 1), recall


def interpolated_precision(scores: Any, relevance: Any, *, level: float = 1) -> np.ndarray:
    """11-point interpolated precision [Q, 11] at the recall levels :data:`RECALL_LEVELS`.

    As trec_eval ``iprec_at_recall_t``: the highest precision at or below the rank of the
    m-th relevant item, where m = floor(t R + 0.9) (trec_eval's historical rounding, in
    float64; m = 0 means the whole list), and 0 if fewer than m relevant items are ranked.
    E.g. R = 3, t = 0.7: m = 2, so recall 2/3 counts as reaching 0.7. The highest precision
    is always at a relevant item, so only the ranks of relevant items are needed.
    """
    judged, level = judged_ranks(scores, relevance), check_level(level)
    ranks = judged.relevant_ranks(level)  # the m-th column is the m-th relevant item
    precision = np.arange(1, ranks.shape[1] + 1) / ranks  # at each relevant item, 0 if missed
    best_from = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # max over m' >= m
    m = (RECALL_LEVELS * judged.n_relevant(level)[:, None] + 0.9).astype(np.int64)
    return np.take_along_axis(best_from, np.maximum(m, 1) - 1, axis=1)
