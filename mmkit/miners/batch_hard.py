"""Batch-hard mining (Hermans, Beyer & Leibe 2017), as PML's ``BatchHardMiner``."""
from __future__ import annotations

import torch

from mmkit.miners.base import BaseMiner, _empty


class BatchHardMiner(BaseMiner):
    """One triplet per anchor: its farthest positive and its closest negative (under the
    miner's distance; with a similarity, the least similar positive and the most similar
    negative). Anchors without a positive or without a negative are skipped. Ties go to the
    lowest index. Returns (a, p, n) with ``a`` ascending."""

    def mine(self, embeddings, labels):
        n_items = len(labels)
        if n_items < 2:
            return _empty(labels.device)
        mat = self.distance(embeddings)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(n_items, dtype=torch.bool, device=labels.device)
        pos_mask, neg_mask = same & ~eye, ~same
        far, near = (float("inf"), float("-inf")) if self.distance.is_inverted else \
            (float("-inf"), float("inf"))
        # "hardest" positive: largest distance (smallest similarity)
        pos_scores = mat.masked_fill(~pos_mask, far)
        neg_scores = mat.masked_fill(~neg_mask, near)
        if self.distance.is_inverted:
            p = pos_scores.argmin(1)
            n = neg_scores.argmax(1)
        else:
            p = pos_scores.argmax(1)
            n = neg_scores.argmin(1)
        keep = pos_mask.any(1) & neg_mask.any(1)
        a = torch.arange(n_items, device=labels.device)[keep]
        return a, p[keep], n[keep]
