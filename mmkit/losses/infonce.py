"""CLIP's symmetric InfoNCE loss (van den Oord et al. 2018; Radford et al. 2021) over an
aligned image-text batch, with CLIP's learnable, clamped temperature.

Same call as :class:`mmkit.losses.vse.VSEHingeLoss`:
``loss(image_emb float [B, D], text_emb float [B, D], image_ids int64 [B] | None)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmkit.errors import InputError
from mmkit.losses.distances import working_precision
from mmkit.losses.vse import check_joint_batch, same_scene_mask


class SymmetricInfoNCE(nn.Module):
    """``(CE(logits) + CE(logits.T)) / 2`` with ``logits = scale * S`` [B, B],
    ``S = normalize(img) @ normalize(txt).T`` (both embeddings are L2-normalised inside)
    and the target of row b its own pair b; each CE is the mean over the B rows.

    Temperature: ``scale = exp(log_scale)``, initialised to ``1 / temperature``.
    ``learnable=True`` makes ``log_scale`` an ``nn.Parameter`` (put the loss's parameters
    in the optimiser: ``list(model.parameters()) + list(loss.parameters())``, without
    weight decay, as CLIP); ``learnable=False`` keeps it a fixed buffer. The scale never exceeds
    ``max_logit_scale`` (CLIP: 100; ``None`` = no cap): as open_clip does after each
    optimiser step, the parameter itself is clamped to ``log(max_logit_scale)`` (in place,
    without gradient) at the start of every forward, so a step that overshoots is pulled
    back before the next use and the parameter never sits stuck in a zero-gradient region.
    :meth:`clamp_` does the same on demand (e.g. right after ``optimizer.step()`` if you
    read :attr:`logit_scale` between steps).

    Duplicates (several captions of one image in the batch, same ``image_ids``): each row's
    positive is its own pair; the other same-id columns are REMOVED from that row's softmax
    (logit set to -inf), in both directions, so a caption of the same image is neither a
    negative nor a second target. Rows that are all distinct (``image_ids=None``) give
    exactly CLIP's loss.
    """

    def __init__(self, temperature: float = 0.07, learnable: bool = True,
                 max_logit_scale: float | None = 100.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise InputError(f"SymmetricInfoNCE: temperature must be > 0, got {temperature}")
        if max_logit_scale is not None and not max_logit_scale > 0:
            raise InputError(f"SymmetricInfoNCE: max_logit_scale must be > 0 or None, "
                             f"got {max_logit_scale}")
        if max_logit_scale is not None and 1.0 / temperature > max_logit_scale * (1 + 1e-9):
            raise InputError(f"SymmetricInfoNCE: 1/temperature = {1 / temperature:g} exceeds "
                             f"max_logit_scale = {max_logit_scale:g}; raise the temperature "
                             f"or the cap")
        self.max_logit_scale = None if max_logit_scale is None else float(max_logit_scale)
        self.learnable = bool(learnable)
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        if self.learnable:
            self.log_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_scale", init)

    @torch.no_grad()
    def clamp_(self) -> "SymmetricInfoNCE":
        """Clamp ``log_scale`` in place to ``log(max_logit_scale)`` (no-op without a cap)."""
        if self.max_logit_scale is not None:
            self.log_scale.clamp_(max=math.log(self.max_logit_scale))
        return self

    @property
    def logit_scale(self) -> float:
        """The scale the next forward uses: ``min(exp(log_scale), max_logit_scale)``."""
        s = math.exp(float(self.log_scale.detach()))
        return s if self.max_logit_scale is None else min(s, self.max_logit_scale)

    @property
    def temperature(self) -> float:
        """``1 / logit_scale``."""
        return 1.0 / self.logit_scale

    def logits(self, image_emb: torch.Tensor, text_emb: torch.Tensor,
               image_ids: torch.Tensor | None = None) -> torch.Tensor:
        """float [B, B]: ``scale * cos(img_i, txt_j)``, with -inf at the same-scene
        off-diagonal entries (removed from both directions' softmax). Rows: images querying
        captions; columns: captions querying images. 16-bit batches give float32 logits."""
        image_emb, text_emb, ids = check_joint_batch(image_emb, text_emb, image_ids,
                                                     type(self).__name__)
        if self.learnable:
            self.clamp_()
        scale = self.log_scale.exp()
        if self.max_logit_scale is not None and not self.learnable:
            scale = scale.clamp(max=self.max_logit_scale)
        img = F.normalize(working_precision(image_emb), dim=1)
        sim = img @ F.normalize(working_precision(text_emb), dim=1).T          # [B, B]
        out = scale.to(device=sim.device, dtype=sim.dtype) * sim
        if ids is not None:
            same = same_scene_mask(ids, len(sim), sim.device)
            same.fill_diagonal_(False)
            out = out.masked_fill(same, float("-inf"))
        return out

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor,
                image_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``image_emb``, ``text_emb`` float [B, D] (row b of each a pair), ``image_ids``
        int64 [B] or None (all distinct) -> scalar loss."""
        logits = self.logits(image_emb, text_emb, image_ids)
        target = torch.arange(len(logits), device=logits.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        return loss.to(image_emb.dtype)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature:.4g}, learnable={self.learnable}, "
                f"max_logit_scale={self.max_logit_scale}")
