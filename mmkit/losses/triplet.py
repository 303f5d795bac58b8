"""The triplet margin loss (Weinberger & Saul 2009; Schroff et al. 2015), as PML's
``TripletMarginLoss``."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mmkit.losses.base import MetricLoss, mean_nonzero, to_triplets, zero_loss
from mmkit.losses.distances import LpDistance


class TripletMarginLoss(MetricLoss):
    """``relu(d_ap - d_an + margin)`` per triplet (``relu(s_an - s_ap + margin)`` with a
    similarity), averaged over the NON-ZERO terms (PML's ``AvgNonZeroReducer``).

    Triplets: every valid triplet of the batch when ``indices_tuple`` is None (PML's
    ``triplets_per_anchor="all"``), else the given triplets or those formed from pairs.
    When every triplet meets the margin, all terms are 0 and so is the loss (and its
    gradient): that is why a miner should hand it the triplets that still violate it.
    Defaults as PML: ``margin=0.05``, L2-normalised Euclidean distance.
    """

    def __init__(self, margin: float = 0.05, distance=None) -> None:
        super().__init__(LpDistance() if distance is None else distance)
        self.margin = float(margin)

    def compute(self, embeddings, labels, indices_tuple) -> torch.Tensor:
        a, p, n = to_triplets(indices_tuple, labels)
        if len(a) == 0:
            return zero_loss(embeddings)
        mat = self.distance(embeddings)
        losses = F.relu(self.distance.margin(mat[a, p], mat[a, n]) + self.margin)
        self._record(losses)
        return self._reduce(losses, embeddings)

    def _reduce(self, losses: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """PML's default: the mean over the non-zero (active) terms."""
        return mean_nonzero(losses, embeddings)
