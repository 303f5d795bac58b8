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
