"""Spoken captions into the joint space: a DAVEnet-style log-mel CNN (Harwath et al. 2018), the
model.

The speech tower (:class:`SpeechTower`) is the audio chapter's log-mel CNN for speech
(:class:`~mmkit.features.audio_cnn.LogMelCNN` at 40 mel bands, 20 ms hop, initialised from
the ``audio_cnn_speech`` checkpoint) with a projection head into the space of the trained
joint model (:mod:`mmkit.encoders.joint`, checkpoint ``joint_world``); :class:`SpeechConfig`
is its config (frozen, validated, the defaults written once).

Training (:func:`~mmkit.encoders.speech_training.train_speech`, checkpoint ``joint_speech``)
lives in :mod:`mmkit.encoders.speech_training`: the joint model stays frozen, the tower learns
to put a spoken caption next to the image it describes (InfoNCE against the frozen image
embeddings) and next to the same caption's text embedding (a distillation term, weight
``text_weight``), so that speech->image works through the very space text->image uses.
Training data: captions of fresh scenes (``config.world``, not the evaluation seed), spoken by
espeak-ng with the world's six voices, synthesised in parallel worker processes and cached
(:func:`~mmkit.features.audio_cnn.world_speech_log_mels`; about 0.03 s per caption). The
manifest records the sha256 of the joint checkpoint it was aligned to: a speech tower aligned
to another joint model is refused by the joint retrieval method (``JointMethod``).

Old import paths keep working: :func:`~mmkit.encoders.evaluation.protocol_speech_results` is
re-exported here, and ``train_speech``, ``SPEECH_CONFIG``, ``CHECKPOINTS`` are read from
:mod:`mmkit.encoders.speech_training` on first use.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit.data.world import WorldConfig
from mmkit.configs import Checks, DictConfig, TrainWorld, check_rate
from mmkit.encoders.evaluation import protocol_speech_results  # noqa: F401  (re-export)
from mmkit.features import audio_cnn
from mmkit.features.audio import log_mel, prepare_audio
from mmkit.validate import integer, number, positive_int


@dataclass(frozen=True)
class SpeechConfig(DictConfig):
    """Architecture and training of a :class:`SpeechTower` (the defaults: the ``joint_speech``
    checkpoint's config). ``SpeechConfig.from_dict(manifest["config"]).to_dict()`` is the
    manifest's config; bad values raise ONE line listing every problem."""

    #: the joint space's dimension (the joint model's ``dim``)
    dim: int = 256
    #: the log-mel CNN's three conv blocks and its embedding size
    channels: tuple[int, ...] = (16, 32, 64)
    cnn_dim: int = 128
    dropout: float = 0.1
    #: the frozen joint checkpoint the tower is aligned to
    joint: str = "joint_world"
    #: the checkpoint the CNN starts from (None: random weights)
    init: str | None = "audio_cnn_speech"
    #: spoken captions per scene (of the world's 5)
    captions_per_image: int = 2
    #: InfoNCE's initial temperature (learnable)
    temperature: float = 0.07
    #: weight of the speech-text distillation term
    text_weight: float = 1.0
    lr: float = 2e-3
    weight_decay: float = 0.01
    batch_size: int = 96
    epochs: int = 12
    seed: int = 0
    #: score the evaluation split after training (speech->image, text->image)
    evaluate: bool = True
    #: the fresh scenes trained on (never the evaluation world's seed)
    world: TrainWorld = TrainWorld(n=3000, seed=2101)

    def __post_init__(self) -> None:
        checks = Checks("SpeechConfig")
        for name in ("dim", "cnn_dim", "batch_size", "epochs"):
            checks(positive_int, getattr(self, name), name)
        checks.ints(self.channels, "channels")
        if isinstance(self.channels, (list, tuple)):
            if len(self.channels) != 3:
                checks.add(f"channels must list 3 numbers, got {list(self.channels)!r}")
            object.__setattr__(self, "channels", tuple(self.channels))
        checks(number, self.dropout, "dropout", low=0, high=1, high_open=True)
        if not (isinstance(self.joint, str) and self.joint):
            checks.add(f"joint must be a checkpoint name, got {self.joint!r}")
        checks.name_or_none(self.init, "init")
        checks(integer, self.captions_per_image, "captions_per_image", low=1,
               high=WorldConfig().captions_per_image)
        checks(number, self.temperature, "temperature", low=0, low_open=True)
        checks(number, self.text_weight, "text_weight", low=0)
        check_rate(checks, self.lr, "lr")
        checks(number, self.weight_decay, "weight_decay", low=0)
        checks(integer, self.seed, "seed", low=0)
        checks.flag(self.evaluate, "evaluate")
        object.__setattr__(self, "world", TrainWorld.coerce(self.world, checks, "world"))
        checks.done()


def speech_config(config: SpeechConfig | Mapping[str, Any]) -> SpeechConfig:
    """``config`` as a :class:`SpeechConfig` (a checkpoint's config dict, or one already)."""
    return SpeechConfig.from_dict(config)


class SpeechTower(nn.Module):
    """Log-mel CNN + projection head: ``forward(logmel [N, 1, 40, T], lengths [N]) ->
    float32 [N, dim]``. ``config``: a :class:`SpeechConfig` or its dict (kept as
    :attr:`config`, the :class:`SpeechConfig`)."""

    def __init__(self, config: SpeechConfig | Mapping[str, Any]) -> None:
        super().__init__()
        cfg = speech_config(config)
        mel = audio_cnn.SPEECH_MEL
        self.config = cfg
        self.cnn = audio_cnn.LogMelCNN(n_mels=mel["n_mels"], channels=cfg.channels,
                                       out_dim=cfg.cnn_dim, n_fft=mel["n_fft"],
                                       hop_length=mel["hop_length"], dropout=cfg.dropout)
        self.head = nn.Sequential(nn.Linear(cfg.cnn_dim, 512), nn.GELU(),
                                  nn.Linear(512, cfg.dim))
        self.dim = cfg.dim

    @property
    def mel_config(self) -> dict[str, int]:
        return self.cnn.mel_config

    @property
    def n_mels(self) -> int:
        return self.cnn.n_mels

    @property
    def out_dim(self) -> int:
        return self.dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.cnn(x, lengths))

    @torch.no_grad()
    def embed_log_mels(self, mels: Sequence[np.ndarray]) -> np.ndarray:
        """Log-mels (a list of float32 [40, T_i]) -> L2-normalised float32 [M, dim]."""
        was = self.training
        self.eval()
        out = audio_cnn.embed_log_mels(self, mels, batch_size=128)
        self.train(was)
        return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-12)

    @torch.no_grad()
    def embed_audio(self, clips: Sequence[np.ndarray], sr: int) -> np.ndarray:
        """Spoken captions (mono float waveforms [T_i] at ``sr``) -> float32 [M, dim]."""
        sr_model = self.cnn.sr
        mels = [log_mel(prepare_audio(c, sr, sr_model, name=f"clip {i}"), sr_model,
                        **self.mel_config)[0] for i, c in enumerate(clips)]
        return self.embed_log_mels(mels)


def build_speech_tower(config: SpeechConfig | Mapping[str, Any]) -> SpeechTower:
    """The untrained tower of ``config`` (a :class:`SpeechConfig` or its dict)."""
    return SpeechTower(config)
