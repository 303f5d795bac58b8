"""Input validation shared by the metric functions: arrays in, clean numpy out.

torch is never imported here: a tensor is recognised by the module of its type and
converted with ``.numpy()``, so torch stays an optional input type.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from mmkit.errors import InputError
from mmkit.validate import number, positive_int


def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a numpy array; a torch tensor is detached and copied to the CPU first."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu()
        if x.is_floating_point() and x.element_size() < 4:  # float16 / bfloat16
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def check_scores(scores: Any) -> np.ndarray:
    """Score matrix [Q, N] as a float array (float32 stays float32, integers become float64).

    Larger scores rank higher. NaN is rejected; +-inf are allowed (e.g. to mask an item).
    """
    s = to_numpy(scores)
    if s.ndim != 2:
        raise InputError(f"scores: expected a 2-D array [queries, items], got shape {s.shape}")
    if s.dtype.kind not in "biuf":
        raise InputError(f"scores: expected numbers, got dtype {s.dtype}")
    if s.dtype.kind != "f" or s.dtype.itemsize < 4:
        s = s.astype(np.float64)
    nan = np.isnan(s)
    if nan.any():
        q, j = np.argwhere(nan)[0]
        raise InputError(f"scores: NaN at query {q}, item {j}")
    return s


def check_relevance(relevance: Any, shape: tuple[int, int] | None = None,
                    name: str = "relevance") -> tuple[tuple[int, int], np.ndarray, np.ndarray,
                                                      np.ndarray]:
    """The items with relevance > 0: ``(shape, rows, cols, grades)``, in row-major order.

    ``relevance`` is dense [Q, N] (numpy, torch, bool or numbers) or a scipy.sparse matrix.
    Relevance must be >= 0 and finite; 0 (or absent, when sparse) means not relevant.
    ``shape``, when given, is the shape the relevance must have.
    """
    m = relevance if sp.issparse(relevance) else to_numpy(relevance)
    if m.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array [queries, items], got shape {m.shape}")
    if m.dtype.kind not in "biuf":
        raise InputError(f"{name}: expected numbers, got dtype {m.dtype}")
    if shape is not None and m.shape != tuple(shape):
        raise InputError(f"{name}: shape {tuple(m.shape)} does not match scores {tuple(shape)}")
    if sp.issparse(m):
        m = sp.csr_array(m)  # row-major layout
        if not m.has_canonical_format:  # duplicate entries add up, as in scipy
            m = m.copy()
            m.sum_duplicates()
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        cols, values = m.indices.astype(np.int64), m.data
    else:
        rows, cols = np.nonzero(m)
        values = m[rows, cols]
    grades = values.astype(np.float64)
    bad = ~(grades >= 0) | np.isinf(grades)  # negative, NaN or inf
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise InputError(f"{name}: value {grades[i]} at query {rows[i]}, item {cols[i]}; "
                         "relevance must be finite and >= 0")
    keep = grades > 0  # a sparse matrix may store explicit zeros
    return tuple(m.shape), rows[keep], cols[keep], grades[keep]


def check_k(k: Any, name: str = "k") -> int:
    """``k`` as a positive int (rank cut-off)."""
    return positive_int(k, name)


def check_level(level: Any) -> float:
    """Relevance level: an item is relevant iff its relevance >= ``level`` (> 0)."""
    return number(level, "level", low=0, low_open=True)
