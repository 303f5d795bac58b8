"""Distances for metric learning, in pytorch-metric-learning's conventions.

A distance maps query embeddings float [N, D] (and optional reference embeddings [M, D])
to a matrix [N, M] of the same dtype. ``is_inverted`` says whether larger means closer (a
similarity); :meth:`BaseDistance.margin` ``(x, y)`` is how much farther ``x`` is than ``y``
(``x - y`` for a distance, ``y - x`` for a similarity), so losses are written once for both.

16-bit embeddings (float16, bfloat16) are computed in float32 (:func:`working_precision`)
and the matrix is rounded to the input dtype at the end: ``torch.cdist`` has no 16-bit CPU
kernel, and its 16-bit matrix-product path puts errors of several hundredths into
distances of 0..2. A distance of a batch to itself (``ref=None``) has an exact 0 diagonal in
every dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOW_PRECISION = (torch.float16, torch.bfloat16)
"""The floating dtypes losses, miners and distances compute in float32."""


def working_precision(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the dtype the losses and miners compute in: float16 and bfloat16 as float32
    (differentiable: the gradient flows back in the input dtype); other dtypes unchanged
    (the same tensor)."""
    return x.float() if x.dtype in LOW_PRECISION else x


class BaseDistance:
    """A pairwise distance or similarity; ``normalize_embeddings`` L2-normalises first."""

    is_inverted: bool = False

    def __init__(self, normalize_embeddings: bool = True) -> None:
        self.normalize_embeddings = bool(normalize_embeddings)

    def __call__(self, query: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """float [N, D] (, [M, D]) -> [N, M] in the query's dtype (16-bit: computed in
        float32). Without ``ref``, the batch against itself; a distance's diagonal is then
        exactly 0."""
        work = working_precision(query)
        q = F.normalize(work, dim=1) if self.normalize_embeddings else work
        if ref is None:
            r = q
        else:
            r = working_precision(ref)
            r = F.normalize(r, dim=1) if self.normalize_embeddings else r
        mat = self.compute(q, r)
        if ref is None and not self.is_inverted:
            # d(x, x) = 0; cdist's matrix-product path leaves ~1e-3 there (not in place:
            # cdist's backward needs its output)
            eye = torch.eye(len(mat), dtype=torch.bool, device=mat.device)
            mat = mat.masked_fill(eye, 0.0)
        return mat.to(query.dtype)

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
