"""Exact and approximate nearest-neighbour search behind one API (no model code).

>>> from mmkit.index import build_index, load_index
>>> index = build_index("exact", dim=256, metric="cosine")    # or "flat", "ivf", "hnsw", "ivfpq"
>>> index.add(vectors)                       # [N, 256] numpy or torch; ids=... optional
>>> scores, ids = index.search(queries, k=10)   # [Q, 10] float32, [Q, 10] int64, best first
>>> index.save("db.mmidx"); index = load_index("db.mmidx")

Metrics: "ip" and "cosine" return similarities (higher first); "l2" returns SQUARED
Euclidean distances (lower first). Errors are :class:`SearchIndexError` (a ValueError).
"""
from __future__ import annotations

from mmkit.index.base import (KINDS, METRICS, SearchIndex, SearchIndexError, SearchResult,
                              build_index, load_index)
from mmkit.index.exact import ExactIndex, chunked_topk
from mmkit.index.synthetic import clustered_vectors
from mmkit.index.tune import TuneResult, exact_neighbours, neighbour_recall, tune


def __getattr__(name: str):
    """``FaissIndex`` is imported on first use: faiss is loaded only when an approximate
    index is asked for (``import mmkit.index`` stays fast)."""
    if name == "FaissIndex":
        from mmkit.index.faiss_backend import FaissIndex

        return FaissIndex
    raise AttributeError(f"module 'mmkit.index' has no attribute {name!r}")

__all__ = [
    "KINDS", "METRICS", "SearchIndex", "SearchIndexError", "SearchResult", "build_index",
    "load_index", "ExactIndex", "FaissIndex", "chunked_topk", "clustered_vectors", "TuneResult",
    "exact_neighbours", "neighbour_recall", "tune",
]

