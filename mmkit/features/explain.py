"""Why does an image encoder see what it sees: saliency maps.

- :func:`input_gradients`: vanilla gradient saliency (Simonyan et al., 2014);
- :func:`grad_cam` (Selvaraju et al., 2017, written out step by step, agreeing with
  ``pytorch_grad_cam.GradCAM``) and :func:`similarity_grad_cam`, whose target is the cosine
  similarity to a query embedding (:func:`cosine_target`).

Inputs are preprocessed tensors float32 [N, 3, H, W] (``model.preprocess`` or
:func:`mmkit.features.image_encoder.images_to_tensor`).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmkit.errors import InputError


def cosine_target(query: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A saliency target: ``outputs [N, D] -> cosine similarity [N]`` to ``query``, one
    embedding [D] for all images or one per image [N, D]."""
    q = query.detach()

    def target(outputs: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(outputs, q.expand_as(outputs), dim=1)

    return target


def _check_input(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise InputError(f"{name}: expects a float tensor [N, 3, H, W] (use model.preprocess "
                         f"or images_to_tensor), got {shape}")
    return x


def input_gradients(model: nn.Module, x: torch.Tensor,
                    target: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """Vanilla gradient saliency (Simonyan et al., 2014): ``|d target / d pixel|``, maximum
    over the colour channels: float32 [N, H, W] (not normalised)."""
    x = _check_input(x, "input_gradients").detach().clone().requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        score = target(model(x)).sum()
        (grad,) = torch.autograd.grad(score, x)
    finally:
        model.train(was_training)
    return grad.abs().amax(1).cpu().numpy().astype(np.float32)


def _minmax(cam: torch.Tensor) -> torch.Tensor:
    """Per map: subtract the minimum, divide by (maximum + 1e-7), as pytorch-grad-cam does."""
    cam = cam - cam.flatten(1).amin(1)[:, None, None]
    return cam / (cam.flatten(1).amax(1)[:, None, None] + 1e-7)


def grad_cam(model: nn.Module, layer: nn.Module, x: torch.Tensor,
             target: Callable[[torch.Tensor], torch.Tensor], size: tuple[int, int] | None = None,
             normalise: bool = True) -> np.ndarray:
    """Grad-CAM (Selvaraju et al., 2017) from scratch: float32 [N, h, w].

    1. forward ``x``, keeping the activation ``A`` [N, K, h, w] of ``layer``;
    2. back-propagate ``target(outputs)`` [N] (summed over the batch: images do not interact
       in eval mode) to ``A``;
    3. channel weights = the gradient averaged over the positions, [N, K];
    4. map = ReLU(sum_k weight_k * A_k), [N, h, w].

    With ``normalise`` (default) each map is min-max scaled, bilinearly resized to ``size``
    (default: the input's H x W; half-pixel centres, as ``cv2.resize``), then min-max scaled
    again: the same steps as ``pytorch_grad_cam.GradCAM`` with one target layer, so the maps
    agree to float precision. ``normalise=False`` returns the raw low-resolution map.
    """
    x = _check_input(x, "grad_cam")
    store: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        store["a"] = output

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # so that gradients reach frozen backbones
            score = target(model(x)).sum()
            act = store["a"]
            (grads,) = torch.autograd.grad(score, act)
    finally:
        handle.remove()
        model.train(was_training)
    weights = grads.mean((2, 3))
    cam = F.relu((weights[:, :, None, None] * act).sum(1)).detach()
    if not normalise:
        return cam.cpu().numpy().astype(np.float32)
    cam = _minmax(cam)
    size = tuple(x.shape[-2:]) if size is None else tuple(size)
    cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return _minmax(cam).cpu().numpy().astype(np.float32)


def similarity_grad_cam(model: nn.Module, x: torch.Tensor, query: torch.Tensor,
                        layer: nn.Module | None = None, **kwargs) -> np.ndarray:
    """Grad-CAM whose target is the cosine similarity of each image's embedding to ``query``
    (an embedding [D] or [N, D]): *which parts of this image make it look like the query?*
    ``layer`` defaults to the model's ``cam_layer``. Returns float32 [N, H, W] in [0, 1]."""
    layer = getattr(model, "cam_layer", None) if layer is None else layer
    if layer is None:
        raise InputError("similarity_grad_cam: pass layer= (this model has no cam_layer)")
    return grad_cam(model, layer, x, cosine_target(query), **kwargs)



__all__ = ["cosine_target", "input_gradients", "grad_cam", "similarity_grad_cam"]
