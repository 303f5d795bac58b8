"""Distances for metric learning, in pytorch-metric-learning's conventions.

A distance maps query embeddings float32 [N, D] (and optional reference embeddings [M, D])
to a matrix [N, M]. ``is_inverted`` says whether larger means closer (a similarity);
:meth:`BaseDistance.margin` ``(x, y)`` is how much farther ``x`` is than ``y``
(``x - y`` for a distance, ``y - x`` for a similarity), so losses are written once for both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class BaseDistance:
    """A pairwise distance or similarity; ``normalize_embeddings`` L2-normalises first."""

    is_inverted: bool = False

    def __init__(self, normalize_embeddings: bool = True) -> None:
        self.normalize_embeddings = bool(normalize_embeddings)

    def __call__(self, query: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """float32 [N, D] (, [M, D]) -> float32 [N, M]."""
        q = F.normalize(query, dim=1) if self.normalize_embeddings else query
        if ref is None:
            r = q
        else:
            r = F.normalize(ref, dim=1) if self.normalize_embeddings else ref
        return self.compute(q, r)

    def compute(self, query: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def margin(self, x: torch.Tensor | float, y: torch.Tensor | float) -> torch.Tensor:
        """How much farther ``x`` is than ``y`` (positive: ``x`` is the farther one)."""
        return y - x if self.is_inverted else x - y

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize_embeddings={self.normalize_embeddings})"


class LpDistance(BaseDistance):
    """Euclidean (p = 2) distance ``||q - r||``; on normalised embeddings it lies in [0, 2]
    (PML's default distance for contrastive and triplet losses)."""

    is_inverted = False

    def __init__(self, normalize_embeddings: bool = True, p: float = 2) -> None:
        super().__init__(normalize_embeddings)
        self.p = p

    def compute(self, query: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return torch.cdist(query, ref, p=self.p)


class CosineSimilarity(BaseDistance):
    """Cosine similarity ``q . r / (|q| |r|)`` in [-1, 1] (larger = closer)."""

    is_inverted = True

    def __init__(self) -> None:
        super().__init__(normalize_embeddings=True)

    def compute(self, query: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return query @ ref.T
