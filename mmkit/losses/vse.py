"""The visual-semantic embedding hinge loss: VSE (Kiros et al. 2014) and VSE++'s hardest
negative (Faghri et al. 2018), for a joint image-text space.

Unlike the metric losses of :mod:`mmkit.losses` (one embedding set with class labels), the
joint-embedding losses take TWO aligned batches ``image_emb, text_emb`` float [B, D] (row b
of each is a matching pair) and optional ``image_ids`` int64 [B] (the scene each row comes
from). Several captions of one image may share a batch: rows b != b' with the same id are
positives of each other and are NEVER used as negatives (no false negatives).

This module also holds the two helpers both joint losses share: :func:`check_joint_batch`
and :func:`same_scene_mask`. Both joint losses compute float16/bfloat16 batches in float32
and return the loss in the input dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkit.errors import InputError
from mmkit.losses.distances import working_precision


def check_joint_batch(image_emb, text_emb, image_ids,
                      who: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate a joint batch: ``image_emb`` and ``text_emb`` float [B, D] of the same shape
    with B >= 2, ``image_ids`` int [B] or None. Returns them as tensors (ids as int64 on the
    embeddings' device); raises a one-line :class:`~mmkit.errors.InputError` otherwise."""
    for name, x in (("image_emb", image_emb), ("text_emb", text_emb)):
        if not isinstance(x, torch.Tensor):
            raise InputError(f"{who}: {name} must be a torch.Tensor [B, D], "
                             f"got {type(x).__name__}")
        if x.ndim != 2:
            raise InputError(f"{who}: {name} must be 2-D [B, D], got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"{who}: {name} must be floating point, got {x.dtype}")
    if image_emb.shape != text_emb.shape:
        raise InputError(f"{who}: image_emb {tuple(image_emb.shape)} and text_emb "
                         f"{tuple(text_emb.shape)} must have the same shape [B, D] "
                         f"(row b of each is a pair)")
    if image_emb.dtype != text_emb.dtype:
        raise InputError(f"{who}: image_emb ({image_emb.dtype}) and text_emb "
                         f"({text_emb.dtype}) must have the same dtype")
    if len(image_emb) < 2:
        raise InputError(f"{who}: needs a batch of at least 2 pairs (in-batch negatives), "
                         f"got B = {len(image_emb)}")
    if image_ids is None:
        return image_emb, text_emb, None
    try:
        ids = torch.as_tensor(image_ids, device=image_emb.device)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"{who}: image_ids must be an int64 tensor [B] (or None), got "
                         f"{type(image_ids).__name__}") from None
    if ids.ndim != 1 or len(ids) != len(image_emb):
        raise InputError(f"{who}: image_ids must be 1-D with one id per pair "
                         f"({len(image_emb)}), got shape {tuple(ids.shape)}")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise InputError(f"{who}: image_ids must be integers, got {ids.dtype}")
    return image_emb, text_emb, ids.long()


def same_scene_mask(image_ids: torch.Tensor | None, size: int,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """bool [B, B]: ``True`` where rows i and j come from the same scene (the diagonal
    included); with ``image_ids=None`` every row is distinct (the identity)."""
    if image_ids is None:
        return torch.eye(size, dtype=torch.bool, device=device)
    return image_ids[:, None] == image_ids[None, :]


class VSEHingeLoss(nn.Module):
    """Bidirectional hinge ranking loss of a joint image-text space.

    ``loss(image_emb float [B, D], text_emb float [B, D], image_ids int64 [B] | None)``
    -> scalar. Both embeddings are L2-normalised inside (harmless on normalised input), so
    ``S = img @ txt.T`` [B, B] is the cosine similarity and ``S[b, b]`` the pair's score.
    With ``neg(b)`` the columns/rows of other scenes (``image_ids`` differ; a caption of the
    same image is never a negative):

    - ``max_violation=False`` (VSE, Kiros et al.): per pair b,
      ``sum_{c in neg(b)} [m - S[b,b] + S[b,c]]_+  +  sum_{i in neg(b)} [m - S[b,b] + S[i,b]]_+``
      (the image b querying captions, then the caption b querying images);
    - ``max_violation=True`` (VSE++, Faghri et al.): only the hardest negative in each
      direction, ``[m - S[b,b] + max_{c in neg(b)} S[b,c]]_+ + [m - S[b,b] + max_i S[i,b]]_+``
      (0 when a pair has no negative at all).

    ``reduction="mean"`` (default) averages the per-pair terms over the batch, so the
    scale does not grow with B; ``"sum"`` sums them, as Faghri et al.'s code does
    (``"sum"`` = B x ``"mean"``). ``self.stats`` holds ``{"terms", "active"}`` of the last
    call: how many hinge terms there were and how many were non-zero.
    """

    def __init__(self, margin: float = 0.2, max_violation: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise InputError(f"VSEHingeLoss: reduction must be 'mean' or 'sum', "
                             f"got {reduction!r}")
        self.margin = float(margin)
        self.max_violation = bool(max_violation)
        self.reduction = reduction
        self.stats: dict[str, int] = {"terms": 0, "active": 0}

    def per_pair(self, image_emb: torch.Tensor, text_emb: torch.Tensor,
                 image_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The two directions' terms per pair, before the reduction: ``(image_to_text
        float [B], text_to_image float [B])``; the loss is their (mean or) sum. 16-bit
        batches give float32 terms."""
        image_emb, text_emb, ids = check_joint_batch(image_emb, text_emb, image_ids,
                                                     type(self).__name__)
        img = F.normalize(working_precision(image_emb), dim=1)
        txt = F.normalize(working_precision(text_emb), dim=1)
        sim = img @ txt.T                                                   # [B, B]
        pos = sim.diagonal()                                                # [B]
        not_neg = same_scene_mask(ids, len(sim), sim.device)
        # row b: image b against every caption c; column b: caption b against every image i
        cost_i2t = (self.margin - pos[:, None] + sim).clamp(min=0).masked_fill(not_neg, 0.0)
        cost_t2i = (self.margin - pos[None, :] + sim).clamp(min=0).masked_fill(not_neg, 0.0)
        if self.max_violation:
            # the hardest negative by similarity; hinge is monotone in it, so the max of the
            # hinges is the hinge at the most similar negative (ties: the first one)
            i2t, t2i = cost_i2t.max(dim=1).values, cost_t2i.max(dim=0).values
            n_terms = 2 * int((~not_neg).any(dim=1).sum())
            self.stats = {"terms": n_terms, "active": int((i2t > 0).sum() + (t2i > 0).sum())}
            return i2t, t2i
        self.stats = {"terms": 2 * int((~not_neg).sum()),
                      "active": int((cost_i2t > 0).sum() + (cost_t2i > 0).sum())}
        return cost_i2t.sum(dim=1), cost_t2i.sum(dim=0)

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor,
                image_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``image_emb``, ``text_emb`` float [B, D] (row b of each a pair), ``image_ids``
        int64 [B] or None (all distinct) -> scalar loss."""
        i2t, t2i = self.per_pair(image_emb, text_emb, image_ids)
        total = i2t + t2i                                                   # [B]
        loss = total.sum() if self.reduction == "sum" else total.mean()
        return loss.to(image_emb.dtype)

    @property
    def active_fraction(self) -> float:
        """Fraction of the last call's hinge terms that were non-zero (nan if none)."""
        t = self.stats["terms"]
        return self.stats["active"] / t if t else float("nan")

    def extra_repr(self) -> str:
        return (f"margin={self.margin}, max_violation={self.max_violation}, "
                f"reduction={self.reduction!r}")
