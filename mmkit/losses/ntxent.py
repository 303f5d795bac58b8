"""NT-Xent, the normalised temperature-scaled cross entropy (SimCLR; InfoNCE), as PML's
``NTXentLoss``."""
from __future__ import annotations

import torch

from mmkit.losses.base import MetricLoss, to_pairs, zero_loss
from mmkit.losses.distances import CosineSimilarity


class NTXentLoss(MetricLoss):
    """For each positive pair (a, p): ``-log(exp(s_ap/T) / (exp(s_ap/T) + sum_n exp(s_an/T)))``
    over the negatives n of anchor a; the mean over positive pairs (PML's ``MeanReducer``).
    With a distance, ``-d`` plays the similarity. Needs at least one positive and one
    negative pair, else 0. Default ``temperature=0.07``, cosine similarity (as PML).

    Deliberate difference from PML: PML returns 0 whenever every index vector of the tuple
    has at most one entry (one positive pair and one negative pair, or a single triplet);
    here that pair is a real term: ``-log(e^(s_ap/T) / (e^(s_ap/T) + e^(s_an/T)))``.
    """

    def __init__(self, temperature: float = 0.07, distance=None) -> None:
        super().__init__(CosineSimilarity() if distance is None else distance)
        self.temperature = float(temperature)

    def compute(self, embeddings, labels, indices_tuple) -> torch.Tensor:
        a1, p, a2, n = to_pairs(indices_tuple, labels)
        if len(a1) == 0 or len(a2) == 0:
            return zero_loss(embeddings)
        mat = self.distance(embeddings)
        size = mat.shape[0]
        sign = 1.0 if self.distance.is_inverted else -1.0
        logits = sign * mat / self.temperature                                   # [N, N]
        # how often each (anchor, negative) pair occurs in the tuple (PML counts repeats)
        counts = torch.zeros(size * size, dtype=mat.dtype, device=mat.device)
        counts = counts.index_add_(0, a2 * size + n, torch.ones_like(a2, dtype=mat.dtype))
        counts = counts.view(size, size)
        has_neg = counts.sum(1) > 0
        neg = (logits + torch.log(counts)).masked_fill(~has_neg[:, None], 0.0)
        lse = torch.where(has_neg, torch.logsumexp(neg, dim=1),
                          torch.full_like(has_neg, float("-inf"), dtype=mat.dtype))   # [N]
        pos = logits[a1, p]                                                       # [P]
        losses = torch.logaddexp(pos, lse[a1]) - pos      # -log(e^pos / (e^pos + sum e^neg))
        self._record(losses)
        return losses.mean()
