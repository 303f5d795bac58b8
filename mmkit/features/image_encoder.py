"""The image-encoder interface and its preprocessing, shared by every CNN of the kit.

- :class:`ImageEncoder`: an ``nn.Module`` with ``out_dim`` whose ``forward(images float32
  [N, 3, H, W], normalised) -> float32 [N, out_dim]`` gives one vector per image, and whose
  :meth:`ImageEncoder.preprocess` turns uint8 images into those tensors (resizing to
  ``input_size`` when set, normalising with ``mean`` / ``std``, by default the ImageNet
  statistics :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`);
- :func:`images_to_tensor` (any image input, via :func:`mmkit.data.images.check_images`),
  :func:`imagenet_tensor` (resize the shorter side, centre crop: the ImageNet evaluation
  transform);
- :func:`embed_images` runs any encoder over a uint8 batch with a progress bar.

The encoders themselves are in :mod:`mmkit.features.visual_cnn` (trained on the world) and
:mod:`mmkit.features.pretrained` (the ImageNet EfficientNet-Lite0).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mmkit.data.images import check_images
from mmkit.errors import InputError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=down)


def images_to_tensor(images, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD, size: int | None = None,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 [N, H, W, 3] (or anything :func:`~mmkit.features.visual.to_rgb_uint8` converts)
    -> normalised float32 [N, 3, S, S] (``S = size``; ``size=None`` keeps H x W).

    Pixels are scaled to [0, 1], resized (bilinear, antialiased when shrinking), then
    ``(x - mean) / std`` per channel.
    """
    rgb = check_images(images, name="images")
    x = torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(0, 3, 1, 2)
    x = x.contiguous().float() / 255.0
    if size is not None:
        x = _resize(x, (int(size), int(size)))
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def imagenet_tensor(images, size: int = 224, crop_pct: float = 0.875) -> torch.Tensor:
    """The ImageNet evaluation transform: resize the shorter side to ``size / crop_pct``
    (256 for 224), centre-crop ``size x size``, normalise with the ImageNet mean and std.

    Args:
        images: one photograph ``[H, W, 3]`` or a batch of equal-sized ones (any input that
            :func:`~mmkit.features.visual.to_rgb_uint8` converts).

    Returns:
        float32 [N, 3, size, size].
    """
    rgb = check_images(images, name="images")
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).contiguous().float() / 255.0
    h, w = x.shape[-2:]
    short = int(math.floor(size / crop_pct))
    scale = short / min(h, w)
    x = _resize(x, (max(size, round(h * scale)), max(size, round(w * scale))))
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    x = x[..., top:top + size, left:left + size]
    m = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    s = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - m) / s


class ImageEncoder(nn.Module):
    """Base class of the kit's image encoders.

    Attributes:
        out_dim: the embedding size ``D`` of ``forward``.
        mean, std: per-channel normalisation that ``forward`` expects.
        input_size: square side the images are resized to (``None``: as given).
    """

    out_dim: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int | None = None

    def preprocess(self, images, device: str | torch.device | None = None) -> torch.Tensor:
        """uint8 [N, H, W, 3] (or any convertible input) -> float32 [N, 3, S, S] on
        ``device`` (default: the module's)."""
        if device is None:
            device = _device_of(self)
        return images_to_tensor(images, self.mean, self.std, self.input_size, device)


def _device_of(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def embed_images(model: nn.Module, images, *, batch_size: int = 64, progress: bool = True,
                 device: str | torch.device | None = None, normalize: bool = False,
                 desc: str | None = None) -> np.ndarray:
    """Run an image encoder over a batch of images: float32 [N, D].

    The function form of :class:`mmkit.encoders.base.Encoder`'s ``embed_images``: the module
    comes first instead of ``self``, then the same ``images, *, batch_size, progress``, then
    three keywords of its own (``device``, ``normalize``, ``desc``). Rows are L2-normalised
    only with ``normalize=True``.

    Args:
        model: an :class:`ImageEncoder` (its ``preprocess`` is used) or any module taking
            ImageNet-normalised [N, 3, H, W] tensors at the images' own size.
        images: uint8 [N, H, W, 3] (or anything :func:`~mmkit.features.visual.to_rgb_uint8`
            converts: grey, RGBA, uint16, float in [0, 1]).
        batch_size: images per forward pass.
        progress: show a progress bar (tqdm) over batches.
        device: where to run (default: the model's device).
        normalize: L2-normalise each row (inner products are then cosine similarities).
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise InputError(f"embed_images: batch_size must be a positive integer, got "
                         f"{batch_size!r}")
    rgb = check_images(images, name="images")
    device = _device_of(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    name = desc or f"embedding ({type(model).__name__})"
    try:
        for start in tqdm(range(0, len(rgb), batch_size), desc=name, leave=False,
                          disable=not progress):
            chunk = rgb[start:start + batch_size]
            if isinstance(model, ImageEncoder):
                x = model.preprocess(chunk, device)
            else:
                x = images_to_tensor(chunk, device=device)
            out.append(model(x).float().cpu())
    finally:
        model.train(was_training)
    feats = torch.cat(out).numpy().astype(np.float32)
    if normalize:
        feats /= np.linalg.norm(feats, axis=1, keepdims=True) + 1e-12
    return feats



__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "images_to_tensor", "imagenet_tensor",
           "ImageEncoder", "embed_images"]
