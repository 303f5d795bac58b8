"""Batch-all mining: every valid triplet of the batch (Hermans, Beyer & Leibe 2017)."""
from __future__ import annotations

from mmkit.losses.base import all_triplets
from mmkit.miners.base import BaseMiner


class BatchAllMiner(BaseMiner):
    """All triplets (a, p, n) of the batch: ``label[a] == label[p]``, ``a != p``,
    ``label[n] != label[a]``, in lexicographic order. With ``margin`` set, only those whose
    margin ``d_an - d_ap`` is at most ``margin`` (PML's ``TripletMarginMiner(margin,
    type_of_triplets="all")``); ``None`` keeps them all (PML's ``get_all_triplets_indices``).
    """

    def __init__(self, margin: float | None = None, distance=None) -> None:
        super().__init__(distance)
        self.margin = None if margin is None else float(margin)

    def mine(self, embeddings, labels):
        a, p, n = all_triplets(labels)
        if self.margin is not None and len(a):
            keep = self.triplet_margins(embeddings, a, p, n) <= self.margin
            a, p, n = a[keep], p[keep], n[keep]
        return a, p, n
