"""Frozen per-modality features of the world's scenes: what the aligners of :mod:`mmkit.align`
project.

ACMR-style alignment (Wang et al. 2017) works on *fixed* unimodal features: a projector per
modality maps them into a shared space. Here the features are the committed unimodal
checkpoints of the features chapters (:func:`mmkit.checkpoints.load`):

- image: ``visual_small_cnn`` (small CNN + SE + CBAM + ViT block, trained on the 64 classes),
  its 128-d embedding (before the class head);
- text: ``gru_text`` (biGRU sentence encoder, contrastive between captions of one image), 128-d;
- audio: ``audio_cnn_sound`` (log-mel CNN for scene sounds), 128-d.

Each is computed once per world and cached (:func:`mmkit.features.cache.cached`) under a key of
its inputs and the checkpoint's sha256, so a change of either never serves a stale cache. The
captions are hashed as text; images and sounds are keyed by what they are rendered from
(:func:`scene_key`: the world's config, every per-scene parameter the renderer and the
synthesiser read, and the source code of both and Pillow's version), so that a cache hit
renders nothing (rendering 6,000 images and sounds costs about a minute on 2 cores).
"""
from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass

import numpy as np
import PIL
import torch

from mmkit.checkpoints import load
from mmkit.data import render, sound, vocab
from mmkit.data import world as world_module
from mmkit.data.world import World
from mmkit.errors import InputError
from mmkit.features.audio_cnn import embed_audio
from mmkit.features.cache import cached, text_key
from mmkit.features.image_encoder import embed_images

#: the frozen encoder of each modality (a committed checkpoint name)
ENCODERS: dict[str, str] = {"image": "visual_small_cnn", "text": "gru_text",
                            "audio": "audio_cnn_sound"}


@dataclass(frozen=True)
class ModalityFeatures:
    """Frozen features of one whole world.

    Attributes:
        image: float32 [N, 128], one row per scene (image index).
        text: float32 [M, 128], one row per caption (caption index), M = 5 N.
        audio: float32 [N, 128], one row per scene's sound clip.
        labels: int64 [N], the scene's class (main object), 0..63.
        caption_image: int64 [M], the scene each caption describes.
    """

    image: np.ndarray
    text: np.ndarray
    audio: np.ndarray
    labels: np.ndarray
    caption_image: np.ndarray


def scene_key(world: World, modality: str) -> str:
    """SHA-256 of everything ``world.images`` (``modality="image"``) or ``world.audio``
    (``"audio"``) is a deterministic function of: the config, the per-scene parameters
    (objects, positions, rotations, tints, styles, sign words, backgrounds), the source of the
    modules that render and synthesise (:mod:`mmkit.data.render`, :mod:`mmkit.data.sound`,
    :mod:`mmkit.data.vocab`, :mod:`mmkit.data.world`) and Pillow's version. Computing it
    renders nothing."""
    if modality not in ("image", "audio"):
        raise InputError(f"scene_key: modality must be 'image' or 'audio', got {modality!r}")
    h = hashlib.sha256(json.dumps({"modality": modality, "config": world.config.to_dict(),
                                   "pillow": PIL.__version__}, sort_keys=True,
                                  default=str).encode())
    for name in ("objects", "xy", "rotation", "tint", "n_objects", "styles", "words", "word_x",
                 "backgrounds"):
        a = np.ascontiguousarray(np.asarray(getattr(world, name)))
        h.update(f"{name}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    for module in (render, sound, vocab, world_module):
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()


def _features(world: World, modality: str, progress: bool) -> np.ndarray:
    name = ENCODERS[modality]
    model, manifest = load(name, progress=progress)

    def compute() -> np.ndarray:
        with torch.no_grad():
            if modality == "image":
                return embed_images(model, world.images, batch_size=256, progress=progress)
            if modality == "text":
                return model.embed_texts(list(world.captions), batch_size=512, normalize=False)
            return embed_audio(model, world.audio, world.config.sample_rate, batch_size=256,
                               progress=progress)

    inputs = text_key(list(world.captions)) if modality == "text" else scene_key(world, modality)
    parts = {"inputs": inputs, "encoder": name, "sha256": manifest["sha256"]}
    return np.asarray(cached(f"align-{modality}", parts, compute), np.float32)


def world_features(world: World, progress: bool = False) -> ModalityFeatures:
    """The frozen image, caption and sound features of every scene of ``world`` (cached)."""
    return ModalityFeatures(image=_features(world, "image", progress),
                            text=_features(world, "text", progress),
                            audio=_features(world, "audio", progress),
                            labels=np.asarray(world.labels, np.int64),
                            caption_image=np.asarray(world.caption_image, np.int64))
