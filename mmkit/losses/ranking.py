"""The pairwise margin ranking loss: a positive should score above a negative by a margin."""
from __future__ import annotations

import torch

from mmkit.losses.distances import CosineSimilarity
from mmkit.losses.triplet import TripletMarginLoss


class MarginRankingLoss(TripletMarginLoss):
    """For each triplet (a, p, n), rank the pair (a, p) above (a, n):
    ``max(0, -(s_ap - s_an) + margin)`` with similarities ``s`` (with a distance, ``-d``
    plays the score), i.e. ``torch.nn.MarginRankingLoss`` with ``x1 = s_ap``, ``x2 = s_an``,
    target ``+1``.

    It is the triplet loss written as a ranking of two pairs; what differs is the reduction:
    the plain MEAN over all terms (as ``torch.nn.MarginRankingLoss``), so the loss and its
    gradient shrink as the triplets meet the margin, where :class:`TripletMarginLoss`
    averages over the active ones only. Default: cosine similarity, ``margin=0.1``.
    """

    def __init__(self, margin: float = 0.1, distance=None) -> None:
        super().__init__(margin, CosineSimilarity() if distance is None else distance)

    def _reduce(self, losses: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """The plain mean over all terms, as ``torch.nn.MarginRankingLoss``."""
        return losses.mean()
