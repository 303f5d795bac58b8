"""What every miner shares: ``miner(embeddings [N, D], labels [N]) -> (a, p, n)`` triplet
indices (int64 [K] each), computed without gradients; float16 and bfloat16 embeddings are
mined in float32 (distances and sampling weights)."""
from __future__ import annotations

import torch

from mmkit.losses.base import check_batch
from mmkit.losses.distances import LpDistance, working_precision


class BaseMiner:
    """Base class of the miners; ``self.stats`` holds numbers about the last call
    (``{"triplets": K, ...}``)."""

    def __init__(self, distance=None) -> None:
        self.distance = LpDistance() if distance is None else distance
        self.stats: dict[str, float] = {}

    def __call__(self, embeddings: torch.Tensor, labels) -> tuple[torch.Tensor, ...]:
        embeddings, labels = check_batch(embeddings, labels, type(self).__name__)
        with torch.no_grad():
            out = self.mine(working_precision(embeddings.detach()), labels)
        self.stats = {**self.stats, "triplets": int(len(out[0]))}
        return out

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Triplets of ``embeddings`` (float32 or float64 [N, D], no gradient) under
        ``labels`` int64 [N]."""
        raise NotImplementedError

    def triplet_margins(self, embeddings: torch.Tensor, a, p, n) -> torch.Tensor:
        """How much farther each negative is than its positive (``d_an - d_ap``), float [K]."""
        mat = self.distance(embeddings)
        return self.distance.margin(mat[a, n], mat[a, p])


def _empty(device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    e = torch.empty(0, dtype=torch.long, device=device)
    return e, e.clone(), e.clone()
