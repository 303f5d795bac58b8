"""Clustered synthetic embeddings for testing and benchmarking nearest-neighbour search.

Real embeddings are clustered and have a low intrinsic dimension; i.i.d. Gaussian vectors
have neither, and on them every approximate index looks bad (all neighbours are almost
equally far away). :func:`clustered_vectors` draws

    x = center[c] + z @ basis + noise * e,    c ~ U{n_clusters}, z ~ N(0, I_r), e ~ N(0, I_D)

with one random basis [r, D] shared by all clusters (r = ``intrinsic_dim``), then scales
every row to unit length (so inner product = cosine), like normalised embeddings.
"""
from __future__ import annotations

import torch


def clustered_vectors(n: int, dim: int, *, n_clusters: int = 1000, intrinsic_dim: int = 16,
                      spread: float = 0.5, noise: float = 0.05, normalize: bool = True,
                      seed: int = 0, batch: int = 65536) -> torch.Tensor:
    """[n, dim] float32 clustered vectors, deterministic for a given ``seed``.

    Before normalising, centres have length ~1 (so two centres are ~1.4 apart), the
    low-rank in-cluster part has length ~``spread`` and the full-rank noise ~``noise``.
    Draw the database and its held-out queries in ONE call and split the rows, so that
    they share the clusters.
    """
    if n < 0 or dim < 1 or n_clusters < 1 or intrinsic_dim < 1:
        raise ValueError("n >= 0, dim >= 1, n_clusters >= 1 and intrinsic_dim >= 1 are required")
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(n_clusters, dim, generator=gen) / dim ** 0.5   # |center| ~ 1
    basis = torch.randn(intrinsic_dim, dim, generator=gen) * (spread / (dim * intrinsic_dim) ** 0.5)
    out = torch.empty(n, dim)
    for start in range(0, n, batch):                      # bounded temporary memory
        rows = out[start:start + batch]
        m = rows.shape[0]
        cluster = torch.randint(n_clusters, (m,), generator=gen)
        z = torch.randn(m, intrinsic_dim, generator=gen)
        torch.randn(m, dim, generator=gen, out=rows)
        rows.mul_(noise / dim ** 0.5).add_(centers[cluster]).addmm_(z, basis)
        if normalize:
            rows.div_(rows.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return out
