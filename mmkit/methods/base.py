"""The interface every end-to-end retrieval method implements.

A method fits on a :class:`~mmkit.data.collection.Collection` (the world or a real dataset)
and is an :class:`~mmkit.encoders.base.AudioEncoder` (images, texts and sounds into shared
spaces), whose ``embed_images`` takes one more keyword, ``partner``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from mmkit.data.collection import Collection
from mmkit.errors import InputError


class RetrievalMethod(ABC):
    """Encodes every modality so that cosine similarity ranks a gallery for a query.

    A method may use one joint space for everything (CLIP-style) or one space per pair of
    modalities (the CCA baseline): :meth:`embed_images` takes the ``partner`` modality whose
    space the images should land in (``"text"``, ``"audio"``, ``"image"`` or ``"speech"``;
    keyword-only, default ``"text"``). Its other parameters are those of every encoder
    (:class:`mmkit.encoders.base.Encoder`): ``images``, then keyword-only ``batch_size`` and
    ``progress``.
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

    @property
    def fingerprint(self) -> str:
        """What identifies the method's embeddings (besides the data it is fitted on) in
        caches and index folders; a method built from trained weights returns their sha256
        (:attr:`mmkit.methods.joint.JointMethod.fingerprint`). Default: :attr:`name`."""
        return self.name

    @abstractmethod
    def fit(self, collection: Collection, images: np.ndarray) -> "RetrievalMethod":
        """Learn from the images ``images`` (indices into ``collection``, the world or a
        dataset; usually the train split)."""

    @abstractmethod
    def embed_images(self, images: np.ndarray, *, partner: str = "text",
                     batch_size: int | None = None, progress: bool | None = None
                     ) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, d] in the space shared with ``partner``;
        ``batch_size`` images per forward pass and ``progress`` bars (``None``: the method's
        own setting)."""

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """M strings -> float32 [M, d] in the text-image space."""

    @abstractmethod
    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        """float [N, T] waveforms -> float32 [N, d] in the audio-image space."""

    def embed_for_index(self, images: np.ndarray, spaces: Sequence[str]
                        ) -> dict[str, np.ndarray]:
        """What an index folder stores for uint8 images [N, S, S, 3]: ``{space: float32
        [N, d_space]}`` for each of ``spaces`` ("joint", or the partner modalities "text",
        "image", "audio"), plus any extra per-image arrays [N, ...] under keys starting with
        ``"x_"`` that the method uses to explain a hit. Default: one :meth:`embed_images` call
        per space; a method whose spaces share one forward pass overrides it."""
        return {s: np.asarray(self.embed_images(images, partner="image" if s == "joint" else s),
                              np.float32) for s in spaces}

    def query_note(self, text: str) -> str | None:
        """One line when the method cannot represent the text query well (words it never
        learned, a query close to none of its concepts); None when it can."""
        return None

    def embed_speech(self, clips: Sequence[np.ndarray], sr: int) -> np.ndarray:
        """M spoken captions (float waveforms [T_m]) -> float32 [M, d] in the speech-image
        space. Methods that list ``speech->image`` in :attr:`directions` implement it."""
        raise InputError(f"method {self.name!r} does not embed speech")

    def embed_world_speech(self, world: Collection, captions: np.ndarray) -> np.ndarray:
        """The collection's captions ``captions`` spoken (``world.speech(j)``: synthesised by
        the world, recorded in a dataset) and embedded with :meth:`embed_speech`; methods may
        override it to synthesise in parallel and cache."""
        return self.embed_speech([world.speech(int(j)) for j in captions],
                                 world.config.sample_rate)
