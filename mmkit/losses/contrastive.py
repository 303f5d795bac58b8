"""The Siamese contrastive loss (Hadsell, Chopra & LeCun 2006), as PML's ``ContrastiveLoss``."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mmkit.losses.base import MetricLoss, mean_nonzero, to_pairs, zero_loss
from mmkit.losses.distances import LpDistance


class ContrastiveLoss(MetricLoss):
    """Pull positive pairs closer than ``pos_margin``, push negative pairs beyond
    ``neg_margin``: ``relu(d_ap - pos_margin)`` and ``relu(neg_margin - d_an)`` (with a
    similarity the inequalities flip: ``relu(pos_margin - s_ap)``, ``relu(s_an - neg_margin)``).

    Reduction (PML's default ``AvgNonZeroReducer`` for each part, then summed): mean of the
    non-zero positive-pair losses + mean of the non-zero negative-pair losses.
    Pairs: all pairs of the batch when ``indices_tuple`` is None, else the given pairs
    (a1, p, a2, n) or the pairs inside triplets (a, p, n).

    Deliberate difference from PML: PML returns 0 whenever every index vector has at most
    one entry (e.g. exactly one positive and one negative pair); here those pairs count.
    """

    def __init__(self, pos_margin: float = 0.0, neg_margin: float = 1.0, distance=None) -> None:
        super().__init__(LpDistance() if distance is None else distance)
        self.pos_margin, self.neg_margin = float(pos_margin), float(neg_margin)

    def compute(self, embeddings, labels, indices_tuple) -> torch.Tensor:
        a1, p, a2, n = to_pairs(indices_tuple, labels)
        if len(a1) == 0 and len(a2) == 0:
            return zero_loss(embeddings)
        mat = self.distance(embeddings)
        pos = F.relu(self.distance.margin(mat[a1, p], self.pos_margin))
        neg = F.relu(self.distance.margin(self.neg_margin, mat[a2, n]))
        self._record(pos, neg)
        return mean_nonzero(pos, embeddings) + mean_nonzero(neg, embeddings)
