"""Early fusion: join the query's modality vectors first, then learn one projection.

:class:`EarlyFusion` maps a query made of M vectors (e.g. a caption's and a sound's
embedding) and a gallery item made of M' vectors (e.g. an image in the text space and in
the audio space) into one space of ``dim`` dimensions, where cosine similarity ranks. The
join is

- ``"concat"``: concatenation [q_1, ..., q_M] (then a linear layer: every modality adds its
  own linear evidence);
- ``"bilinear"``: compact bilinear pooling of two vectors
  (:class:`mmkit.encoders.bilinear.CompactBilinearPooling`, Tensor Sketch; reused, not
  rewritten) of the query's pair AND of the gallery item's pair with the same sketch, whose
  raw inner products estimate the PRODUCT of the two modalities' similarities
  (:func:`bilinear_product_scores`): an item must match both, a multiplicative AND.

A missing modality is a zero vector (``present`` mask): with ``"concat"`` the other
modalities still rank; with ``"bilinear"`` the product is zero, so nothing ranks - the
notebook shows it. Trained (:func:`train_early_fusion`) with CLIP's symmetric InfoNCE
(:class:`mmkit.losses.infonce.SymmetricInfoNCE`) on fresh scenes, with modality dropout.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmkit.encoders.bilinear import CompactBilinearPooling
from mmkit.errors import InputError
from mmkit.losses.infonce import SymmetricInfoNCE
from mmkit.training import LossLog

OPS = ("concat", "bilinear")


class _Join(nn.Module):
    def __init__(self, dims: Sequence[int], op: str, sketch_dim: int, seed: int) -> None:
        super().__init__()
        self.dims, self.op = list(dims), op
        if op == "bilinear":
            if len(dims) != 2:
                raise InputError(f"EarlyFusion: bilinear pooling joins 2 modalities, got {len(dims)}")
            self.cbp = CompactBilinearPooling(dims[0], dims[1], sketch_dim, seed=seed)
            self.out_dim = sketch_dim
        else:
            self.out_dim = sum(dims)

    def forward(self, parts: Sequence[torch.Tensor], present: torch.Tensor | None) -> torch.Tensor:
        if len(parts) != len(self.dims):
            raise InputError(f"EarlyFusion: expected {len(self.dims)} modality vectors, got "
                             f"{len(parts)}")
        parts = [p.float() for p in parts]
        for i, (p, d) in enumerate(zip(parts, self.dims)):
            if p.ndim != 2 or p.shape[1] != d:
                raise InputError(f"EarlyFusion: modality {i} must be [B, {d}], got "
                                 f"{tuple(p.shape)}")
        if present is not None:
            parts = [p * present[:, i:i + 1].to(p.dtype) for i, p in enumerate(parts)]
        if self.op == "bilinear":
            return self.cbp(parts[0], parts[1])
        return torch.cat(parts, dim=1)


class EarlyFusion(nn.Module):
    """Query vectors float [B, d_m] (M of them) and gallery vectors float [G, d'_m] (M')
    -> L2-normalised float [B, dim] and [G, dim]; ``op`` joins the query side
    (``"concat"`` or ``"bilinear"``); the gallery side is concatenated."""

    def __init__(self, query_dims: Sequence[int], gallery_dims: Sequence[int], dim: int = 64,
                 op: str = "concat", sketch_dim: int = 1024, seed: int = 0) -> None:
        super().__init__()
        if op not in OPS:
            raise InputError(f"EarlyFusion: op must be one of {', '.join(OPS)}, got {op!r}")
        self.query_join = _Join(query_dims, op, sketch_dim, seed)
        # bilinear: the gallery's pair is pooled by the SAME sketch, so that raw inner products
        # estimate <q_1, g_1> <q_2, g_2> before the projections
        self.gallery_join = (self.query_join if op == "bilinear"
                             else _Join(gallery_dims, "concat", sketch_dim, seed))
        if op == "bilinear" and list(gallery_dims) != list(query_dims):
            raise InputError(f"EarlyFusion: bilinear pooling needs gallery dims equal to the "
                             f"query dims {list(query_dims)}, got {list(gallery_dims)}")
        self.query_proj = nn.Linear(self.query_join.out_dim, dim)
        self.gallery_proj = nn.Linear(self.gallery_join.out_dim, dim)

    def embed_queries(self, parts: Sequence[torch.Tensor],
                      present: torch.Tensor | None = None) -> torch.Tensor:
        """M tensors float [B, d_m] (+ ``present`` bool [B, M]) -> float [B, dim]."""
        return F.normalize(self.query_proj(self.query_join(parts, present)), dim=1)

    def embed_gallery(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """M' tensors float [G, d'_m] -> float [G, dim]."""
        return F.normalize(self.gallery_proj(self.gallery_join(parts, None)), dim=1)

    @torch.no_grad()
    def scores(self, query_parts: Sequence[np.ndarray], gallery_parts: Sequence[np.ndarray],
               present: np.ndarray | None = None) -> np.ndarray:
        """Cosine scores float32 [Q, G] from numpy inputs (eval mode)."""
        self.eval()
        q = self.embed_queries([torch.as_tensor(np.asarray(p, np.float32)) for p in query_parts],
                               None if present is None else torch.as_tensor(present))
        g = self.embed_gallery([torch.as_tensor(np.asarray(p, np.float32)) for p in gallery_parts])
        return (q @ g.T).numpy()


def train_early_fusion(model: EarlyFusion, query_parts: Sequence[np.ndarray],
                       gallery_parts: Sequence[np.ndarray], query_item: np.ndarray,
                       epochs: int = 30, batch: int = 256, lr: float = 3e-3,
                       dropout: float = 0.2, seed: int = 0) -> list[float]:
    """Fit ``model`` so that query b lands on gallery item ``query_item[b]``; returns the
    mean loss per epoch.

    ``query_parts``: M arrays float [B, d_m] (training queries); ``gallery_parts``: M'
    arrays float [G, d'_m]; ``query_item`` int [B] in [0, G). Each batch pairs queries with
    their items under symmetric InfoNCE (other queries of the same item are not negatives);
    ``dropout``: the probability that a query's modality is zeroed (one is always kept),
    so the model learns to rank with a modality missing."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    qp = [torch.as_tensor(np.asarray(p, np.float32)) for p in query_parts]
    gp = [torch.as_tensor(np.asarray(p, np.float32)) for p in gallery_parts]
    item = torch.as_tensor(np.asarray(query_item, np.int64))
    loss_fn = SymmetricInfoNCE(temperature=0.07, learnable=True)
    opt = torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()), lr=lr)
    m = len(qp)
    log = LossLog()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(item), generator=gen)
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            keep = torch.rand(len(idx), m, generator=gen) >= dropout
            forced = torch.randint(0, m, (len(idx),), generator=gen)
            keep[torch.arange(len(idx)), forced] = True
            q = model.embed_queries([p[idx] for p in qp], keep)
            g = model.embed_gallery([p[item[idx]] for p in gp])
            loss = loss_fn(g, q, item[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.add(loss, n=len(idx))
        log.end_epoch()
    model.eval()
    return log.epochs


@torch.no_grad()
def bilinear_product_scores(query_parts: Sequence[np.ndarray],
                            gallery_parts: Sequence[np.ndarray], sketch_dim: int = 4096,
                            seed: int = 0) -> np.ndarray:
    """Untrained compact bilinear fusion: ``<Psi(q_1, q_2), Psi(g_1, g_2)>`` float32 [Q, G]
    with raw Tensor Sketches (no square root, no normalisation), an unbiased estimate of the
    product of similarities ``<q_1, g_1> <q_2, g_2>``. Two query arrays float [Q, d_1],
    [Q, d_2]; two gallery arrays float [G, d_1], [G, d_2]."""
    if len(query_parts) != 2 or len(gallery_parts) != 2:
        raise InputError("bilinear_product_scores: two query and two gallery arrays expected")
    a, b = (torch.as_tensor(np.asarray(p, np.float32)) for p in query_parts)
    c, d = (torch.as_tensor(np.asarray(p, np.float32)) for p in gallery_parts)
    cbp = CompactBilinearPooling(a.shape[1], b.shape[1], sketch_dim, seed=seed,
                                 signed_sqrt=False, l2=False)
    return (cbp(a, b) @ cbp(c, d).T).numpy()
