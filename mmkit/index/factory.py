"""Make or read an index of any kind: :func:`build_index` picks the backend by ``kind``
(:class:`~mmkit.index.exact.ExactIndex` for "exact", :class:`~mmkit.index.faiss_backend.FaissIndex`
for "flat", "ivf", "hnsw", "ivfpq"); :func:`load_index` reads a file written by
:meth:`~mmkit.index.base.SearchIndex.save` back into its backend.

The backends build on :mod:`mmkit.index.base`; only this module knows them all. faiss is
imported when a faiss index is first made or loaded (see :mod:`mmkit.index.faiss_backend`),
so ``import mmkit.index`` stays fast.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mmkit.index.base import (FILE_FORMAT, FILE_VERSION, KINDS, SIMILARITIES, SearchIndex,
                              SearchIndexError)
from mmkit.index.exact import ExactIndex
from mmkit.index.faiss_backend import FaissIndex


def build_index(kind: str = "exact", dim: int | None = None, metric: str = "ip",
                **params: Any) -> SearchIndex:
    """A new empty index of ``kind`` ("exact", "flat", "ivf", "hnsw", "ivfpq").

    ``params`` go to the index class: ExactIndex (device, chunk_size, query_batch) or
    FaissIndex (nlist, nprobe, M, ef_construction, ef_search, m, nbits, refine, ...).
    """
    if dim is None:
        raise SearchIndexError("build_index needs dim= (the vector length)")
    if kind == "exact":
        return ExactIndex(dim, metric, **params)
    if kind in KINDS:
        return FaissIndex(kind, dim, metric, **params)
    raise SearchIndexError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")


def load_index(path: str | os.PathLike, **options: Any) -> SearchIndex:
    """Read an index written by :meth:`SearchIndex.save`.

    ``options``: run-time settings of the loaded index, e.g. ``device="cpu"`` or
    ``chunk_size`` for an exact index. Any unreadable, truncated, foreign or inconsistent
    file raises :class:`SearchIndexError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise SearchIndexError(f"index file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip/pickle errors of many types: all mean "not a valid file"
        raise SearchIndexError(f"cannot read index file {path}: corrupt or not an mmkit index "
                               f"({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FILE_FORMAT:
        raise SearchIndexError(f"{path} is not an mmkit index file")
    if state.get("version") != FILE_VERSION:
        raise SearchIndexError(f"{path} has index format version {state.get('version')!r}; "
                               f"this mmkit reads version {FILE_VERSION}")
    kind = state.get("kind")
    ids = state.get("ids")
    if kind not in KINDS or not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64 \
            or ids.ndim != 1 or state.get("metric") not in SIMILARITIES:
        raise SearchIndexError(f"{path} is a corrupt mmkit index (bad header)")
    cls: type[SearchIndex] = ExactIndex if kind == "exact" else FaissIndex
    try:
        index = cls._from_state(state, path, **options)
    except SearchIndexError:
        raise
    except Exception as e:
        raise SearchIndexError(f"{path} is a corrupt mmkit index "
                               f"({type(e).__name__}: {e})") from None
    index._ids = ids.clone()
    return index


__all__ = ["build_index", "load_index"]
