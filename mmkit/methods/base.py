"""The interface every end-to-end retrieval method implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from mmkit.data.world import World


class RetrievalMethod(ABC):
    """Encodes every modality so that cosine similarity ranks a gallery for a query.

    A method may use one joint space for everything (CLIP-style) or one space per pair of
    modalities (the CCA baseline): :meth:`embed_images` takes the ``partner`` modality whose
    space the images should land in (``"text"``, ``"audio"`` or ``"image"``).
    All embeddings are float32 [N, d], L2-normalised.

    :attr:`directions` names the retrieval directions (keys of
    :data:`mmkit.data.directions.DIRECTIONS`) the method can be evaluated on.
    """

    name: str = "method"
    #: True when :meth:`fit` trains nothing (the model comes trained: committed checkpoints or
    #: pretrained weights), so the method can embed a folder of images without a world
    pretrained: bool = False
    #: True when every modality lands in ONE space (the ``partner`` of :meth:`embed_images`
    #: is then ignored); False when each pair of modalities has its own space (CCA)
    joint_space: bool = False
    #: the image side the method expects (uint8 [N, input_size, input_size, 3])
    input_size: int = 64
    directions: tuple[str, ...] = ("text->image", "image->text", "image->image", "audio->image")

    @abstractmethod
    def fit(self, world: World, images: np.ndarray) -> "RetrievalMethod":
        """Learn from the scenes ``images`` (indices into ``world``, usually the train split)."""

    @abstractmethod
    def embed_images(self, images: np.ndarray, partner: str) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, d] in the space shared with ``partner``."""

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """M strings -> float32 [M, d] in the text-image space."""

    @abstractmethod
    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        """float [N, T] waveforms -> float32 [N, d] in the audio-image space."""

    def embed_speech(self, clips: Sequence[np.ndarray], sr: int) -> np.ndarray:
        """M spoken captions (float waveforms [T_m]) -> float32 [M, d] in the speech-image
        space. Methods that list ``speech->image`` in :attr:`directions` implement it."""
        from mmkit.errors import InputError

        raise InputError(f"method {self.name!r} does not embed speech")

    def embed_world_speech(self, world: World, captions: np.ndarray) -> np.ndarray:
        """The world's captions ``captions`` spoken (:meth:`World.speech`) and embedded with
        :meth:`embed_speech`; methods may override it to synthesise in parallel and cache."""
        return self.embed_speech([world.speech(int(j)) for j in captions],
                                 world.config.sample_rate)
