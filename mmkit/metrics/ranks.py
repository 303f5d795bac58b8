"""Where did each relevant item end up? The structure every metric here is computed from.

A ranking metric depends only on the ranks of the items with relevance > 0 and on their
grades: a non-relevant item matters only by pushing relevant items down. So rather than
sorting every list, we find the rank of each item with relevance > 0 once and keep the ranks
in a small padded matrix, one row per query (:class:`JudgedRanks`).

Tie rule (score matrix input): score descending, then column index ascending, i.e. the order
of ``np.argsort(-scores, axis=1, kind="stable")``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmkit.errors import InputError
from mmkit.metrics.checks import check_relevance, check_scores, to_numpy


@dataclass(frozen=True)
class RankedLists:
    """Ranked item ids [Q, L], best first, padded at the end with -1.

    Pass it instead of a score matrix: ``precision_at_k(RankedLists(ids), relevance, 10)``.
    Relevance is then [Q, N] over item ids 0..N-1, so relevant items that were not
    retrieved still count (in recall, AP, R-precision, the ideal DCG).
    """

    ids: np.ndarray

    def __post_init__(self) -> None:
        ids = to_numpy(self.ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise InputError(f"ranked lists: expected an integer array [queries, L], "
                             f"got shape {ids.shape} and dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        if (ids < -1).any():
            raise InputError(f"ranked lists: id {ids.min()} is negative (only -1 pads)")
        valid = ids >= 0
        gap = valid[:, 1:] & ~valid[:, :-1]
        if gap.any():
            q = np.argwhere(gap)[0, 0]
            raise InputError(f"ranked lists: query {q} has an id after -1 padding")
        srt = np.sort(ids, axis=1)
        dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
        if dup.any():
            q, j = np.argwhere(dup)[0]
            raise InputError(f"ranked lists: query {q} lists item {srt[q, j]} twice")
        object.__setattr__(self, "ids", ids)


@dataclass(frozen=True)
class JudgedRanks:
    """Ranks and grades of the items with relevance > 0, one padded row per query.

    - ``ranks``  [Q, M] float64: 1-based rank; ``inf`` if not retrieved, and for padding.
    - ``grades`` [Q, M] float64: relevance (> 0); 0 for padding.
    - ``n_ranked`` [Q] int64: length of each ranked list (N for a score matrix).

    Entries within a row are in no particular order.
    """

    ranks: np.ndarray
    grades: np.ndarray
    n_ranked: np.ndarray

    @classmethod
    def from_flat(cls, rows: np.ndarray, ranks: np.ndarray, grades: np.ndarray,
                  n_ranked: np.ndarray) -> JudgedRanks:
        """Pack flat entries (``rows`` non-decreasing) into one padded row per query."""
        n_queries = len(n_ranked)
        counts = np.bincount(rows, minlength=n_queries)
        width = max(int(counts.max(initial=0)), 1)
        starts = np.cumsum(counts) - counts
        column = np.arange(len(rows)) - starts[rows]
        packed_ranks = np.full((n_queries, width), np.inf)
        packed_grades = np.zeros((n_queries, width))
        packed_ranks[rows, column] = ranks
        packed_grades[rows, column] = grades
        return cls(packed_ranks, packed_grades, np.asarray(n_ranked, dtype=np.int64))

    @property
    def n_queries(self) -> int:
        """Q, the number of queries."""
        return len(self.n_ranked)

    def n_relevant(self, level: float) -> np.ndarray:
        """[Q] number of relevant items (grade >= level), retrieved or not."""
        return np.count_nonzero(self.grades >= level, axis=1)

    def relevant_ranks(self, level: float) -> np.ndarray:
        """[Q, M] ranks of the relevant items (grade >= level), ascending, ``inf``-padded."""
        return np.sort(np.where(self.grades >= level, self.ranks, np.inf), axis=1)


def ranks_in_score_matrix(scores: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """1-based ranks of the items ``(rows, cols)`` (``rows`` non-decreasing) in ``scores``.

    rank = 1 + number of items with a higher score (+ tied items with a lower column index).
    One ``np.sort`` of each row and a binary search per item; no full argsort.
    """
    if len(rows) == 0:
        return np.zeros(0)
    n_items = scores.shape[1]
    ascending = np.sort(scores, axis=1)
    values = scores[rows, cols]
    bounds = np.searchsorted(rows, np.arange(scores.shape[0] + 1)).tolist()
    n_at_or_below = np.concatenate([  # per query: items scored <= each relevant item
        row.searchsorted(values[a:b], side="right")
        for row, a, b in zip(ascending, bounds[:-1], bounds[1:])])
    ranks = (n_items - n_at_or_below) + 1.0
    tied = np.flatnonzero((ascending[:, 1:] == ascending[:, :-1]).any(axis=1))
    if tied.size:  # rows with equal scores: take the exact stable order there
        order = np.argsort(-scores[tied], axis=1, kind="stable")
        position = np.empty_like(order)
        np.put_along_axis(position, order, np.arange(n_items), axis=1)
        tied_row = np.full(scores.shape[0], -1)
        tied_row[tied] = np.arange(tied.size)
        sel = tied_row[rows] >= 0
        ranks[sel] = position[tied_row[rows[sel]], cols[sel]] + 1.0
    return ranks


def ranks_in_lists(ids: np.ndarray, n_items: int, rows: np.ndarray,
                   cols: np.ndarray) -> np.ndarray:
    """1-based ranks of the items ``(rows, cols)`` in ranked lists ``ids``; inf if not listed.

    A join on the key ``query * n_items + item``: sort the listed keys, binary-search the
    wanted ones. Memory stays O(listed + wanted), whatever the number of items.
    """
    q, position = np.nonzero(ids >= 0)
    listed = q * n_items + ids[q, position]
    if listed.size == 0:
        return np.full(len(rows), np.inf)
    order = np.argsort(listed)
    wanted = rows * n_items + cols
    at = order[np.minimum(np.searchsorted(listed, wanted, sorter=order), listed.size - 1)]
    return np.where(listed[at] == wanted, position[at] + 1.0, np.inf)


def judged_ranks(scores: Any, relevance: Any) -> JudgedRanks:
    """:class:`JudgedRanks` from a score matrix [Q, N] or :class:`RankedLists`, and relevance.

    ``relevance``: [Q, N] dense (numpy/torch) or scipy.sparse, values >= 0 (0 = not relevant).
    A :class:`JudgedRanks` passes through unchanged (``relevance`` must then be None), so
    every metric function accepts one: sort once, compute many metrics.
    """
    if isinstance(scores, JudgedRanks):
        if relevance is not None:
            raise InputError("relevance must be None when scores is already a JudgedRanks")
        return scores
    if isinstance(scores, RankedLists):
        ids = scores.ids
        shape, rows, cols, grades = check_relevance(relevance)
        if shape[0] != ids.shape[0]:
            raise InputError(f"relevance has {shape[0]} queries, ranked lists {ids.shape[0]}")
        if ids.max(initial=-1) >= shape[1]:
            raise InputError(f"ranked lists: id {ids.max()} is not < {shape[1]} "
                             "(the number of relevance columns)")
        return JudgedRanks.from_flat(rows, ranks_in_lists(ids, shape[1], rows, cols), grades,
                                     np.count_nonzero(ids >= 0, axis=1))
    s = check_scores(scores)
    _, rows, cols, grades = check_relevance(relevance, s.shape)
    return JudgedRanks.from_flat(rows, ranks_in_score_matrix(s, rows, cols), grades,
                                 np.full(s.shape[0], s.shape[1]))


def divide_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` in float64, 0 where the denominator is 0 (as trec_eval)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=np.asarray(denominator) != 0)
