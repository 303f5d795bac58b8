"""Distance-weighted sampling (Wu, Manmatha, Smola & Kraehenbuehl 2017), as PML's
``DistanceWeightedMiner``."""
from __future__ import annotations

import torch

from mmkit.errors import InputError
from mmkit.losses.distances import LpDistance, working_precision
from mmkit.miners.base import BaseMiner, _empty


def negative_weights(embeddings: torch.Tensor, labels: torch.Tensor, cutoff: float = 0.5,
                     nonzero_loss_cutoff: float = 1.4) -> torch.Tensor:
    """Sampling probabilities of the negatives per anchor, float [N, N] (rows sum to 1, or
    are all 0 when an anchor has no eligible negative); float16 and bfloat16 embeddings
    give float32 weights (computed in float32, as PML samples from float32 weights).

    On the unit sphere in D dimensions pairwise distances have density
    ``q(d) ~ d^(D-2) (1 - d^2/4)^((D-3)/2)``; sampling negatives with weight ``1/q(d)``
    (distance clamped below at ``cutoff``; zero for ``d >= nonzero_loss_cutoff``, where the
    loss would be 0 anyway) spreads the chosen negatives over all distances instead of the
    crowded middle."""
    d = float(embeddings.shape[1])
    mat = LpDistance()(working_precision(embeddings)).clamp(min=cutoff)
    log_w = (2.0 - d) * torch.log(mat) - ((d - 3) / 2) * torch.log(1.0 - 0.25 * mat ** 2)
    neg = labels[:, None] != labels[None, :]
    eligible = neg & (mat < nonzero_loss_cutoff) & torch.isfinite(log_w)
    if not eligible.any():
        return torch.zeros_like(mat)
    log_w = log_w.masked_fill(~eligible, float("-inf"))
    w = torch.exp(log_w - log_w.max())
    total = w.sum(1, keepdim=True)
    return torch.where(total > 0, w / total.clamp(min=torch.finfo(w.dtype).tiny),
                       torch.zeros_like(w))


class DistanceWeightedMiner(BaseMiner):
    """For every (anchor, positive) pair, one negative drawn with the probabilities of
    :func:`negative_weights` (random: pass a ``torch.Generator`` for reproducible draws).
    Euclidean distance on L2-normalised embeddings only (as PML).

    Deliberate differences from PML:

    - PML draws ``n_p`` random positives (with replacement) per anchor; here every positive
      of the anchor is used once, so only the negatives are random.
    - ``nonzero_loss_cutoff <= cutoff`` is refused (one-line InputError). PML accepts it and
      then never mines anything: every distance is clamped up to ``cutoff``, so no negative
      is ever nearer than ``nonzero_loss_cutoff``.

    Anchors with no eligible negative (all farther than ``nonzero_loss_cutoff``) are skipped.
    float16/bfloat16 embeddings are weighted and sampled in float32, so a drawn negative
    never has the anchor's label and is never beyond ``nonzero_loss_cutoff``.
    """

    def __init__(self, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(LpDistance())
        if not 0 <= cutoff < nonzero_loss_cutoff:
            raise InputError("DistanceWeightedMiner: need 0 <= cutoff < nonzero_loss_cutoff, "
                             f"got {cutoff}, {nonzero_loss_cutoff}")
        self.cutoff, self.nonzero_loss_cutoff = float(cutoff), float(nonzero_loss_cutoff)
        self.generator = generator

    def mine(self, embeddings, labels):
        if len(labels) < 2:
            return _empty(labels.device)
        w = negative_weights(embeddings, labels, self.cutoff, self.nonzero_loss_cutoff)
        same = labels[:, None] == labels[None, :]
        same.fill_diagonal_(False)
        ok = w.sum(1) > 0
        a, p = torch.where(same & ok[:, None])
        if len(a) == 0:
            return _empty(labels.device)
        n = torch.multinomial(w[a], 1, replacement=True, generator=self.generator)[:, 0]
        return a, p, n
