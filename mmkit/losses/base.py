"""What every metric-learning loss shares: input checks, index tuples, reductions.

Index tuples follow pytorch-metric-learning (PML): pairs are ``(a1, p, a2, n)`` (anchor
``a1[i]`` with positive ``p[i]``; anchor ``a2[j]`` with negative ``n[j]``), triplets are
``(a, p, n)``; all int64 [K] index vectors into the batch.
"""
from __future__ import annotations

import torch
from torch import nn

from mmkit.errors import InputError

Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def check_batch(embeddings, labels, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``embeddings`` float [N, D] and ``labels`` int [N]; returns them as tensors
    (labels on the embeddings' device)."""
    if not isinstance(embeddings, torch.Tensor):
        raise InputError(f"{who}: embeddings must be a torch.Tensor [N, D], "
                         f"got {type(embeddings).__name__}")
    if embeddings.ndim != 2:
        raise InputError(f"{who}: embeddings must be 2-D [N, D], got shape "
                         f"{tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise InputError(f"{who}: embeddings must be floating point, got {embeddings.dtype}")
    labels = torch.as_tensor(labels, device=embeddings.device)
    if labels.ndim != 1 or len(labels) != len(embeddings):
        raise InputError(f"{who}: labels must be 1-D with one label per embedding "
                         f"({len(embeddings)}), got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise InputError(f"{who}: labels must be integers, got {labels.dtype}")
    return embeddings, labels


def all_pairs(labels: torch.Tensor) -> Pairs:
    """Every positive pair (same label, not itself) and every negative pair, row-major."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    a1, p = torch.where(same & ~eye)
    a2, n = torch.where(~same)
    return a1, p, a2, n


def all_triplets(labels: torch.Tensor) -> Triplets:
    """Every valid triplet (a, p, n): label[a] == label[p], a != p, label[a] != label[n];
    in (a, p, n) lexicographic order (as PML's ``get_all_triplets_indices``)."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    valid = (same & ~eye)[:, :, None] & ~same[:, None, :]
    a, p, n = torch.where(valid)
    return a, p, n


def to_pairs(indices_tuple, labels: torch.Tensor) -> Pairs:
    """All pairs (``None``), the given pairs, or the pairs inside triplets (a, p, a, n)."""
    if indices_tuple is None:
        return all_pairs(labels)
    if len(indices_tuple) == 4:
        return tuple(torch.as_tensor(x, dtype=torch.long, device=labels.device)
                     for x in indices_tuple)
    if len(indices_tuple) == 3:
        a, p, n = (torch.as_tensor(x, dtype=torch.long, device=labels.device)
                   for x in indices_tuple)
        return a, p, a, n
    raise InputError(f"indices_tuple must have 3 (triplets) or 4 (pairs) entries, got "
                     f"{len(indices_tuple)}")


def to_triplets(indices_tuple, labels: torch.Tensor) -> Triplets:
    """All triplets (``None``), the given triplets, or triplets formed from pairs that share
    an anchor (as PML's ``convert_to_triplets``)."""
    if indices_tuple is None:
        return all_triplets(labels)
    if len(indices_tuple) == 3:
        return tuple(torch.as_tensor(x, dtype=torch.long, device=labels.device)
                     for x in indices_tuple)
    if len(indices_tuple) == 4:
        a1, p, a2, n = (torch.as_tensor(x, dtype=torch.long, device=labels.device)
                        for x in indices_tuple)
        pi, ni = torch.where(a1[:, None] == a2[None, :])
        return a1[pi], p[pi], n[ni]
    raise InputError(f"indices_tuple must have 3 (triplets) or 4 (pairs) entries, got "
                     f"{len(indices_tuple)}")


def zero_loss(embeddings: torch.Tensor) -> torch.Tensor:
    """A zero that still carries a gradient path to ``embeddings`` (as PML)."""
    return (embeddings * 0).sum()


def mean_nonzero(losses: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """PML's ``AvgNonZeroReducer``: the mean of the strictly positive losses (0 if none).

    Averaging over the active terms only keeps the gradient from shrinking as more and more
    triplets meet the margin (and contribute exact zeros)."""
    active = losses[losses > 0]
    return active.mean() if len(active) else zero_loss(embeddings)


class MetricLoss(nn.Module):
    """Base class: ``loss(embeddings [N, D], labels [N], indices_tuple=None) -> scalar``.

    After each call ``self.stats`` holds ``{"terms": how many pair/triplet terms were
    computed, "active": how many were non-zero}``: the fraction of active terms explains a
    loss that goes to zero (every triplet already meets the margin).
    """

    def __init__(self, distance) -> None:
        super().__init__()
        self.distance = distance
        self.stats: dict[str, int] = {"terms": 0, "active": 0}

    def forward(self, embeddings: torch.Tensor, labels, indices_tuple=None) -> torch.Tensor:
        embeddings, labels = check_batch(embeddings, labels, type(self).__name__)
        self.stats = {"terms": 0, "active": 0}
        return self.compute(embeddings, labels, indices_tuple)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices_tuple) -> torch.Tensor:
        raise NotImplementedError

    def _record(self, *losses: torch.Tensor) -> None:
        self.stats = {"terms": int(sum(len(x) for x in losses)),
                      "active": int(sum(int((x > 0).sum()) for x in losses))}

    @property
    def active_fraction(self) -> float:
        """Fraction of the last call's terms with a non-zero loss (nan if there were none)."""
        t = self.stats["terms"]
        return self.stats["active"] / t if t else float("nan")
