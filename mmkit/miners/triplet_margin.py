"""Margin-based triplet mining, as PML's ``TripletMarginMiner``."""
from __future__ import annotations

from mmkit.errors import InputError
from mmkit.losses.base import all_triplets
from mmkit.miners.base import BaseMiner

TYPES = ("all", "hard", "semihard", "easy")


class TripletMarginMiner(BaseMiner):
    """Keep the triplets by their margin ``m = d_an - d_ap`` (``s_ap - s_an`` with a
    similarity):

    - ``"all"``: ``m <= margin`` (the triplets that violate the margin),
    - ``"hard"``: ``m <= 0`` (the negative is closer than the positive),
    - ``"semihard"``: ``0 < m <= margin`` (FaceNet's semi-hard negatives),
    - ``"easy"``: ``m > margin``.

    PML's default ``margin=0.2`` is larger than its ``TripletMarginLoss`` default of 0.05:
    the miner then also passes triplets that meet the loss's margin (and give it zeros).
    """

    def __init__(self, margin: float = 0.2, type_of_triplets: str = "all",
                 distance=None) -> None:
        super().__init__(distance)
        if type_of_triplets not in TYPES:
            raise InputError(f"TripletMarginMiner: type_of_triplets must be one of {TYPES}, "
                             f"got {type_of_triplets!r}")
        self.margin, self.type_of_triplets = float(margin), type_of_triplets

    def mine(self, embeddings, labels):
        a, p, n = all_triplets(labels)
        if len(a) == 0:
            return a, p, n
        m = self.triplet_margins(embeddings, a, p, n)
        if self.type_of_triplets == "easy":
            keep = m > self.margin
        else:
            keep = m <= self.margin
            if self.type_of_triplets == "hard":
                keep &= m <= 0
            elif self.type_of_triplets == "semihard":
                keep &= m > 0
        self.stats = {"mean_margin": float(m.mean())}
        return a[keep], p[keep], n[keep]
