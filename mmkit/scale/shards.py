"""S shard indexes built from ONE trained quantizer, searched together with an exact merge.

faiss has no distributed core; the recipe (faiss issues #189, #840, #2692) is:

1. train the quantizer (IVF centroids, PQ codebooks) once, on a sample drawn from the
   whole collection (:func:`train_quantizer`);
2. give every shard a copy of that trained, empty index and add its own vectors
   (:func:`build_shard`; shards are independent, so they build in parallel);
3. search every shard for the top k and merge (:class:`ShardedIndex`).

The merge is exact: the k best of the union of each shard's k best are the k best
overall, so a sharded exact index returns what one exact index over all vectors returns,
in the same order (score descending, then id ascending; :func:`merge_topk`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmkit.index import SearchIndex, SearchIndexError, SearchResult, build_index, load_index
from mmkit.index.base import check_search_k
from mmkit.index.exact import lexsort_desc

TRAINED_KINDS = ("ivf", "ivfpq")


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of ``shards`` nearly equal contiguous shards of n rows."""
    if shards < 1:
        raise SearchIndexError(f"shards must be >= 1, got {shards}")
    if shards > n:
        raise SearchIndexError(f"{shards} shards for {n} vectors: every shard needs at least "
                               "one vector")
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def train_quantizer(vectors: np.ndarray, kind: str, params: dict[str, Any], *,
                    metric: str = "cosine", sample: int | None = None,
                    seed: int = 0) -> SearchIndex:
    """An EMPTY index of ``kind`` whose quantizer was trained on a random sample of
    ``vectors`` [N, D] (at most ``sample`` rows, default the kind's ``train_size``)."""
    index = build_index(kind, dim=vectors.shape[1], metric=metric, **params)
    if kind in TRAINED_KINDS:
        size = sample or params.get("train_size") or vectors.shape[0]
        rows = np.arange(vectors.shape[0])
        if vectors.shape[0] > size:
            rows = np.sort(np.random.default_rng(seed).choice(vectors.shape[0], size,
                                                              replace=False))
        index.train(vectors[rows])
    return index


def index_bytes(index: SearchIndex) -> bytes:
    """The index as the bytes :meth:`SearchIndex.save` writes (to ship it to a worker)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "q.mmidx"
        index.save(path)
        return path.read_bytes()


def index_from_bytes(data: bytes) -> SearchIndex:
    """Inverse of :func:`index_bytes` (goes through :func:`mmkit.index.load_index`'s checks)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "q.mmidx"
        path.write_bytes(data)
        return load_index(path)


def build_shard(quantizer: bytes | SearchIndex, vectors: np.ndarray, ids: np.ndarray
                ) -> SearchIndex:
    """A copy of the trained, empty ``quantizer`` holding ``vectors`` [n, D] with ``ids`` [n]."""
    data = quantizer if isinstance(quantizer, bytes) else index_bytes(quantizer)
    index = index_from_bytes(data)
    index.add(vectors, ids=ids, progress=False)
    return index


def merge_topk(scores: list[torch.Tensor], ids: list[torch.Tensor], k: int,
               metric: str = "cosine") -> SearchResult:
    """Exact merge of per-shard hits ([Q, k_s] each, best first) into the overall top k.

    Order: score descending (ascending distance for "l2"), then id ascending; missing hits
    (id -1) sort last.
    """
    s = torch.cat(scores, dim=1)
    i = torch.cat(ids, dim=1)
    key = -s if metric == "l2" else s.clone()
    key[i < 0] = -float("inf")
    tie = torch.where(i < 0, torch.full_like(i, torch.iinfo(torch.int64).max), i)
    order = lexsort_desc(key, tie)[:, :k]
    out_s, out_i = s.gather(1, order), i.gather(1, order)
    if out_i.shape[1] < k:  # fewer stored vectors than k in all shards together
        pad = k - out_i.shape[1]
        fill = float("inf") if metric == "l2" else -float("inf")
        out_s = torch.cat([out_s, torch.full((s.shape[0], pad), fill)], dim=1)
        out_i = torch.cat([out_i, torch.full((s.shape[0], pad), -1, dtype=torch.int64)], dim=1)
    return SearchResult(out_s, out_i)


class ShardedIndex:
    """Several indexes over disjoint ids, searched as one (exact top-k merge).

    Offers what :func:`mmkit.index.tune` needs (``dim``, ``kind``, ``search_knob``,
    ``search``, ``set_search_params``, ``knob_range``, ``len``), so the search-time knob
    is tuned on the merged result and applied to every shard.
    """

    def __init__(self, shards: list[SearchIndex]) -> None:
        if not shards:
            raise SearchIndexError("a sharded index needs at least one shard")
        first = shards[0]
        for s in shards[1:]:
            if (s.kind, s.dim, s.metric) != (first.kind, first.dim, first.metric):
                raise SearchIndexError("shards differ in kind, dim or metric")
        self.shards = list(shards)
        self.kind, self.dim, self.metric = first.kind, first.dim, first.metric
        self.search_knob = first.search_knob

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def __repr__(self) -> str:
        return (f"ShardedIndex(kind={self.kind!r}, dim={self.dim}, shards={len(self.shards)}, "
                f"n={len(self)})")

    @property
    def ids(self) -> torch.Tensor:
        return torch.cat([s.ids for s in self.shards])

    @property
    def search_params(self) -> dict[str, int]:
        return self.shards[0].search_params

    def set_search_params(self, **params: int) -> None:
        for s in self.shards:
            s.set_search_params(**params)

    def knob_range(self) -> tuple[int, int]:
        lows, highs = zip(*(s.knob_range() for s in self.shards))
        return max(lows), min(highs)

    def search(self, queries: Any, k: int) -> SearchResult:
        """Top-k over all shards: (scores [Q, k], ids [Q, k]), exactly merged."""
        k = check_search_k(k, len(self))
        parts = [s.search(queries, min(k, len(s))) for s in self.shards if len(s)]
        return merge_topk([p.scores for p in parts], [p.ids for p in parts], k, self.metric)
