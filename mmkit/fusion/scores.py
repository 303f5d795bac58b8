"""Late fusion of score matrices: normalisation, weighted sums, CombSUM / CombMNZ, RRF.

Every function here works on numpy score matrices ``float [Q, G]`` (queries x gallery,
higher is better), one per modality (or system), stacked as ``float [M, Q, G]`` or given as
a list of M matrices. Two special values:

- ``-inf`` marks an **excluded** item (e.g. the query's own image); it stays ``-inf`` in
  every fused matrix and is ignored by the normalisations;
- a row that is entirely ``NaN`` marks a **missing modality** for that query (no sound was
  recorded, no caption given). Equivalently, pass ``present`` bool [Q, M]. A missing
  modality gets weight 0 and the other weights are renormalised to sum to one, so the fused
  row is exactly the fusion of the modalities that are there; no NaN ever comes out.

Methods (Fox & Shaw 1994 for CombSUM / CombMNZ; Cormack, Clarke & Buettcher 2009 for RRF;
Bruch, Gai & Ingber 2023 for the comparison of RRF with a tuned convex combination):

- :func:`weighted_sum`: ``sum_m w_m norm(S_m)``, weights renormalised over the present
  modalities (a convex combination);
- :func:`comb_sum` / :func:`comb_mnz`: the sum of normalised scores over the systems that
  retrieved the item in their top ``depth``; CombMNZ multiplies it by how many did;
- :func:`reciprocal_rank_fusion`: ``sum_m w_m / (k + rank_m(item))`` with 1-based ranks.

No model code is imported here.
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import product
from typing import Callable

import numpy as np

from mmkit.errors import InputError

NORMALISATIONS = ("none", "minmax", "zscore", "rank")
#: Cormack et al.'s constant
RRF_K = 60.0


# ------------------------------------------------------------------------- checking
def stack_scores(scores: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """M score matrices (a list of float [Q, G], or one float [M, Q, G]) as float64
    [M, Q, G]. Raises :class:`InputError` for mismatched shapes, NaN inside a row that is not
    entirely NaN, or +inf."""
    if isinstance(scores, np.ndarray) and scores.ndim == 3:
        s = scores.astype(np.float64)
    else:
        mats = [np.asarray(m) for m in scores]
        if not mats:
            raise InputError("fusion: no score matrices given")
        for i, m in enumerate(mats):
            if m.ndim != 2:
                raise InputError(f"fusion: score matrix {i} must be 2-D [queries, gallery], "
                                 f"got shape {m.shape}")
            if m.shape != mats[0].shape:
                raise InputError(f"fusion: score matrix {i} has shape {m.shape}, matrix 0 "
                                 f"{mats[0].shape}")
        s = np.stack(mats).astype(np.float64)
    if s.ndim != 3:
        raise InputError(f"fusion: scores must be [M, Q, G], got shape {s.shape}")
    nan = np.isnan(s)
    partial = nan.any(2) & ~nan.all(2)
    if partial.any():
        m, q = np.argwhere(partial)[0]
        raise InputError(f"fusion: score matrix {m}, query {q} has NaN in some items only "
                         "(a missing modality is a row that is entirely NaN)")
    if np.isposinf(s).any():
        m, q, g = np.argwhere(np.isposinf(s))[0]
        raise InputError(f"fusion: score matrix {m} has +inf at query {q}, item {g}")
    return s


def presence(scores: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """bool [Q, M]: which modality each query has. ``scores`` float [M, Q, G]; a row that is
    entirely NaN is missing; ``present`` (bool [Q, M]) can only remove more. Every query needs
    at least one modality."""
    have = ~np.isnan(scores).all(2).T                                 # [Q, M]
    if present is not None:
        p = np.asarray(present)
        if p.shape != have.shape or p.dtype != bool:
            raise InputError(f"fusion: present must be bool [{have.shape[0]}, "
                             f"{have.shape[1]}] (queries x modalities), got {p.dtype} "
                             f"{p.shape}")
        have = have & p
    none = ~have.any(1)
    if none.any():
        raise InputError(f"fusion: query {int(np.flatnonzero(none)[0])} has no modality at "
                         f"all ({int(none.sum())} such queries); nothing to rank it by")
    return have


def fusion_weights(weights: Sequence[float] | np.ndarray | None, have: np.ndarray) -> np.ndarray:
    """Per-query weights float64 [Q, M] that sum to one over the present modalities.

    ``weights``: None (equal), float [M] (one per modality) or float [Q, M] (per query, e.g.
    from :class:`mmkit.fusion.gated.GatedFusion`); all finite and >= 0. ``have`` bool [Q, M].
    A missing modality gets 0; if every present modality of a query has weight 0, that
    query's present modalities share equally."""
    q, m = have.shape
    w = np.ones(m) if weights is None else np.asarray(weights, np.float64)
    if w.shape not in ((m,), (q, m)):
        raise InputError(f"fusion: weights must have shape ({m},) or ({q}, {m}), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise InputError("fusion: weights must be finite and >= 0")
    w = np.broadcast_to(w, (q, m)) * have
    total = w.sum(1, keepdims=True)
    equal = have / have.sum(1, keepdims=True)
    return np.where(total > 0, w / np.where(total > 0, total, 1), equal)


# ---------------------------------------------------------------------- normalising
def normalise(scores: np.ndarray, method: str = "zscore") -> np.ndarray:
    """Per-query normalisation of a score matrix float [Q, G] (or [M, Q, G], each matrix on
    its own) over its finite entries; ``-inf`` and NaN stay as they are.

    - ``"minmax"``: (s - min) / (max - min) in [0, 1] (a constant row becomes 0);
    - ``"zscore"``: (s - mean) / std (a constant row becomes 0);
    - ``"rank"``: 1 - (rank - 1) / G' with 1-based ranks among the G' finite items
      (ties by column index, as the metrics);
    - ``"none"``: unchanged.
    """
    if method not in NORMALISATIONS:
        raise InputError(f"normalise: method must be one of {', '.join(NORMALISATIONS)}, "
                         f"got {method!r}")
    s = np.array(scores, np.float64)
    if method == "none":
        return s
    finite = np.isfinite(s)
    count = finite.sum(-1, keepdims=True)
    safe = np.where(finite, s, 0.0)
    if method == "minmax":
        lo = np.where(finite, s, np.inf).min(-1, keepdims=True)
        hi = np.where(finite, s, -np.inf).max(-1, keepdims=True)
        span = hi - lo
        out = np.where(span > 0, (safe - lo) / np.where(span > 0, span, 1), 0.0)
    elif method == "zscore":
        mean = safe.sum(-1, keepdims=True) / np.maximum(count, 1)
        var = (np.where(finite, s - mean, 0.0) ** 2).sum(-1, keepdims=True) / np.maximum(count, 1)
        std = np.sqrt(var)
        out = np.where(std > 0, (safe - mean) / np.where(std > 0, std, 1), 0.0)
    else:
        ranks = _ranks(s)
        out = 1.0 - (ranks - 1) / np.maximum(count, 1)
    return np.where(finite, out, s)


def _ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis (score descending, ties by column ascending);
    non-finite entries rank after every finite one."""
    key = np.where(np.isfinite(s), s, -np.inf)
    order = np.argsort(-key, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, s.shape[-1] + 1), axis=-1)
    return ranks.astype(np.float64)


def _finish(fused: np.ndarray, stacked: np.ndarray, have: np.ndarray) -> np.ndarray:
    """-inf where any present modality excluded the item."""
    excluded = (np.isneginf(stacked) & have.T[:, :, None]).any(0)
    fused[excluded] = -np.inf
    return fused


# -------------------------------------------------------------------------- fusions
def weighted_sum(scores: Sequence[np.ndarray] | np.ndarray,
                 weights: Sequence[float] | np.ndarray | None = None,
                 normalisation: str = "zscore",
                 present: np.ndarray | None = None) -> np.ndarray:
    """Convex combination ``sum_m w_qm norm(S_m)[q]`` -> float64 [Q, G].

    ``scores``: M matrices float [Q, G]; ``weights``: see :func:`fusion_weights` (renormalised
    per query over the present modalities); ``normalisation``: see :func:`normalise`."""
    s = stack_scores(scores)
    have = presence(s, present)
    w = fusion_weights(weights, have)                                   # [Q, M]
    z = normalise(s, normalisation)
    z = np.where(np.isfinite(z), z, 0.0)
    fused = np.einsum("qm,mqg->qg", w, z)
    return _finish(fused, s, have)


def _top_mask(s: np.ndarray, depth: int | None) -> np.ndarray:
    """bool [M, Q, G]: the item is finite and within the top ``depth`` of that system."""
    finite = np.isfinite(s)
    if depth is None:
        return finite
    if int(depth) < 1:
        raise InputError(f"fusion: depth must be >= 1 (or None for all), got {depth}")
    return finite & (_ranks(s) <= int(depth))


def comb_sum(scores: Sequence[np.ndarray] | np.ndarray, normalisation: str = "minmax",
             depth: int | None = None, present: np.ndarray | None = None) -> np.ndarray:
    """CombSUM: the sum of the normalised scores of the systems that put the item in their
    top ``depth`` (None: every system, every item) -> float64 [Q, G]. Min-max normalisation
    by default, as Fox & Shaw; a missing modality adds nothing."""
    s = stack_scores(scores)
    have = presence(s, present)
    hit = _top_mask(s, depth) & have.T[:, :, None]
    fused = np.where(hit, normalise(s, normalisation), 0.0).sum(0)
    return _finish(fused, s, have)


def comb_mnz(scores: Sequence[np.ndarray] | np.ndarray, normalisation: str = "minmax",
             depth: int | None = 100, present: np.ndarray | None = None) -> np.ndarray:
    """CombMNZ: CombSUM times the number of systems that put the item in their top
    ``depth`` -> float64 [Q, G]. With ``depth=None`` every system "retrieves" every item and
    CombMNZ ranks exactly as CombSUM."""
    s = stack_scores(scores)
    have = presence(s, present)
    hit = _top_mask(s, depth) & have.T[:, :, None]
    fused = np.where(hit, normalise(s, normalisation), 0.0).sum(0) * hit.sum(0)
    return _finish(fused, s, have)


def reciprocal_rank_fusion(scores: Sequence[np.ndarray] | np.ndarray, k: float = RRF_K,
                           weights: Sequence[float] | np.ndarray | None = None,
                           depth: int | None = None,
                           present: np.ndarray | None = None) -> np.ndarray:
    """RRF: ``sum_m w_m / (k + rank_m(item))`` over the systems that rank the item in their
    top ``depth`` (1-based ranks; ties by column index) -> float64 [Q, G].

    ``k`` > 0 (Cormack et al. fixed 60); ``weights`` as :func:`fusion_weights` (equal by
    default; renormalised, so they only rescale). Only ranks are used: no normalisation."""
    if not np.isfinite(k) or k <= 0:
        raise InputError(f"reciprocal_rank_fusion: k must be a finite number > 0, got {k}")
    s = stack_scores(scores)
    have = presence(s, present)
    w = fusion_weights(weights, have)
    hit = _top_mask(s, depth) & have.T[:, :, None]
    rr = np.where(hit, 1.0 / (k + _ranks(s)), 0.0)
    fused = np.einsum("qm,mqg->qg", w, rr)
    return _finish(fused, s, have)


# --------------------------------------------------------------------------- tuning
def simplex_grid(m: int, step: float = 0.05) -> np.ndarray:
    """Every weight vector float64 [K, m] on the simplex with entries multiple of ``step``."""
    n = int(round(1 / step))
    if not np.isclose(n * step, 1):
        raise InputError(f"simplex_grid: 1/step must be an integer, got step={step}")
    rows = [c for c in product(range(n + 1), repeat=m - 1) if sum(c) <= n]
    return np.array([[*c, n - sum(c)] for c in rows], np.float64) / n


def tune_weights(scores: Sequence[np.ndarray] | np.ndarray,
                 objective: Callable[[np.ndarray], float], step: float = 0.05,
                 normalisation: str = "zscore") -> tuple[np.ndarray, float]:
    """The convex-combination weights float64 [M] that maximise ``objective(fused)`` over
    :func:`simplex_grid` (ties: the first in grid order), and the best objective value. Tune on a validation split, never on test."""
    s = stack_scores(scores)
    z = normalise(s, normalisation)
    best_w, best = None, -np.inf
    for w in simplex_grid(len(s), step):
        value = float(objective(weighted_sum(z, w, normalisation="none")))
        if value > best:
            best_w, best = w, value
    return best_w, best


def tune_rrf_k(scores: Sequence[np.ndarray] | np.ndarray,
               objective: Callable[[np.ndarray], float],
               ks: Sequence[float] = (1, 2, 5, 10, 20, 40, 60, 100, 200, 500)
               ) -> tuple[float, dict[float, float]]:
    """The RRF constant among ``ks`` that maximises ``objective`` and every k's value."""
    s = stack_scores(scores)
    values = {float(k): float(objective(reciprocal_rank_fusion(s, k))) for k in ks}
    return max(values, key=values.get), values
