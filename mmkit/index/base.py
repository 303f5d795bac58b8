"""The one interface of every search index and its input checks.

The factory and the loader (:func:`~mmkit.index.factory.build_index`,
:func:`~mmkit.index.factory.load_index`), which pick a backend by kind, are in
:mod:`mmkit.index.factory`: this module never imports a backend.

Conventions shared by all kinds:

- vectors and queries are [N, D] / [Q, D] arrays (numpy or torch, any real dtype; stored
  as float32). NaN/inf values are rejected.
- ``metric`` names how vectors are compared (one of :data:`SIMILARITIES`):
  ``"ip"``: score = inner product, higher is better.
  ``"cosine"``: vectors and queries are scaled to unit length, then "ip".
  ``"l2"``: the returned scores are SQUARED Euclidean distances, ascending (lower
  is better), as in faiss.
- every stored vector has an int64 id >= 0: yours (``add(x, ids=...)``) or, by default,
  consecutive numbers that continue after the largest id so far (0, 1, 2, ... at first).
- :meth:`SearchIndex.search` returns a :class:`SearchResult` (scores [Q, k] float32,
  ids [Q, k] int64), CPU tensors, best first. Approximate indexes may return fewer than
  k hits for a query: the missing places hold id -1 and score -inf (+inf for "l2").
- a saved index is one file (``torch.save`` of a dict of tensors and plain values, read
  back with ``weights_only=True``), written atomically.
"""
from __future__ import annotations

import abc
import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from mmkit._io import atomic_path
from mmkit.errors import MMKitError
from mmkit.validate import positive_int

KINDS = ("exact", "flat", "ivf", "hnsw", "ivfpq")
#: how an index compares vectors (its ``metric=``): similarities ("ip", "cosine") or the
#: squared Euclidean distance ("l2"). Not evaluation metrics (R@K, mAP: :mod:`mmkit.metrics`).
SIMILARITIES = ("ip", "cosine", "l2")
FILE_FORMAT = "mmkit.index"
FILE_VERSION = 1
#: largest vector length accepted: inner products of two such vectors (and the squared
#: distances of "l2") stay far inside float32's range (3.4e38), so no score overflows
MAX_NORM = 2.0 ** 62
ADD_BATCH = 65536          # rows per step when adding (one progress-bar tick)
PROGRESS_MIN_ROWS = 200_000  # ``progress=None`` shows a bar from this many rows on


class SearchIndexError(MMKitError, ValueError):
    """A search index was used wrongly, or a saved index file cannot be read."""


class SearchResult(NamedTuple):
    """Search hits, best first: ``scores, ids = index.search(queries, k)``."""

    scores: torch.Tensor  # [Q, k] float32 (squared distances for metric "l2")
    ids: torch.Tensor     # [Q, k] int64 (-1 where an approximate index found fewer than k)


# ----------------------------------------------------------------------------- input checks

def as_matrix(x: Any, dim: int | None, what: str) -> torch.Tensor:
    """[N, D] float32 tensor from a numpy/torch array; checks shape, dim and finiteness."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.from_numpy(np.ascontiguousarray(x))
        except (TypeError, ValueError, RuntimeError) as e:
            raise SearchIndexError(f"{what} must be a numeric array, got {type(x).__name__}") from e
    if t.is_complex() or t.dtype == torch.bool:
        raise SearchIndexError(f"{what} must be real numbers, got dtype {t.dtype}")
    if t.ndim != 2:
        want = f"[N, {dim}]" if dim else "[N, D]"
        raise SearchIndexError(f"{what} must be a 2-D array {want}, got shape {tuple(t.shape)}")
    if dim is not None and t.shape[1] != dim:
        raise SearchIndexError(f"dimension mismatch: {what} have {t.shape[1]} columns, "
                               f"the index has dim={dim}")
    t = t.to(torch.float32).contiguous()
    finite = torch.isfinite(t).all(dim=1)
    if not bool(finite.all()):
        row = int((~finite).nonzero()[0, 0])
        raise SearchIndexError(f"{what} contain NaN or infinite values (first at row {row})")
    if t.numel():
        norms = torch.linalg.vector_norm(t, dim=1)
        big = ~(norms < MAX_NORM)
        if bool(big.any()):
            row = int(big.nonzero()[0, 0])
            raise SearchIndexError(
                f"{what} row {row} has length {float(norms[row]):.3g}: scores would overflow "
                f"float32; scale the vectors below length {MAX_NORM:.3g}")
    return t


def unit_rows(x: torch.Tensor, what: str) -> torch.Tensor:
    """Rows scaled to length 1 (a new tensor); a zero row has no direction: error."""
    norms = x.norm(dim=1, keepdim=True)
    zero = norms[:, 0] == 0
    if bool(zero.any()):
        row = int(zero.nonzero()[0, 0])
        raise SearchIndexError(f"{what} row {row} is all zeros: it has no cosine similarity")
    return x / norms


def check_search_k(k: Any, size: int) -> int:
    """k as an int in [1, size] (a search cannot return more hits than stored vectors)."""
    k = positive_int(k, "k", error=SearchIndexError)
    if k > size:
        raise SearchIndexError(f"k={k} is larger than the index ({size} vectors)")
    return int(k)


# ----------------------------------------------------------------------------- the interface

class SearchIndex(abc.ABC):
    """add / search / save over one kind of index; see the module docstring for conventions.

    Subclasses implement ``_add`` (store rows at positions len..len+N-1), ``_search``
    (top-k positions, best first), ``_state`` / ``_from_state`` (saving) and optionally
    ``train`` and the search-time knob.
    """

    kind: str = ""
    #: name of the search-time parameter that trades speed for recall (None: exact)
    search_knob: str | None = None

    def __init__(self, dim: int, metric: str = "ip") -> None:
        dim = positive_int(dim, "dim", error=SearchIndexError)
        if metric not in SIMILARITIES:
            raise SearchIndexError(f"unknown metric {metric!r}; choose one of "
                                   f"{', '.join(SIMILARITIES)}")
        self.dim = int(dim)
        self.metric = metric
        self._ids = torch.empty(0, dtype=torch.int64)   # [N] external id of each position

    # --- size and ids
    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kind={self.kind!r}, dim={self.dim}, "
                f"metric={self.metric!r}, n={len(self)})")

    @property
    def ids(self) -> torch.Tensor:
        """[N] int64 ids of the stored vectors, in insertion order."""
        return self._ids.clone()

    @property
    def is_trained(self) -> bool:
        """False for an IVF index before :meth:`train` (or the first big enough add)."""
        return True

    def train(self, vectors: Any) -> None:
        """Learn the index structure from [N, D] sample vectors (no-op for most kinds)."""
        as_matrix(vectors, self.dim, "training vectors")

    # --- search-time knob (nprobe, ef_search)
    @property
    def search_params(self) -> dict[str, int]:
        """The current search-time parameters, e.g. ``{"nprobe": 8}``."""
        return {}

    def set_search_params(self, **params: int) -> None:
        """Set search-time parameters, e.g. ``index.set_search_params(nprobe=16)``."""
        if params:
            raise SearchIndexError(f"{self.kind} index has no search parameters "
                                   f"(got {', '.join(sorted(params))})")

    def knob_range(self) -> tuple[int, int]:
        """Smallest and largest sensible value of :attr:`search_knob`."""
        raise SearchIndexError(f"{self.kind} index has nothing to tune")

    # --- add and search
    def add(self, vectors: Any, ids: Any = None, *, progress: bool | None = None) -> None:
        """Add [N, D] vectors with optional int64 ids [N] (unique, >= 0, new to the index).

        ``progress``: show a tqdm bar (None: only for big adds, >= 200k rows).
        """
        x = as_matrix(vectors, self.dim, "vectors")
        new_ids = self._new_ids(ids, x.shape[0])
        if x.shape[0] == 0:
            return
        if self.metric == "cosine" and bool((x.norm(dim=1) == 0).any()):
            unit_rows(x, "vectors")  # raises, naming the row, before anything is stored
        self._prepare_add(x)
        show = x.shape[0] >= PROGRESS_MIN_ROWS if progress is None else progress
        with tqdm(total=x.shape[0], desc=f"adding to {self.kind} index", unit="vec",
                  disable=not show, leave=False) as bar:
            for start in range(0, x.shape[0], ADD_BATCH):
                batch = x[start:start + ADD_BATCH]
                if self.metric == "cosine":
                    batch = unit_rows(batch, "vectors")
                self._add(batch)
                # ids grow with the stored rows, so an interrupted add stays consistent
                self._ids = torch.cat([self._ids, new_ids[start:start + ADD_BATCH]])
                bar.update(batch.shape[0])

    def search(self, queries: Any, k: int) -> SearchResult:
        """Top-k hits for [Q, D] queries: (scores [Q, k] float32, ids [Q, k] int64), best first."""
        q = as_matrix(queries, self.dim, "queries")
        if len(self) == 0:
            raise SearchIndexError(f"the {self.kind} index is empty: add vectors before searching")
        k = check_search_k(k, len(self))
        if self.metric == "cosine":
            q = unit_rows(q, "queries")
        scores, positions = self._search(q, k)
        scores = scores.to("cpu", torch.float32)
        positions = positions.to("cpu", torch.int64)
        found = positions >= 0
        ids = torch.where(found, self._ids[positions.clamp_min(0)], torch.full_like(positions, -1))
        missing = -float("inf") if self.metric != "l2" else float("inf")
        scores = torch.where(found, scores, torch.full_like(scores, missing))
        return SearchResult(scores, ids)

    def _new_ids(self, ids: Any, n: int) -> torch.Tensor:
        """[n] int64 ids for a batch being added: checked, or consecutive after the largest."""
        if ids is None:
            start = int(self._ids.max()) + 1 if len(self) else 0
            return torch.arange(start, start + n, dtype=torch.int64)
        try:
            t = ids.detach().cpu() if isinstance(ids, torch.Tensor) \
                else torch.from_numpy(np.asarray(ids))
        except TypeError:
            raise SearchIndexError(f"ids must be integers, got {type(ids).__name__}") from None
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise SearchIndexError(f"ids must be integers, got dtype {t.dtype}")
        t = t.to(torch.int64)
        if t.ndim != 1 or t.shape[0] != n:
            raise SearchIndexError(f"ids must have shape [{n}] (one per vector), "
                                   f"got {tuple(t.shape)}")
        if n and int(t.min()) < 0:
            raise SearchIndexError("ids must be >= 0 (-1 marks a missing hit)")
        if torch.unique(t).shape[0] != n:
            raise SearchIndexError("ids contain duplicates")
        clash = torch.isin(t, self._ids)
        if bool(clash.any()):
            raise SearchIndexError(f"id {int(t[clash][0])} is already in the index")
        return t.clone()

    # --- saving
    def save(self, path: str | os.PathLike) -> None:
        """Write the index to one file, atomically (a failed save leaves no partial file)."""
        state = {"format": FILE_FORMAT, "version": FILE_VERSION, "kind": self.kind,
                 "dim": self.dim, "metric": self.metric, "ids": self._ids}
        state.update(self._state())
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    # --- what a kind implements
    def _prepare_add(self, x: torch.Tensor) -> None:
        """Hook before the batches of one add (IVF trains here when it must)."""

    @abc.abstractmethod
    def _add(self, x: torch.Tensor) -> None:
        """Store [n, D] float32 rows (already unit length for cosine) after the existing ones."""

    @abc.abstractmethod
    def _search(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores [Q, k], positions [Q, k] int64, -1 = none), best first, for valid input."""

    @abc.abstractmethod
    def _state(self) -> dict[str, Any]:
        """Tensors and plain values (str/int/float/bool/None/list/dict) to save."""

    @classmethod
    @abc.abstractmethod
    def _from_state(cls, state: dict[str, Any], path: Path, **options: Any) -> SearchIndex:
        """Rebuild (without ids) from a state dict; raise SearchIndexError if inconsistent."""


def __getattr__(name: str) -> Any:
    """``METRICS``: the old name of :data:`SIMILARITIES` (deprecated: "metric" also means
    evaluation metrics elsewhere in mmkit)."""
    if name == "METRICS":
        warnings.warn("mmkit.index METRICS is deprecated: use SIMILARITIES", DeprecationWarning,
                      stacklevel=2)
        return SIMILARITIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
