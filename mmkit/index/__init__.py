"""Exact and approximate nearest-neighbour search behind one API (no model code).

>>> from mmkit.index import build_index, load_index
>>> index = build_index("exact", dim=256, metric="cosine")    # or "flat", "ivf", "hnsw", "ivfpq"
>>> index.add(vectors)                       # [N, 256] numpy or torch; ids=... optional
>>> scores, ids = index.search(queries, k=10)   # [Q, 10] float32, [Q, 10] int64, best first
>>> index.save("db.mmidx"); index = load_index("db.mmidx")

``metric=`` (one of :data:`SIMILARITIES`): "ip" and "cosine" return similarities (higher
first); "l2" returns SQUARED Euclidean distances (lower first). Errors are
:class:`SearchIndexError` (a ValueError).

Modules: :mod:`~mmkit.index.base` (the interface and its checks), the backends
:mod:`~mmkit.index.exact` and :mod:`~mmkit.index.faiss_backend`, :mod:`~mmkit.index.factory`
(:func:`build_index`, :func:`load_index`), :mod:`~mmkit.index.tune` (search-time knobs).
"""
from __future__ import annotations

import warnings

from mmkit.index.base import KINDS, SIMILARITIES, SearchIndex, SearchIndexError, SearchResult
from mmkit.index.exact import ExactIndex, chunked_topk
from mmkit.index.factory import build_index, load_index
from mmkit.index.faiss_backend import FaissIndex
from mmkit.index.synthetic import clustered_vectors
from mmkit.index.tune import (TuneResult, exact_neighbours, neighbour_recall, tune,
                              tune_leave_one_out)


def __getattr__(name: str):
    """``METRICS`` is the deprecated old name of :data:`SIMILARITIES`."""
    if name == "METRICS":
        warnings.warn("mmkit.index.METRICS is deprecated: use mmkit.index.SIMILARITIES",
                      DeprecationWarning, stacklevel=2)
        return SIMILARITIES
    raise AttributeError(f"module 'mmkit.index' has no attribute {name!r}")

__all__ = [
    "KINDS", "SIMILARITIES", "SearchIndex", "SearchIndexError", "SearchResult", "build_index",
    "load_index", "ExactIndex", "FaissIndex", "chunked_topk", "clustered_vectors", "TuneResult",
    "exact_neighbours", "neighbour_recall", "tune", "tune_leave_one_out",
]

