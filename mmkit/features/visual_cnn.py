"""CNN image encoders trained on the world: a small attention CNN and a narrow ResNet-18.

Every encoder is an :class:`~mmkit.features.image_encoder.ImageEncoder` (``forward(images
float32 [N, 3, H, W], normalised) -> float32 [N, out_dim]``, :meth:`preprocess` for uint8
images); :func:`embed_images` runs any of them over a uint8 batch with a progress bar.

Parts:

- attention: :class:`SqueezeExcite` (channel), :class:`CBAM` (channel + spatial),
  :class:`ViTBlock` (self-attention over the feature map's cells); each keeps its last map for
  drawing;
- encoders: :class:`SmallCNN` (three conv stages + the three attention modules),
  :class:`NarrowResNet18` (torchvision's ResNet-18 layout and blocks at a reduced width);
- training: :func:`train_classifier` (64 world classes, flips and shifts by :func:`augment`),
  configured by :class:`VisualCNNConfig`;
- :data:`CHECKPOINTS`: the two trained models, ``visual_small_cnn`` and
  ``visual_resnet18_w16``, trained on fresh scenes (seeds 1001 / 1002), never on the seed-0
  world that the notebooks evaluate on.

Related modules (their names are re-exported here, the old import path):
:mod:`mmkit.features.image_encoder` (the encoder interface, :func:`images_to_tensor`,
:func:`imagenet_tensor`, :func:`embed_images`), :mod:`mmkit.features.pretrained` (the frozen
ImageNet EfficientNet-Lite0, :class:`PretrainedEncoder`) and :mod:`mmkit.features.explain`
(saliency: :func:`input_gradients`, :func:`grad_cam`, :func:`similarity_grad_cam`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmkit._setup import pick_device
from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.configs import Checks, DictConfig, check_rate, check_train_seed, counts
from mmkit.data import World
from mmkit.errors import InputError
from mmkit.features.explain import (cosine_target, grad_cam, input_gradients,  # re-export
                                    similarity_grad_cam)
from mmkit.features.image_encoder import (IMAGENET_MEAN, IMAGENET_STD,  # re-export
                                          ImageEncoder, embed_images, imagenet_tensor,
                                          images_to_tensor)
from mmkit.features.pretrained import (CATS, ESPRESSO, IMAGENET_CLASSES,  # re-export
                                       MISSILE, PROJECTILE, PretrainedEncoder,
                                       efficientnet_lite0, efficientnet_lite0_weights_path,
                                       efficientnet_pytorch_to_timm, imagenet_label)
from mmkit.metrics import average_precision
from mmkit.training import LossLog, progress_bar
from mmkit.validate import integer, number, positive_int


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



# ----------------------------------------------------------------------------- config
#: the fields of :class:`VisualCNNConfig` that only the :class:`SmallCNN` has
SMALL_CNN_FIELDS: tuple[str, ...] = ("embed_dim", "se", "cbam", "vit", "heads")


@dataclass(frozen=True)
class VisualCNNConfig(DictConfig):
    """Architecture and training of a visual classifier (:func:`train_classifier`; the
    checkpoints ``visual_small_cnn`` and ``visual_resnet18_w16``).

    The :class:`SmallCNN`'s own fields (:data:`SMALL_CNN_FIELDS`) are None for the
    :class:`NarrowResNet18`, which has none of them, and are then left out of
    :meth:`to_dict`; ``from_dict(manifest["config"]).to_dict() == manifest["config"]`` for
    both committed checkpoints. Bad values raise ONE line listing every problem.
    """

    #: channels of the first stage (SmallCNN: 4 x width at the attention blocks; ResNet:
    #: 8 x width features)
    width: int = 24
    #: SmallCNN only: the embedding size, its attention blocks and the ViT block's heads
    embed_dim: int | None = None
    se: bool | None = None
    cbam: bool | None = None
    vit: bool | None = None
    heads: int | None = None
    #: training scenes ``World(n=n_train, seed=world_seed)``; held out
    #: ``World(n=n_val, seed=world_seed + 500)`` (never the evaluation world's seed)
    n_train: int = 4000
    n_val: int = 600
    world_seed: int = 1001
    epochs: int = 8
    #: AdamW's peak learning rate (one-cycle schedule) and weight decay
    lr: float = 3e-3
    batch_size: int = 128
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    #: the seed of the batch order and the augmentation
    seed: int = 0

    OPTIONAL = SMALL_CNN_FIELDS

    def __post_init__(self) -> None:
        checks = Checks("VisualCNNConfig")
        for name in ("width", "n_train", "n_val", "epochs", "batch_size"):
            checks(positive_int, getattr(self, name), name)
        given = [n for n in SMALL_CNN_FIELDS if getattr(self, n) is not None]
        if given and len(given) < len(SMALL_CNN_FIELDS):
            missing = [n for n in SMALL_CNN_FIELDS if n not in given]
            checks.add(f"the SmallCNN's fields come together: {', '.join(given)} given but "
                       f"not {', '.join(missing)}")
        checks.optional(positive_int, self.embed_dim, "embed_dim")
        for name in ("se", "cbam", "vit"):
            if getattr(self, name) is not None:
                checks.flag(getattr(self, name), name)
        checks.optional(positive_int, self.heads, "heads")
        if self.vit and self.heads is not None and counts(self, "width", "heads") \
                and (4 * self.width) % self.heads:
            checks.add(f"heads {self.heads} must divide the ViT block's width 4 x width = "
                       f"{4 * self.width}")
        check_train_seed(checks, self.world_seed, "world_seed")
        check_rate(checks, self.lr, "lr")
        checks(number, self.weight_decay, "weight_decay", low=0)
        checks(number, self.label_smoothing, "label_smoothing", low=0, high=1, high_open=True)
        checks(integer, self.seed, "seed", low=0)
        checks.done()

    @property
    def is_small_cnn(self) -> bool:
        """True when the :class:`SmallCNN`'s fields are given."""
        return self.embed_dim is not None


def visual_config(config: VisualCNNConfig | Mapping[str, Any]) -> VisualCNNConfig:
    """``config`` as a :class:`VisualCNNConfig` (a checkpoint's config dict, or one already)."""
    return VisualCNNConfig.from_dict(config)


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
    f = feats / (np.linalg.norm(feats, axis=1, keepdims=True) + 1e-12)
    scores = f @ f.T
    np.fill_diagonal(scores, -np.inf)
    rel = (labels[:, None] == labels[None, :]).astype(np.int8)
    np.fill_diagonal(rel, 0)
    return float(average_precision(scores, rel).mean())


def train_classifier(model: ImageEncoder, config: VisualCNNConfig | Mapping[str, Any],
                     progress: bool = True) -> Trained:
    """Train ``model`` (with a ``classify`` head) to tell the world's 64 classes apart.

    ``config``: a :class:`VisualCNNConfig` or its dict. Training scenes:
    ``World(n=n_train, seed=world_seed)``, all splits (fresh scenes, never the seed-0 world
    the notebooks evaluate on); held out: ``World(n=n_val, seed=world_seed + 500)``. AdamW
    with a one-cycle schedule, flips and shifts. Metrics: held-out accuracy and image ->
    image mAP, and the mean training loss of the first and last epoch.
    """
    cfg = visual_config(config)
    device = pick_device()
    gen = torch.Generator().manual_seed(int(cfg.seed))
    world = World(n=cfg.n_train, seed=cfg.world_seed, progress=False)
    held = World(n=cfg.n_val, seed=cfg.world_seed + 500, progress=False)
    x_all = model.preprocess(world.images, "cpu")
    y_all = torch.from_numpy(world.labels.astype(np.int64))
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    bs, epochs = cfg.batch_size, cfg.epochs
    steps = epochs * math.ceil(len(x_all) / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps,
                                                pct_start=0.2)
    bar = progress_bar(total=steps, desc=f"training {type(model).__name__}", progress=progress)
    log = LossLog(bar)
    for _epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            xb = augment(x_all[idx], gen).to(device)
            loss = F.cross_entropy(model.classify(xb), y_all[idx].to(device),
                                   label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            log.add(loss, n=len(idx))
        log.end_epoch()
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
                                   "loss_first_epoch": round(log.epochs[0], 4),
                                   "loss_last_epoch": round(log.epochs[-1], 4)},
                   data={"world": {"n": cfg.n_train, "seed": cfg.world_seed},
                         "heldout_world": {"n": cfg.n_val, "seed": cfg.world_seed + 500},
                         "epochs": epochs, "steps": steps, "device": str(device)})


def _build_small(config: VisualCNNConfig | Mapping[str, Any]) -> SmallCNN:
    cfg = visual_config(config)
    if not cfg.is_small_cnn:
        raise InputError(f"a SmallCNN needs {', '.join(SMALL_CNN_FIELDS)} in its config")
    return SmallCNN(width=cfg.width, embed_dim=cfg.embed_dim, se=cfg.se, cbam=cfg.cbam,
                    vit=cfg.vit, heads=cfg.heads)


def _build_resnet(config: VisualCNNConfig | Mapping[str, Any]) -> NarrowResNet18:
    cfg = visual_config(config)
    if cfg.is_small_cnn:
        raise InputError(f"a NarrowResNet18 has no {', '.join(SMALL_CNN_FIELDS)}: leave them "
                         f"out of its config")
    return NarrowResNet18(width=cfg.width)


def _train_small(config: VisualCNNConfig | Mapping[str, Any], progress: bool) -> Trained:
    cfg = visual_config(config)
    return train_classifier(_build_small(cfg), cfg, progress)


def _train_resnet(config: VisualCNNConfig | Mapping[str, Any], progress: bool) -> Trained:
    cfg = visual_config(config)
    return train_classifier(_build_resnet(cfg), cfg, progress)


#: the trained visual models (``mmkit.checkpoints.load(NAME)``)
CHECKPOINTS: dict[str, CheckpointSpec] = {
    "visual_small_cnn": CheckpointSpec(
        name="visual_small_cnn", build=_build_small, train=_train_small,
        config=VisualCNNConfig(embed_dim=128, se=True, cbam=True, vit=True,
                               heads=4).to_dict(),
        description="small CNN + SE + CBAM + ViT block, 64 world classes (64 px)",
        seconds=300, threads=1),
    "visual_resnet18_w16": CheckpointSpec(
        name="visual_resnet18_w16", build=_build_resnet, train=_train_resnet,
        config=VisualCNNConfig(width=16, n_train=6000, world_seed=1002, epochs=10).to_dict(),
        description="torchvision ResNet-18 layout at width 16 (0.7 M parameters), from scratch",
        seconds=200, threads=1),
}


__all__ = ["SqueezeExcite", "CBAM", "ViTBlock", "SmallCNN", "NarrowResNet18", "augment",
           "train_classifier", "VisualCNNConfig", "visual_config", "SMALL_CNN_FIELDS",
           "CHECKPOINTS",
           # re-exported from image_encoder, pretrained and explain (the old import path)
           "IMAGENET_MEAN", "IMAGENET_STD", "ImageEncoder", "images_to_tensor",
           "imagenet_tensor", "embed_images", "IMAGENET_CLASSES", "CATS", "ESPRESSO", "MISSILE",
           "PROJECTILE", "imagenet_label", "efficientnet_lite0_weights_path",
           "efficientnet_pytorch_to_timm", "efficientnet_lite0", "PretrainedEncoder",
           "cosine_target", "input_gradients", "grad_cam", "similarity_grad_cam"]
