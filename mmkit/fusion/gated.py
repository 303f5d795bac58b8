"""Attention / gated fusion: per-query modality weights learned from how each modality's
scores look.

A fixed convex combination gives every query the same weights. But a query whose sound is
noise (or belongs to another scene) has a flat, unconfident sound score row, while a
caption that names a rare attribute has a peaked one. :class:`GatedFusion` reads, for each
query and modality m, a few statistics of the z-scored row z_m (:func:`row_features`: the
top score, its margin over the second, the mean of the top 10, and its agreement with the
other modalities) and turns them into a
weight, softmax over the modalities the query has (a missing one gets weight exactly 0; the
weights sum to one):

    w_qm = softmax_m( a_m + MLP(features_qm) ),   fused_q = sum_m w_qm z_qm.

Trained (:func:`train_gated`) on score matrices of FRESH scenes to put the positives first
(listwise softmax cross-entropy over the gallery), with random missing and corrupted
modalities so that it learns to distrust a modality that looks wrong.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mmkit.errors import InputError
from mmkit.fusion.scores import normalise, presence, stack_scores, weighted_sum
from mmkit.training import LossLog, seeded

N_FEATURES = 4


def row_features(z: np.ndarray) -> np.ndarray:
    """float32 [M, Q, 4] from z-scored scores float [M, Q, G] (-inf / NaN ignored): top-1
    score, top-1 minus top-2, mean of the top 10, and the **agreement** of the row with the
    mean row of the query's other present modalities (their correlation over the gallery;
    0 when there is no other). A missing row (all NaN) gives zeros."""
    s = np.where(np.isfinite(z), z, -np.inf)
    top = -np.sort(-s, axis=-1)[..., :10]
    top = np.where(np.isfinite(top), top, 0.0)
    clean = np.where(np.isfinite(z), z, 0.0)
    have = np.isfinite(z).any(-1)                                      # [M, Q]
    total = clean.sum(0)
    n_other = have.sum(0)[None] - have                                 # [M, Q]
    other = (total[None] - clean) / np.maximum(n_other, 1)[..., None]
    a = clean - clean.mean(-1, keepdims=True)
    b = other - other.mean(-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    agree = np.where((den > 0) & (n_other > 0) & have, (a * b).sum(-1) / np.where(den > 0, den, 1), 0.0)
    f = np.stack([top[..., 0], top[..., 0] - top[..., 1], top.mean(-1), agree], -1)
    return f.astype(np.float32)


class GatedFusion(nn.Module):
    """Per-query weights over M modalities from :func:`row_features`: float [M, Q, 3] and
    present bool [Q, M] -> weights float [Q, M] (rows sum to one, 0 where missing)."""

    def __init__(self, n_modalities: int, hidden: int = 16) -> None:
        super().__init__()
        if n_modalities < 1:
            raise InputError(f"GatedFusion: n_modalities must be >= 1, got {n_modalities}")
        self.n_modalities = n_modalities
        self.bias = nn.Parameter(torch.zeros(n_modalities))
        self.mlp = nn.Sequential(nn.Linear(N_FEATURES + n_modalities, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 1))
        self.log_scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        m, q, _ = features.shape
        if m != self.n_modalities or present.shape != (q, m):
            raise InputError(f"GatedFusion: features [M={self.n_modalities}, Q, 3] and present "
                             f"[Q, M] expected, got {tuple(features.shape)} and "
                             f"{tuple(present.shape)}")
        onehot = torch.eye(m).expand(q, m, m).transpose(0, 1)            # [M, Q, M]
        logits = self.mlp(torch.cat([features, onehot], -1)).squeeze(-1).T + self.bias
        logits = logits.masked_fill(~present, float("-inf"))
        return torch.softmax(logits, dim=1)

    @torch.no_grad()
    def weights(self, scores, present: np.ndarray | None = None) -> np.ndarray:
        """Weights float64 [Q, M] for score matrices (list of M float [Q, G] or [M, Q, G];
        NaN rows = missing), ready for :func:`mmkit.fusion.scores.weighted_sum`."""
        self.eval()
        s = stack_scores(scores)
        have = presence(s, present)
        z = normalise(s, "zscore")
        w = self(torch.as_tensor(row_features(z)), torch.as_tensor(have))
        return w.double().numpy()

    def fuse(self, scores, present: np.ndarray | None = None) -> np.ndarray:
        """The gated fusion float64 [Q, G] (z-scored weighted sum with per-query weights)."""
        return weighted_sum(scores, self.weights(scores, present), "zscore", present)


def train_gated(model: GatedFusion, scores, positives: np.ndarray, epochs: int = 60,
                lr: float = 0.03, drop: float = 0.15, corrupt: float = 0.15,
                seed: int = 0) -> list[float]:
    """Fit the gate on training score matrices (M float [Q, G], NaN rows missing) with
    positives bool [Q, G]; returns the loss per epoch (full batch).

    Each epoch, a fraction ``drop`` of the (query, modality) rows is marked missing and a
    fraction ``corrupt`` is replaced by the row of a random other query (one modality is
    always kept intact). Loss: ``-log sum_{positives} softmax(scale * fused)``."""
    s = stack_scores(scores)
    have0 = presence(s, None)
    z = np.where(np.isfinite(normalise(s, "zscore")), normalise(s, "zscore"), 0.0)
    pos = torch.as_tensor(np.asarray(positives, bool))
    if pos.shape != z.shape[1:]:
        raise InputError(f"train_gated: positives must be {z.shape[1:]}, got {tuple(pos.shape)}")
    has_pos = pos.any(1).numpy()
    z, pos, have0 = z[:, has_pos], pos[torch.as_tensor(has_pos)], have0[has_pos]
    rng = seeded(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    m, q, _ = z.shape
    log = LossLog()
    model.train()
    for _ in range(epochs):
        zz = z.copy()
        have = have0.copy()
        keep = rng.integers(0, m, q)
        u = rng.random((q, m))
        bad = (u < corrupt) & (np.arange(m)[None] != keep[:, None])
        gone = (u >= corrupt) & (u < corrupt + drop) & (np.arange(m)[None] != keep[:, None])
        for mi in range(m):
            rows = np.flatnonzero(bad[:, mi])
            zz[mi, rows] = z[mi, rng.integers(0, q, len(rows))]
        have &= ~gone
        feats = torch.as_tensor(row_features(np.where(have.T[:, :, None], zz, np.nan)))
        w = model(feats, torch.as_tensor(have))                          # [Q, M]
        fused = torch.einsum("qm,mqg->qg", w, torch.as_tensor(zz, dtype=torch.float32))
        logp = torch.log_softmax(fused * model.log_scale.exp(), 1)
        loss = -(torch.logsumexp(logp.masked_fill(~pos, float("-inf")), 1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        log.add(loss)
    model.eval()
    return log.steps
