"""Rank correlation between two rankings or score vectors: Spearman rho and Kendall tau-b.

Both take two arrays of the same shape, [N] (returns a float) or [Q, N] (one value per row,
float64 [Q]), compare them row by row, and handle ties as scipy.stats does: Spearman uses
average ranks, Kendall's tau-b corrects for ties in either input. Both are NaN when an input
row is constant (the correlation is undefined), as in scipy.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mmkit.errors import InputError
from mmkit.metrics.checks import to_numpy


def _two_rankings(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both inputs as float64 [Q, N], and whether they were 1-D (a single row)."""
    a, b = to_numpy(a), to_numpy(b)
    if a.shape != b.shape or a.ndim not in (1, 2):
        raise InputError(f"expected two arrays of the same shape [N] or [Q, N], "
                         f"got {a.shape} and {b.shape}")
    if a.shape[-1] < 2:
        raise InputError(f"need at least 2 items per row to correlate, got {a.shape[-1]}")
    x, y = (np.atleast_2d(v).astype(np.float64) for v in (a, b))
    if np.isnan(x).any() or np.isnan(y).any():
        raise InputError("inputs contain NaN")
    return x, y, a.ndim == 1


def average_ranks(x: np.ndarray) -> np.ndarray:
    """[Q, N] 1-based ranks within each row; tied values share the mean of their ranks."""
    n = x.shape[1]
    order = np.argsort(x, axis=1, kind="stable")
    ordered = np.take_along_axis(x, order, axis=1)
    starts = np.ones(x.shape, dtype=bool)  # a tie group starts here
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(x.shape, dtype=bool)  # a tie group ends here
    ends[:, :-1] = starts[:, 1:]
    position = np.arange(n)
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, n)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
    return ranks


def spearman_rho(a: Any, b: Any) -> float | np.ndarray:
    """Spearman's rho: the Pearson correlation of the average ranks of ``a`` and ``b``."""
    x, y, single = _two_rankings(a, b)
    x, y = (r - r.mean(axis=1, keepdims=True) for r in (average_ranks(x), average_ranks(y)))
    denominator = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    numerator = (x * y).sum(axis=1)
    rho = np.full(len(x), np.nan)
    np.divide(numerator, denominator, out=rho, where=denominator > 0)
    return float(rho[0]) if single else rho


def kendall_tau_b(a: Any, b: Any) -> float | np.ndarray:
    """Kendall's tau-b = (concordant - discordant) / sqrt((n0 - ties_a) (n0 - ties_b)).

    Written with the signs of all pairwise differences: O(N^2) time and memory per row,
    fine for N up to a few thousand (scipy.stats.kendalltau is O(N log N)).
    """
    x, y, single = _two_rankings(a, b)
    n = x.shape[1]
    tau = np.full(len(x), np.nan)
    rows_per_chunk = max(1, 2**22 // (n * n))
    for start in range(0, len(x), rows_per_chunk):
        part = slice(start, start + rows_per_chunk)
        sx = np.sign(x[part, :, None] - x[part, None, :])  # [rows, N, N], each pair twice
        sy = np.sign(y[part, :, None] - y[part, None, :])
        numerator = (sx * sy).sum(axis=(1, 2))
        denominator = np.sqrt(np.abs(sx).sum(axis=(1, 2)) * np.abs(sy).sum(axis=(1, 2)))
        np.divide(numerator, denominator, out=tau[part], where=denominator > 0)
    return float(tau[0]) if single else tau
