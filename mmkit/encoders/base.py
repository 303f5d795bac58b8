"""What a method embeds: the one interface of every encoder of images and texts.

An :class:`Encoder` turns images and captions into rows of one space, L2-normalised, so that
inner products are cosine similarities:

- ``embed_images(images, *, batch_size, progress)``: uint8 [N, H, W, 3] -> float32 [N, d];
- ``embed_texts(texts)``: M strings -> float32 [M, d];
- and, for an :class:`AudioEncoder`, ``embed_audio(clips, sr)``: float [N, T] waveforms at
  ``sr`` Hz -> float32 [N, d].

``batch_size`` (items per forward pass) and ``progress`` (a progress bar) are keyword-only
everywhere, so one call works on every encoder:

- :class:`mmkit.encoders.joint.JointModel` and :class:`mmkit.encoders.hf_clip.ClipStyle`
  (trained towers);
- every retrieval method (:class:`mmkit.methods.base.RetrievalMethod`), whose
  ``embed_images`` takes one more keyword, ``partner``: the modality whose space the images
  should land in (one joint space ignores it; the CCA baseline has one space per pair);
- :func:`mmkit.features.image_encoder.embed_images` (re-exported by
  :mod:`mmkit.features.visual_cnn`) is the function form for a bare image encoder
  (an ``nn.Module``): ``embed_images(model, images, *, batch_size, progress, ...)``, with the
  module first instead of ``self`` and three more keywords (``device``, ``normalize``,
  ``desc``); it embeds images only, so it is the building block of an encoder, not one.

The protocols are ``runtime_checkable``: ``isinstance(x, Encoder)`` checks that the methods
exist (not their signatures; ``tests/test_encoder_protocol.py`` checks those).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from typing_extensions import Protocol, runtime_checkable

__all__ = ["ImageEmbedder", "Encoder", "AudioEncoder", "EMBED_IMAGES_PARAMETERS"]

#: the parameters of every ``embed_images`` after ``self`` (and a method's ``partner``):
#: the images, then keyword-only settings
EMBED_IMAGES_PARAMETERS = ("images", "batch_size", "progress")


@runtime_checkable
class ImageEmbedder(Protocol):
    """Anything that embeds a batch of images."""

    def embed_images(self, images: np.ndarray, *, batch_size: int = ...,
                     progress: bool = False) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, d], L2-normalised rows; ``batch_size`` images
        per forward pass, ``progress``: show a progress bar."""


@runtime_checkable
class Encoder(ImageEmbedder, Protocol):
    """What a method embeds: images and captions into one space."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """M strings -> float32 [M, d], L2-normalised rows."""


@runtime_checkable
class AudioEncoder(Encoder, Protocol):
    """An :class:`Encoder` that embeds sound clips too."""

    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        """float [N, T] waveforms at ``sr`` Hz -> float32 [N, d], L2-normalised rows."""
