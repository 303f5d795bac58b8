"""Exact (brute-force) search with torch: a chunked matmul and a running top-k.

The database is scanned in chunks of ``chunk_size`` rows, so the extra memory is one
score block [query_batch, chunk_size] however large the database is. Per block:

1. ``S = queries @ chunk.T`` into a reused buffer: the real work (2 D flops per score);
2. ``G`` = the maxima of 32 interleaved column groups of S: one cheap pass over S.
   Each query keeps its current k-th best score as a threshold; only groups whose
   maximum reaches it are opened, and only their members that reach it are kept. After
   the first blocks that is a handful of candidates per query, so no topk over the
   whole block is needed (a plain ``torch.topk`` per block costs more than the matmul);
3. the candidates are merged into the running top k with ``torch.topk`` on k + a few
   columns. The first block seeds the running top k with a plain top-k.

On the CPU (float32) steps 2 and 3 run fused in one numba kernel per block
(:mod:`mmkit.index._scan`): the same group maxima and threshold, but candidates go
straight into each row's sorted top k, with no per-block tensor bookkeeping (about 5% of the
search time on 1M x 256). The torch path above serves other devices.

The order is exact and deterministic: score descending, then id ascending. Every
``topk`` takes k + 1 values; where the k-th and (k+1)-th are equal the row is re-sorted
with two stable sorts, so the result never depends on how ``topk`` breaks ties.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mmkit.index import _scan
from mmkit.index.base import SearchIndex, SearchIndexError
from mmkit.validate import integer, positive_int

GROUP = 32  # columns per group in step 2 (interleaved: j, j + C/32, j + 2C/32, ...)


def lexsort_desc(scores: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """[R, W] column order of each row: score descending, then key ascending."""
    by_key = torch.argsort(keys, dim=1, stable=True)
    by_score = torch.argsort(scores.gather(1, by_key), dim=1, descending=True, stable=True)
    return by_key.gather(1, by_score)


def _select_topk(scores: torch.Tensor, pos: torch.Tensor, k: int,
                 key_of: Callable[[torch.Tensor], torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact best k (score desc, key asc) of each row of [R, W] candidates, W >= k."""
    if scores.shape[1] == k:
        return scores, pos
    values, cols = scores.topk(k + 1, dim=1)
    top_s, top_p = values[:, :k], pos.gather(1, cols[:, :k])
    tied = (values[:, k - 1] == values[:, k]).nonzero().squeeze(1)
    if tied.numel():  # topk broke a tie at the cut arbitrarily: sort these rows fully
        s, p = scores[tied], pos[tied]
        order = lexsort_desc(s, key_of(p))[:, :k]
        top_s[tied], top_p[tied] = s.gather(1, order), p.gather(1, order)
    return top_s, top_p


def _block_candidates(S: torch.Tensor, start: int, threshold: torch.Tensor):
    """The scores of block S [Q, C] that reach their row's current k-th best ``threshold``.

    Groups of columns whose maximum is below the threshold are skipped without looking
    at their members. Returns None when no row can improve, else (rows [U], scores [U, W],
    positions [U, W]): one padded row of candidates per improving query (padding: score
    -inf, position -1).
    """
    Q, C = S.shape
    group = GROUP if C % GROUP == 0 else 1                # a ragged last block: single columns
    n_groups = C // group
    G = torch.amax(S.view(Q, group, n_groups), dim=1) if group > 1 else S   # [Q, n_groups]
    active = (G.amax(dim=1) >= threshold).nonzero().squeeze(1)   # rows that can improve
    if active.numel() == 0:
        return None
    G = G.index_select(0, active)
    pair_row, pair_group = (G >= threshold[active, None]).nonzero(as_tuple=True)
    pair_row = active[pair_row]                                              # sorted by row
    cols = pair_group[:, None] + n_groups * torch.arange(group, device=S.device)   # [P, group]
    pair_s = S[pair_row[:, None], cols]
    # keep only the members of those groups that reach the threshold themselves
    pair, member = (pair_s >= threshold[pair_row, None]).nonzero(as_tuple=True)
    row, score, pos = pair_row[pair], pair_s[pair, member], cols[pair, member] + start
    # lay them out densely: one row per improving query (row is sorted)
    rows, which, counts = torch.unique_consecutive(row, return_inverse=True, return_counts=True)
    slot = torch.arange(row.numel(), device=S.device) - (torch.cumsum(counts, 0) - counts)[which]
    width = int(counts.max())
    cand_s = torch.full((rows.numel(), width), -float("inf"), device=S.device)
    cand_p = torch.full((rows.numel(), width), -1, dtype=torch.int64, device=S.device)
    cand_s[which, slot] = score
    cand_p[which, slot] = pos
    return rows, cand_s, cand_p


def _score_blocks(q: torch.Tensor, database: torch.Tensor, bias: torch.Tensor | None,
                  chunk_size: int, buffer: torch.Tensor):
    """Yield (start, S) per database chunk: S = q @ chunk.T - bias, written into ``buffer``
    (reused, so each S is only valid until the next one is yielded)."""
    for start in range(0, database.shape[0], chunk_size):
        chunk = database[start:start + chunk_size]
        S = buffer[:q.shape[0] * chunk.shape[0]].view(q.shape[0], chunk.shape[0])
        torch.mm(q, chunk.T, out=S)
        if bias is not None:
            S.sub_(bias[start:start + chunk_size])
        yield start, S


def chunked_topk(queries: torch.Tensor, database: torch.Tensor, k: int, *,
                 bias: torch.Tensor | None = None, keys: torch.Tensor | None = None,
                 chunk_size: int = 4096, query_batch: int = 1024
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top k of ``queries [Q, D] @ database[N, D].T - bias[N]`` for each query.

    Returns (scores [Q, k], positions [Q, k] int64), ordered by score descending, then by
    ``keys[position]`` ascending (``keys`` [N] int64 defaults to the position). Extra
    memory: one [query_batch, chunk_size] float32 block plus O(Q k) per batch.
    """
    N = database.shape[0]
    k = integer(k, "k", low=1, high=N, error=SearchIndexError)
    device = database.device
    if device.type == "cpu" and database.dtype == torch.float32 and _scan.available():
        return _chunked_topk_fused(queries, database, k, bias=bias, keys=keys,
                                   chunk_size=chunk_size, query_batch=query_batch)
    key_of = (lambda p: p) if keys is None else (lambda p: keys[p.clamp_min(0)])
    all_s, all_p = [], []
    buffer = torch.empty(min(query_batch, queries.shape[0]) * min(chunk_size, N),
                         dtype=database.dtype, device=device)
    for q0 in range(0, queries.shape[0], query_batch):
        q = queries[q0:q0 + query_batch]
        best_s = torch.full((q.shape[0], k), -float("inf"), device=device)
        best_p = torch.full((q.shape[0], k), -1, dtype=torch.int64, device=device)
        for start, S in _score_blocks(q, database, bias, chunk_size, buffer):
            if start == 0 and S.shape[1] > k:      # seed the running top k: plain top-k
                pos = torch.arange(S.shape[1], device=device).expand(S.shape[0], -1)
                best_s, best_p = (t.contiguous() for t in _select_topk(S, pos, k, key_of))
                continue
            found = _block_candidates(S, start, best_s[:, k - 1])
            if found is None:
                continue
            rows, cand_s, cand_p = found
            merged_s = torch.cat([best_s[rows], cand_s], dim=1)
            merged_p = torch.cat([best_p[rows], cand_p], dim=1)
            best_s[rows], best_p[rows] = _select_topk(merged_s, merged_p, k, key_of)
        order = lexsort_desc(best_s, key_of(best_p))
        all_s.append(best_s.gather(1, order))
        all_p.append(best_p.gather(1, order))
    if not all_s:
        return torch.empty(0, k, device=device), torch.empty(0, k, dtype=torch.int64, device=device)
    return torch.cat(all_s), torch.cat(all_p)


def _chunked_topk_fused(queries: torch.Tensor, database: torch.Tensor, k: int, *,
                        bias: torch.Tensor | None, keys: torch.Tensor | None, chunk_size: int,
                        query_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU path of :func:`chunked_topk`: matmul per block, then one fused numba scan."""
    N = database.shape[0]
    key_arr = (np.arange(N, dtype=np.int64) if keys is None
               else keys.to(torch.int64).contiguous().numpy())
    queries = queries.to(torch.float32).contiguous()
    all_s, all_p = [], []
    buffer = torch.empty(min(query_batch, queries.shape[0]) * min(chunk_size, N))
    for q0 in range(0, queries.shape[0], query_batch):
        q = queries[q0:q0 + query_batch]
        best_s = np.full((q.shape[0], k), _scan.EMPTY, dtype=np.float32)
        best_p = np.full((q.shape[0], k), -1, dtype=np.int64)
        best_key = np.full((q.shape[0], k), _scan.NO_KEY, dtype=np.int64)
        for start, S in _score_blocks(q, database, bias, chunk_size, buffer):
            _scan.scan_block(S.numpy(), start, key_arr, best_s, best_p, best_key)
        all_s.append(torch.from_numpy(best_s))
        all_p.append(torch.from_numpy(best_p))
    if not all_s:
        return torch.empty(0, k), torch.empty(0, k, dtype=torch.int64)
    return torch.cat(all_s), torch.cat(all_p)


class ExactIndex(SearchIndex):
    """Brute-force search with torch; exact, deterministic (score desc, then id asc).

    ``device``: where vectors live and scores are computed ("cpu", "cuda", ...).
    ``chunk_size``: database rows per score block; ``query_batch``: queries per pass.
    Memory: the vectors (4 N D bytes) plus one [query_batch, chunk_size] float32 block.
    """

    kind = "exact"

    def __init__(self, dim: int, metric: str = "ip", *, device: str | torch.device = "cpu",
                 chunk_size: int = 4096, query_batch: int = 1024) -> None:
        super().__init__(dim, metric)
        self.device = torch.device(device)
        self.chunk_size = positive_int(chunk_size, "chunk_size", error=SearchIndexError)
        self.query_batch = positive_int(query_batch, "query_batch", error=SearchIndexError)
        self._vectors = torch.empty(0, self.dim, device=self.device)
        self._sq_norms = torch.empty(0, device=self.device)   # |x|^2, used by "l2"
        self._pending: list[torch.Tensor] = []                 # added, not yet concatenated

    @property
    def vectors(self) -> torch.Tensor:
        """[N, D] float32 stored vectors (unit length for cosine), in insertion order."""
        self._consolidate()
        return self._vectors

    def _add(self, x: torch.Tensor) -> None:
        self._pending.append(x.to(self.device, copy=True))

    def _consolidate(self) -> None:
        if self._pending:
            new = torch.cat(self._pending)
            self._pending = []
            self._vectors = torch.cat([self._vectors, new])
            if self.metric == "l2":
                self._sq_norms = torch.cat([self._sq_norms, (new * new).sum(dim=1)])

    def _search(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        q = q.to(self.device)
        keys = self._ids.to(self.device)
        opts = dict(keys=keys, chunk_size=self.chunk_size, query_batch=self.query_batch)
        if self.metric != "l2":
            return chunked_topk(q, self.vectors, k, **opts)
        # |q - x|^2 = |q|^2 - (2 q.x - |x|^2): the k smallest distances are the k largest
        # values of 2 q.x - |x|^2, a matmul with the bias -|x|^2
        scores, pos = chunked_topk(2 * q, self.vectors, k, bias=self._sq_norms, **opts)
        dist = ((q * q).sum(dim=1, keepdim=True) - scores).clamp_min_(0)
        order = lexsort_desc(-dist, keys[pos])  # rounding may have made distances equal
        return dist.gather(1, order), pos.gather(1, order)

    def _state(self) -> dict[str, Any]:
        return {"vectors": self.vectors.cpu(),
                "params": {"chunk_size": self.chunk_size, "query_batch": self.query_batch}}

    @classmethod
    def _from_state(cls, state: dict[str, Any], path: Path, **options: Any) -> ExactIndex:
        unknown = set(options) - {"device", "chunk_size", "query_batch"}
        if unknown:
            raise SearchIndexError(f"unknown load option(s) for an exact index: "
                                   f"{', '.join(sorted(unknown))}")
        index = cls(state["dim"], state["metric"], **{**state.get("params", {}), **options})
        vectors = state.get("vectors")
        n = state["ids"].shape[0]
        if not isinstance(vectors, torch.Tensor) or vectors.dtype != torch.float32 \
                or tuple(vectors.shape) != (n, index.dim) \
                or not bool(torch.isfinite(vectors).all()):
            raise SearchIndexError(f"{path} is a corrupt mmkit index (bad vectors)")
        index._pending = [vectors.to(index.device)]
        index._consolidate()
        return index
