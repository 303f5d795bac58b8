"""The gradient reversal layer (Ganin & Lempitsky 2015) and ACMR's lambda schedule.

Forward: the identity. Backward: the incoming gradient times ``-lambda``. Put between a feature
extractor and a domain (here: modality) classifier, one optimiser then trains the classifier
to tell the modalities apart while the extractor receives the *opposite* gradient, i.e. learns
to make the modalities indistinguishable: a min-max game in one backward pass.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from mmkit.errors import InputError


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:  # type: ignore[override]
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """``x`` unchanged (any shape); in backward the gradient w.r.t. ``x`` is ``-lam`` times the
    gradient w.r.t. the output. ``lam = 0`` blocks the gradient (the classifier still learns)."""
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise InputError(f"grad_reverse: lambda must be a finite number >= 0, got {lam}")
    return _Reverse.apply(x, lam)


class GradientReversal(nn.Module):
    """:func:`grad_reverse` as a module; set :attr:`lam` as training progresses."""

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.lam = float(lam)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.lam)

    def extra_repr(self) -> str:
        return f"lam={self.lam:g}"


def grl_lambda(progress: float, gamma: float = 10.0) -> float:
    """ACMR's (and DANN's) schedule ``2 / (1 + exp(-gamma p)) - 1`` for training progress
    ``p`` in [0, 1]: 0 at the start (the embedding forms before the adversary pushes), rising
    smoothly to ``2 / (1 + e^-gamma) - 1`` (0.99991 for gamma = 10) at the end."""
    p = float(progress)
    if not (0.0 <= p <= 1.0):
        raise InputError(f"grl_lambda: progress must be in [0, 1], got {progress}")
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0
