"""One space for images, captions and sounds: the kit's dual (here: triple) encoder, the model.

Three towers, each ending in a projection head into the same ``dim``-dimensional space:

- **image**: :class:`~mmkit.features.visual_cnn.SmallCNN` (the features chapter's CNN: three
  conv stages and a ViT block over the 8 x 8 cells, whose position embeddings keep *where*
  things are, which spatial captions need), or the ImageNet-pretrained EfficientNet-Lite0
  with a trainable head (:class:`PretrainedImageTower`);
- **text**: a bidirectional GRU over learned word embeddings
  (:class:`~mmkit.features.sentence_encoders.GRUTextEncoder`);
- **sound**: the log-mel CNN of the audio chapter (:class:`~mmkit.features.audio_cnn.LogMelCNN`).

:class:`JointConfig` is the model's and its training's config (frozen, validated, its
defaults written once; :meth:`JointConfig.to_dict` is the checkpoints' config dict);
:func:`build_joint` builds the untrained :class:`JointModel` of one.

Training (:func:`~mmkit.encoders.joint_training.train_joint`, the checkpoints ``joint_world``,
``joint_vse``, ``joint_vsepp``, ``joint_clip`` and ``joint_effnet``) lives in
:mod:`mmkit.encoders.joint_training`; scoring on the evaluation split
(:func:`~mmkit.encoders.evaluation.protocol_results`) in :mod:`mmkit.encoders.evaluation`.
Their old paths keep working: the evaluation names are re-exported here, and the training
names (:data:`TRAINING_NAMES`: ``train_joint``, ``CHECKPOINTS``, ``BASE_CONFIG``, ...) are read
from :mod:`mmkit.encoders.joint_training` on first use, so this module never imports its
trainer.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit.data.images import check_images
from mmkit.configs import Checks, DictConfig, TrainWorld, check_rate, counts
from mmkit.encoders.evaluation import (JOINT_DIRECTIONS, PROTOCOL,  # noqa: F401  (re-exports)
                                       ProtocolData, protocol_results, protocol_unseen_classes)
from mmkit.errors import InputError
from mmkit.features.audio_cnn import SOUND_MEL, LogMelCNN, embed_audio, embed_log_mels
from mmkit.features.image_encoder import IMAGENET_MEAN, IMAGENET_STD, images_to_tensor
from mmkit.features.pretrained import PretrainedEncoder
from mmkit.features.sentence_encoders import GRUTextEncoder
from mmkit.features.text import WordTokenizer
from mmkit.features.visual_cnn import SmallCNN
from mmkit.training import progress_bar
from mmkit.validate import integer, number, positive_int

#: the image towers :class:`JointConfig` knows
IMAGE_TOWERS: tuple[str, ...] = ("cnn", "effnet")
#: the cross-modal losses :class:`JointConfig` knows
#: (:func:`~mmkit.encoders.joint_training.make_loss`)
LOSSES: tuple[str, ...] = ("vse", "vsepp", "infonce")


# ============================================================================ config
@dataclass(frozen=True)
class SoundBackbone(DictConfig):
    """The sound tower's log-mel CNN: the audio chapter's ``audio_cnn_sound`` (whose weights
    initialise it): three conv blocks of ``channels``, an ``out_dim`` embedding."""

    channels: tuple[int, ...] = (16, 32, 64)
    out_dim: int = 128

    def __post_init__(self) -> None:
        checks = Checks("SoundBackbone")
        if not (isinstance(self.channels, (list, tuple)) and len(self.channels) == 3):
            checks.add(f"channels must list 3 numbers, got {self.channels!r}")
        else:
            checks.ints(self.channels, "channels")
            object.__setattr__(self, "channels", tuple(self.channels))
        checks(positive_int, self.out_dim, "out_dim")
        checks.done()


#: the sound backbone: the audio chapter's ``audio_cnn_sound`` (its weights initialise it)
SOUND_BACKBONE: dict[str, Any] = SoundBackbone().to_dict()


@dataclass(frozen=True)
class JointConfig(DictConfig):
    """Architecture and training of a :class:`JointModel` (the defaults: every joint
    checkpoint's shared settings, :data:`~mmkit.encoders.joint_training.BASE_CONFIG`).

    ``JointConfig.from_dict(manifest["config"]).to_dict() == manifest["config"]`` for every
    committed joint checkpoint. Bad values raise ONE line listing every problem.
    """

    #: the joint space's dimension
    dim: int = 256
    #: ``"cnn"`` (:class:`~mmkit.features.visual_cnn.SmallCNN`) or ``"effnet"``
    #: (:class:`PretrainedImageTower`)
    image_tower: str = "cnn"
    #: the CNN's width (channels of its first stage; 4 x width at the ViT block)
    width: int = 24
    se: bool = True
    cbam: bool = True
    #: attention heads of the CNN's ViT block (must divide 4 x width)
    heads: int = 4
    #: the text tower's word embedding size and GRU width
    word_dim: int = 64
    hidden: int = 192
    audio_backbone: SoundBackbone = SoundBackbone()
    #: checkpoints the sound / image towers start from (None: random weights)
    audio_init: str | None = "audio_cnn_sound"
    #: the sound backbone is frozen (its features are computed once)
    audio_frozen: bool = True
    image_init: str | None = "visual_small_cnn"
    #: the CNN's conv stages are frozen (their feature maps are computed once)
    image_frozen: bool = True
    #: ``"vse"`` (sum of hinges), ``"vsepp"`` (hardest negative), ``"infonce"``
    loss: str = "infonce"
    margin: float = 0.2
    #: InfoNCE's initial temperature (learnable)
    temperature: float = 0.07
    #: weight of the image-sound loss against the image-caption loss
    audio_weight: float = 0.5
    lr: float = 2e-3
    weight_decay: float = 0.01
    batch_size: int = 128
    epochs: int = 10
    #: a wall-time budget (None: train for ``epochs``); checkpoints use epochs
    seconds: float | None = None
    #: evaluate on the evaluation split every so many steps (None: never; logged only)
    eval_every: int | None = 125
    seed: int = 0
    #: the fresh scenes trained on (never the evaluation world's seed)
    world: TrainWorld = TrainWorld(n=20000, seed=2001)
    # --- not recorded by checkpoints (left out of to_dict at their defaults)
    #: the EfficientNet tower's input size in pixels
    effnet_size: int = 128
    #: the EfficientNet tower's ImageNet weights (False: random, for tests)
    pretrained: bool = True
    #: at most this many steps (an equal step budget across training-set sizes)
    max_steps: int | None = None

    OPTIONAL = ("effnet_size", "pretrained", "max_steps")

    def __post_init__(self) -> None:
        checks = Checks("JointConfig")
        for name in ("dim", "width", "heads", "word_dim", "hidden", "batch_size", "epochs",
                     "effnet_size"):
            checks(positive_int, getattr(self, name), name)
        checks.choice(self.image_tower, "image_tower", IMAGE_TOWERS)
        for name in ("se", "cbam", "audio_frozen", "image_frozen", "pretrained"):
            checks.flag(getattr(self, name), name)
        if self.image_tower == "cnn" and counts(self, "width", "heads") \
                and (4 * self.width) % self.heads:
            checks.add(f"heads {self.heads} must divide the ViT block's width 4 x width = "
                       f"{4 * self.width}")
        object.__setattr__(self, "audio_backbone",
                           SoundBackbone.coerce(self.audio_backbone, checks, "audio_backbone"))
        checks.name_or_none(self.audio_init, "audio_init")
        checks.name_or_none(self.image_init, "image_init")
        if self.image_tower == "effnet" and self.image_init is not None:
            checks.add(f"image_init must be None with image_tower 'effnet' (the tower starts "
                       f"from ImageNet weights), got {self.image_init!r}")
        checks.choice(self.loss, "loss", LOSSES)
        checks(number, self.margin, "margin", low=0)
        checks(number, self.temperature, "temperature", low=0, low_open=True)
        checks(number, self.audio_weight, "audio_weight", low=0)
        check_rate(checks, self.lr, "lr")
        checks(number, self.weight_decay, "weight_decay", low=0)
        checks.optional(number, self.seconds, "seconds", low=0, low_open=True)
        checks.optional(positive_int, self.eval_every, "eval_every")
        checks.optional(positive_int, self.max_steps, "max_steps")
        checks(integer, self.seed, "seed", low=0)
        object.__setattr__(self, "world", TrainWorld.coerce(self.world, checks, "world"))
        checks.done()


def joint_config(config: JointConfig | Mapping[str, Any]) -> JointConfig:
    """``config`` as a :class:`JointConfig` (a checkpoint's config dict, or one already)."""
    return JointConfig.from_dict(config)


# ============================================================================ towers
class PretrainedImageTower(nn.Module):
    """ImageNet EfficientNet-Lite0 (frozen, offline weights) + a trainable MLP head.

    ``forward(float32 [N, 3, S, S] ImageNet-normalised) -> float32 [N, dim]``. The backbone's
    pooled 1280-d features of a fixed image never change, so :func:`train_joint` computes
    them once (:meth:`features`) and trains only :attr:`head` on them.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __init__(self, dim: int, input_size: int = 128, pretrained: bool = True) -> None:
        super().__init__()
        self.backbone = PretrainedEncoder(input_size=input_size, pretrained=pretrained)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.input_size = input_size
        self.head = nn.Sequential(nn.Linear(self.backbone.out_dim, 512), nn.GELU(),
                                  nn.Linear(512, dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen backbone's pooled features, float32 [N, 1280]."""
        self.backbone.eval()
        with torch.no_grad():
            return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class JointModel(nn.Module):
    """Image, text and sound towers into one space of size ``config.dim``.

    ``config``: a :class:`JointConfig` or its dict (a checkpoint's config); kept as
    :attr:`config` (the :class:`JointConfig`).

    The ``encode_*`` methods take tensors and return UNnormalised float32 [N, dim]; the
    ``embed_*`` methods take raw inputs (uint8 images, strings, waveforms), batch them without
    gradients and return L2-normalised float32 numpy arrays [N, dim].
    """

    def __init__(self, config: JointConfig | Mapping[str, Any]) -> None:
        super().__init__()
        cfg = joint_config(config)
        self.config = cfg
        dim = cfg.dim
        if cfg.image_tower == "effnet":
            self.image = PretrainedImageTower(dim, cfg.effnet_size, pretrained=cfg.pretrained)
        else:
            self.image = SmallCNN(width=cfg.width, embed_dim=dim, se=cfg.se, cbam=cfg.cbam,
                                  vit=True, heads=cfg.heads)
        tok = WordTokenizer.world()
        self.tokenizer = tok
        self.text = GRUTextEncoder(tok.vocab_size, cfg.word_dim, cfg.hidden, dim,
                                   bidirectional=True)
        self.text.tokenizer = tok
        sound = cfg.audio_backbone
        self.audio = LogMelCNN(n_mels=SOUND_MEL["n_mels"], channels=sound.channels,
                               out_dim=sound.out_dim, n_fft=SOUND_MEL["n_fft"],
                               hop_length=SOUND_MEL["hop_length"])
        self.audio_head = nn.Sequential(nn.Linear(sound.out_dim, 512), nn.GELU(),
                                        nn.Linear(512, dim))
        self.audio_frozen = cfg.audio_frozen
        if self.audio_frozen:
            for p in self.audio.parameters():
                p.requires_grad_(False)
        # CLIP's learnable temperature lives in the loss during training; the model keeps the
        # final value for reference (it does not change rankings)
        self.register_buffer("logit_scale", torch.tensor(math.log(1 / 0.07)))
        self.dim = dim

    # ---------------------------------------------------------------- tensors
    @property
    def frozen_cnn(self) -> bool:
        """True when the CNN's conv stages are frozen (``config.image_frozen``): only its
        attention blocks, ViT block and projection train, on a feature map computed once."""
        return isinstance(self.image, nn.Module) and not isinstance(
            self.image, PretrainedImageTower) and self.config.image_frozen

    def image_map(self, x: torch.Tensor) -> torch.Tensor:
        """The CNN's conv stages: [N, 3, 64, 64] -> feature map [N, 4*width, 8, 8] (no
        gradient when frozen)."""
        cnn = self.image
        if self.frozen_cnn:
            with torch.no_grad():
                return cnn.stage3(cnn.stage2(cnn.stage1(x)))
        return cnn.stage3(cnn.stage2(cnn.stage1(x)))

    def image_from_map(self, h: torch.Tensor) -> torch.Tensor:
        """The trainable top of the CNN: attention blocks, ViT block, projection -> [N, dim]."""
        cnn = self.image
        if cnn.se is not None:
            h = cnn.se(h)
        if cnn.cbam is not None:
            h = cnn.cbam(h)
        pooled = cnn.vit(h)[:, 0]
        return cnn.proj(cnn.norm(pooled))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.image, PretrainedImageTower):
            return self.image(x)
        return self.image_from_map(self.image_map(x))

    def encode_text(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.text(ids, lengths)

    def audio_features(self, mels: torch.Tensor, lengths: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """The sound backbone's embedding [N, 128] of log-mels [N, 1, n_mels, T]."""
        if self.audio_frozen:
            self.audio.eval()
            with torch.no_grad():
                return self.audio(mels, lengths)
        return self.audio(mels, lengths)

    def encode_audio(self, mels: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.audio_head(self.audio_features(mels, lengths))

    # ---------------------------------------------------------------- raw inputs
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def image_tensor(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> the image tower's input, float32 [N, 3, S, S]."""
        size = getattr(self.image, "input_size", None) or 64
        return images_to_tensor(images, self.image.mean, self.image.std, size, self.device)

    @torch.no_grad()
    def embed_images(self, images: np.ndarray, *, batch_size: int = 256,
                     progress: bool = False) -> np.ndarray:
        """uint8 [N, H, W, 3] -> L2-normalised float32 [N, dim] (the signature of every
        :class:`~mmkit.encoders.base.Encoder`)."""
        images = check_images(images, name="embed_images: images")
        return self._run([self.encode_image(self.image_tensor(images[s:s + batch_size]))
                          for s in progress_bar(range(0, len(images), batch_size),
                                                desc="embed images", progress=progress)])

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 512) -> np.ndarray:
        """M strings -> L2-normalised float32 [M, dim] (words outside the world's vocabulary
        are counted in ``self.text.last_report``)."""
        if len(texts) == 0:
            raise InputError("embed_texts: no texts given")
        was = self.training
        self.eval()
        out = self.text.embed_texts(list(texts), batch_size=batch_size, normalize=True)
        self.train(was)
        return out

    @torch.no_grad()
    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        """float [N, T] waveforms at ``sr`` -> L2-normalised float32 [N, dim]."""
        was = self.training
        self.eval()
        feats = embed_audio(self.audio, clips, sr, batch_size=256)
        out = self.audio_head(torch.from_numpy(feats).to(self.device)).cpu().numpy()
        self.train(was)
        return _normalise(out)

    @torch.no_grad()
    def embed_log_mels(self, mels: np.ndarray) -> np.ndarray:
        """Sound log-mels float32 [N, n_mels, T] -> L2-normalised float32 [N, dim]."""
        was = self.training
        self.eval()
        feats = embed_log_mels(self.audio, mels, batch_size=256)
        out = self.audio_head(torch.from_numpy(feats).to(self.device)).cpu().numpy()
        self.train(was)
        return _normalise(out)

    def _run(self, parts: list[torch.Tensor]) -> np.ndarray:
        return _normalise(torch.cat(parts).float().cpu().numpy())

    def train(self, mode: bool = True) -> "JointModel":
        super().train(mode)
        if isinstance(self.image, PretrainedImageTower):
            self.image.backbone.eval()
        if self.audio_frozen:
            self.audio.eval()
        if self.frozen_cnn:
            for part in (self.image.stage1, self.image.stage2, self.image.stage3):
                part.eval()
        return self


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def build_joint(config: JointConfig | Mapping[str, Any]) -> JointModel:
    """The untrained model of ``config`` (a :class:`JointConfig` or its dict; always the same
    architecture for one config)."""
    return JointModel(config)
