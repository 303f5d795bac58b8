"""Re-ranking by a random walk on a multi-layer graph (after Khasanova, Dong & Frossard 2016).

The gallery of G items is a graph with L **layers**, one per modality (e.g. the images'
pictures, their sounds, their captions): in layer l, each item is joined to its k nearest
neighbours under that modality's similarity (a k-NN graph, symmetrised, edge weight the
similarity clipped at 0). **Inter-layer edges** join the L nodes of the same item. Node
``(l, g)`` is row ``l * G + g`` of the N = L G nodes.

A walker moves along an edge chosen with probability proportional to its weight, where the
edges of layer l are scaled by ``layer_weights[l]`` and each inter-layer edge has weight
``inter_weight``: the row-stochastic transition matrix P [N, N] (:func:`transition_matrix`).
With probability ``restart`` it jumps back to the query's nodes, drawn from a restart
distribution e [N] (:func:`restart_vector`: the top items of the input ranking, in every
layer). The stationary distribution x of this random walk with restart solves

    x = (1 - r) P^T x + r e,   i.e.   (I - (1 - r) P^T) x = r e,

exactly (:func:`stationary`, one sparse LU factorisation for all queries). An item's new
score is its mass summed over its L nodes (:func:`rerank`). The walk spreads the mass of
the input's top items to their neighbours in every modality: items that many good items
point to rise, isolated false hits fall.

Layer weights, inter-layer weight and restart probability are tuned on a validation split
to maximise mAP (:func:`tune_graph`), never on the test split. Numpy + scipy.sparse only.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mmkit.errors import InputError
from mmkit.fusion.scores import normalise


def knn_graph(similarity: np.ndarray, k: int) -> sp.csr_array:
    """Symmetric k-NN graph float64 [G, G] (sparse) of a similarity matrix float [G, G]:
    edge (i, j) when j is among i's k most similar items or i among j's (no self loops),
    weight ``max(sim(i, j), 0)`` (the larger of the two directions)."""
    s = np.asarray(similarity, np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise InputError(f"knn_graph: similarity must be square [G, G], got {s.shape}")
    if not np.isfinite(s).all():
        raise InputError("knn_graph: similarity has NaN or infinite values")
    g = len(s)
    if not 1 <= int(k) < g:
        raise InputError(f"knn_graph: k must be in [1, {g - 1}] for {g} items, got {k}")
    s = s.copy()
    np.fill_diagonal(s, -np.inf)
    nn = np.argpartition(-s, int(k) - 1, axis=1)[:, :int(k)]
    rows = np.repeat(np.arange(g), int(k))
    w = np.maximum(s[rows, nn.ravel()], 0.0)
    a = sp.csr_array((w, (rows, nn.ravel())), shape=(g, g))
    return a.maximum(a.T).tocsr()


def transition_matrix(layers: Sequence[sp.csr_array], layer_weights: Sequence[float],
                      inter_weight: float) -> sp.csr_array:
    """Row-stochastic P float64 [L G, L G] of the multi-layer graph (see the module doc).

    ``layers``: L k-NN graphs [G, G] (:func:`knn_graph`); ``layer_weights`` float [L] >= 0
    scales each layer's edges; ``inter_weight`` >= 0 is the weight of each edge between
    the nodes of one item in two layers. A node without any edge stays where it is (self
    loop), so every row sums to one."""
    L = len(layers)
    if L == 0:
        raise InputError("transition_matrix: no layers")
    g = layers[0].shape[0]
    if any(a.shape != (g, g) for a in layers):
        raise InputError("transition_matrix: every layer must be [G, G] over the same items")
    lw = np.asarray(layer_weights, np.float64)
    if lw.shape != (L,) or (lw < 0).any() or not np.isfinite(lw).all():
        raise InputError(f"transition_matrix: layer_weights must be {L} finite numbers >= 0")
    if not np.isfinite(inter_weight) or inter_weight < 0:
        raise InputError("transition_matrix: inter_weight must be a finite number >= 0")
    blocks = [[None] * L for _ in range(L)]
    eye = sp.identity(g, format="csr")
    for i in range(L):
        for j in range(L):
            blocks[i][j] = (lw[i] * layers[i]) if i == j else inter_weight * eye
    a = sp.block_array(blocks, format="csr")
    a.eliminate_zeros()
    deg = np.asarray(a.sum(1)).ravel()
    lonely = deg == 0
    if lonely.any():
        a = (a + sp.diags_array(lonely.astype(np.float64))).tocsr()
        deg = np.where(lonely, 1.0, deg)
    return (sp.diags_array(1.0 / deg) @ a).tocsr()


def stationary(P: sp.csr_array | np.ndarray, restart: np.ndarray, r: float) -> np.ndarray:
    """Stationary distribution(s) of the random walk with restart: the solution x of
    ``(I - (1 - r) P^T) x = r e``. ``P`` [N, N] row-stochastic (sparse or dense);
    ``restart`` e float [N] or [N, Q] (columns sum to one); ``0 < r <= 1``.
    Returns float64 of ``restart``'s shape (each column sums to one)."""
    if not 0 < r <= 1:
        raise InputError(f"stationary: restart probability r must be in (0, 1], got {r}")
    e = np.asarray(restart, np.float64)
    n = P.shape[0]
    if e.shape[0] != n:
        raise InputError(f"stationary: restart has {e.shape[0]} rows for {n} nodes")
    A = sp.identity(n, format="csc") - (1 - r) * sp.csc_array(P).T
    return spla.splu(sp.csc_matrix(A)).solve(r * e)


def restart_vector(scores: np.ndarray, n_layers: int, top: int = 10,
                   layer_weights: Sequence[float] | None = None,
                   temperature: float = 0.1) -> np.ndarray:
    """Restart distributions float64 [L G, Q] from an input ranking ``scores`` float [Q, G]:
    each query's mass sits on its ``top`` best items, softmax(z / temperature) of their
    z-scored input scores, in every layer (shared by ``layer_weights``, default equal)."""

    s = np.asarray(scores, np.float64)
    q, g = s.shape
    top = min(int(top), g)
    if top < 1:
        raise InputError(f"restart_vector: top must be >= 1, got {top}")
    z = normalise(s, "zscore")
    idx = np.argsort(-np.where(np.isfinite(z), z, -np.inf), axis=1, kind="stable")[:, :top]
    val = np.take_along_axis(z, idx, 1)
    val = np.where(np.isfinite(val), val, -np.inf) / temperature
    val = np.exp(val - val.max(1, keepdims=True))
    val /= val.sum(1, keepdims=True)
    base = np.zeros((q, g))
    np.put_along_axis(base, idx, val, 1)
    lw = np.ones(n_layers) if layer_weights is None else np.asarray(layer_weights, np.float64)
    lw = lw / lw.sum()
    return np.concatenate([w * base.T for w in lw], axis=0)


def rerank(scores: np.ndarray, P: sp.csr_array, n_layers: int, r: float = 0.3,
           top: int = 10, temperature: float = 0.1) -> np.ndarray:
    """Re-ranked scores float64 [Q, G]: each item's stationary mass summed over its layers,
    from a walk that restarts at the input ranking's ``top`` items. Items the input
    excluded (``-inf``) stay ``-inf``."""
    s = np.asarray(scores, np.float64)
    g = s.shape[1]
    x = stationary(P, restart_vector(s, n_layers, top, temperature=temperature), r)
    out = x.reshape(n_layers, g, -1).sum(0).T
    out[np.isneginf(s)] = -np.inf
    return out


@dataclass(frozen=True)
class GraphSetting:
    """One configuration of the multi-layer walk (what :func:`tune_graph` searches)."""
    layer_weights: tuple[float, ...]
    inter_weight: float
    restart: float
    top: int = 10


def rerank_with(scores: np.ndarray, layers: Sequence[sp.csr_array],
                setting: GraphSetting) -> np.ndarray:
    """:func:`rerank` with the transition matrix of ``setting`` over ``layers``."""
    P = transition_matrix(layers, setting.layer_weights, setting.inter_weight)
    return rerank(scores, P, len(layers), setting.restart, setting.top)


def tune_graph(scores: np.ndarray, layers: Sequence[sp.csr_array],
               objective: Callable[[np.ndarray], float],
               layer_grid: Sequence[float] = (0.0, 0.5, 1.0),
               inter_grid: Sequence[float] = (0.1, 0.5, 2.0),
               restart_grid: Sequence[float] = (0.3, 0.6),
               tops: Sequence[int] = (5, 20)) -> tuple[GraphSetting, float]:
    """Grid search on a validation split: the :class:`GraphSetting` maximising
    ``objective(reranked)`` (e.g. mAP) and its value. Settings where every layer weight is 0
    are skipped."""
    best, best_value = None, -np.inf
    for lw in product(layer_grid, repeat=len(layers)):
        if not any(lw):
            continue
        for iw, r, top in product(inter_grid, restart_grid, tops):
            setting = GraphSetting(tuple(float(v) for v in lw), float(iw), float(r), int(top))
            value = float(objective(rerank_with(scores, layers, setting)))
            if value > best_value:
                best, best_value = setting, value
    return best, best_value
