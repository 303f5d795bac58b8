"""Pick the cheapest search-time setting (nprobe, ef_search) that reaches a target recall.

Recall is measured on held-out queries against exact ground truth: the true top-k ids,
from ``ground_truth_ids``, from exact search over ``database``, or from the vectors the index
itself stores. A larger nprobe / ef_search costs more time and (almost always) gives more
recall, so :func:`tune` doubles the value until the target is met, then bisects back to
the smallest value that still meets it.

Without held-out queries, :func:`tune_leave_one_out` tunes on stored vectors used as
queries, each query's own id dropped from its hits (so recall is measured on the rest).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mmkit.index.base import (SearchIndex, SearchIndexError, SearchResult, as_matrix,
                              check_search_k)
from mmkit.index.exact import ExactIndex


@dataclass
class TuneResult:
    """What :func:`tune` chose: ``index.set_search_params(**{param: value})`` was applied."""

    param: str | None          # "nprobe", "ef_search", or None (exact: nothing to tune)
    value: int | None          # the chosen value
    recall: float              # recall@k of the tuning queries at that value
    target_recall: float
    reached: bool              # False: even the largest value misses target + margin
    curve: list[tuple[int, float]] = field(default_factory=list)  # (value, recall) tried, sorted


def neighbour_recall(found_ids: Any, true_ids: Any) -> float:
    """Mean fraction of the true top-k ids [Q, k] found among ``found_ids`` [Q, k'] (k' >= 1)."""
    found = torch.as_tensor(found_ids)
    true = torch.as_tensor(true_ids)
    if found.ndim != 2 or true.ndim != 2 or found.shape[0] != true.shape[0]:
        raise SearchIndexError(f"neighbour_recall needs [Q, k] id arrays with the same Q, got "
                               f"{tuple(found.shape)} and {tuple(true.shape)}")
    if true.numel() == 0:
        return 1.0
    hits = (true[:, :, None] == found[:, None, :]).any(dim=2)   # [Q, k]
    return float(hits.float().mean())


def exact_neighbours(index: SearchIndex, queries: Any, k: int, *,
                     database: Any = None) -> torch.Tensor:
    """[Q, k] exact top-k ids of ``queries`` among the vectors of ``index``.

    ``database``: the [N, D] vectors exactly as they were added (same order); needed for
    an index that keeps only compressed codes (IVF-PQ without refine).
    """
    if isinstance(index, ExactIndex):
        return index.search(queries, k).ids
    if database is not None:
        vectors = as_matrix(database, index.dim, "database")
        if vectors.shape[0] != len(index):
            raise SearchIndexError(f"database has {vectors.shape[0]} rows, "
                                   f"the index holds {len(index)}")
    else:
        stored = getattr(index, "stored_vectors", lambda: None)()
        if stored is None:
            raise SearchIndexError(f"the {index.kind} index keeps no exact vectors: pass "
                                   "database= (the added vectors) or ground_truth_ids=")
        vectors = stored
    exact = ExactIndex(index.dim, index.metric)
    exact.add(vectors, ids=index.ids, progress=False)
    return exact.search(queries, k).ids


def tune(index: SearchIndex, queries: Any, target_recall: float = 0.95, k: int = 10, *,
         margin: float = 0.0, ground_truth_ids: Any = None, database: Any = None) -> TuneResult:
    """Set the smallest nprobe / ef_search whose recall@k on ``queries`` [Q, D] >= target.

    Use held-out queries (not rows of the index). The tuning queries must reach
    ``target_recall + margin``: a small margin (e.g. 0.01 for 1,000 queries) makes other
    queries reach the target too, not just these. ``ground_truth_ids`` [Q, >=k]: the true
    neighbours if you already have them (columns beyond k are ignored); else see
    :func:`ground_truth`. If the target is unreachable (e.g. IVF-PQ without refine), the
    cheapest value with the best recall seen is kept and ``reached`` is False.
    """
    if not 0.0 < target_recall <= 1.0:
        raise SearchIndexError(f"target_recall must be in (0, 1], got {target_recall!r}")
    if not 0.0 <= margin < 1.0:
        raise SearchIndexError(f"margin must be in [0, 1), got {margin!r}")
    goal = min(1.0, target_recall + margin)
    q = as_matrix(queries, index.dim, "queries")
    if len(index) == 0:
        raise SearchIndexError(f"the {index.kind} index is empty: add vectors before tuning")
    k = check_search_k(k, len(index))
    if ground_truth_ids is None:
        true = exact_neighbours(index, q, k, database=database)
    else:
        true = torch.as_tensor(ground_truth_ids)[:, :k]
        if true.ndim != 2 or true.shape[0] != q.shape[0] or true.shape[1] != k:
            raise SearchIndexError(f"ground_truth_ids must be [{q.shape[0]}, >={k}], "
                                   f"got {tuple(torch.as_tensor(ground_truth_ids).shape)}")

    knob = index.search_knob
    if knob is None:
        recall = neighbour_recall(index.search(q, k).ids, true)
        return TuneResult(None, None, recall, target_recall, recall >= goal, [])

    tried: dict[int, float] = {}

    def recall_at(value: int) -> float:
        if value not in tried:
            index.set_search_params(**{knob: value})
            tried[value] = neighbour_recall(index.search(q, k).ids, true)
        return tried[value]

    low, high = index.knob_range()
    if knob == "ef_search":              # a search beam narrower than k makes no sense
        low = min(max(low, k), high)
    value, failed = low, low - 1         # failed: largest value known to miss the target
    while recall_at(value) < goal:
        if value == high:                # unreachable: the cheapest value with the best recall
            best = min(tried, key=lambda v: (-tried[v], v))
            index.set_search_params(**{knob: best})
            return TuneResult(knob, best, tried[best], target_recall, False, sorted(tried.items()))
        failed, value = value, min(high, 2 * value)
    while value - failed > 1:            # bisect: smallest value that still reaches it
        middle = (failed + value) // 2
        if recall_at(middle) >= goal:
            value = middle
        else:
            failed = middle
    index.set_search_params(**{knob: value})
    return TuneResult(knob, value, tried[value], target_recall, True, sorted(tried.items()))


# ----------------------------------------------------------------------------- leave-one-out
class _LeaveOneOut:
    """An index seen through queries that are stored vectors: each query's own id is dropped
    from its hits, so tuning on stored vectors measures recall on the rest (held out)."""

    def __init__(self, index: Any, self_ids: torch.Tensor) -> None:
        self.index, self.self_ids = index, self_ids
        self.kind, self.dim, self.search_knob = index.kind, index.dim, index.search_knob

    def __len__(self) -> int:
        return len(self.index) - 1

    def set_search_params(self, **p: int) -> None:
        self.index.set_search_params(**p)

    def knob_range(self) -> tuple[int, int]:
        return self.index.knob_range()

    def search(self, q: Any, k: int) -> SearchResult:
        return drop_self(self.index.search(q, k + 1), self.self_ids, k)


def drop_self(result: SearchResult, self_ids: torch.Tensor, k: int) -> SearchResult:
    """The first k hits of each row that are not the query's own id [Q]."""
    keep = result.ids != self_ids[:, None]
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :k]
    return SearchResult(result.scores.gather(1, order), result.ids.gather(1, order))


def tune_leave_one_out(index: Any, vectors: np.ndarray, ids: np.ndarray,
                       target_recall: float = 0.95, k: int = 10, *, queries: int = 500,
                       seed: int = 0, metric: str | None = None) -> tuple[TuneResult, int]:
    """:func:`tune` ``index`` with up to ``queries`` of its own stored vectors as queries.

    ``vectors`` float32 [N, D] and ``ids`` int64 [N] are what was added to ``index`` (any
    object with the :class:`~mmkit.index.base.SearchIndex` search interface, e.g. a sharded
    index). The query rows are drawn with ``numpy.random.default_rng(seed)`` (sorted); each
    query's own id is dropped from its hits and from the ground truth (exact search over
    ``vectors`` with ``metric``, default the index's). Returns (the :class:`TuneResult`, the
    number of queries used).
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(ids), min(queries, len(ids)), replace=False))
    q = torch.from_numpy(vectors[rows])
    self_ids = torch.from_numpy(ids[rows])
    exact = ExactIndex(index.dim, index.metric if metric is None else metric)
    exact.add(vectors, ids=ids, progress=False)
    truth = drop_self(exact.search(q, k + 1), self_ids, k).ids
    return tune(_LeaveOneOut(index, self_ids), q, target_recall, k,
                ground_truth_ids=truth), int(len(rows))
