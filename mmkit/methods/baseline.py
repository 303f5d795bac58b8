"""The handcrafted baseline: TF-IDF + colour/HOG + MFCC statistics, joined by CCA.

- text -> image and image -> text: CCA between TF-IDF caption vectors and visual features
  (every caption is paired with its image's features);
- audio -> image: CCA between audio statistics and visual features;
- image -> image: the image side of the text-image CCA (a space shaped by what captions say,
  which is what "same class" means here).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmkit.data.world import World
from mmkit.encoders.cca import CCA
from mmkit.features.audio import clip_features
from mmkit.features.text import TfidfEncoder
from mmkit.features.visual import handcrafted_visual
from mmkit.methods.base import RetrievalMethod


def _standardise(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return train.mean(0), train.std(0) + 1e-6


class BaselineMethod(RetrievalMethod):
    """TF-IDF + handcrafted visual + audio features mapped into joint spaces with CCA.

    Args:
        text_dims / audio_dims: size of the text-image and audio-image CCA spaces.
        progress: show progress bars while computing features.
    """

    name = "baseline"

    def __init__(self, text_dims: int = 48, audio_dims: int = 24, pca_dims: int = 256,
                 progress: bool = True) -> None:
        self.text_dims = text_dims
        self.audio_dims = audio_dims
        self.pca_dims = pca_dims
        self.progress = progress

    def fit(self, world: World, images: np.ndarray) -> "BaselineMethod":
        images = np.asarray(images)
        caps = world.caption_indices(images)
        texts = [world.captions[j] for j in caps]
        self.tfidf = TfidfEncoder().fit(texts)
        visual = handcrafted_visual(world.images[images], progress=self.progress)
        per = world.config.captions_per_image
        self.text_cca = CCA(self.text_dims, pca_dims=self.pca_dims).fit(
            np.repeat(visual, per, axis=0), self.tfidf.transform(texts))
        audio = clip_features(world.audio[images], world.config.sample_rate)
        self.audio_mean, self.audio_std = _standardise(audio)
        self.audio_cca = CCA(self.audio_dims, pca_dims=min(self.pca_dims, audio.shape[1])).fit(
            visual, (audio - self.audio_mean) / self.audio_std)
        return self

    def _visual(self, images: np.ndarray) -> np.ndarray:
        """Visual features, remembered for the last array seen (the evaluation asks for the
        same gallery in several spaces)."""
        cached = getattr(self, "_last_visual", None)
        if cached is not None and cached[0] is images:
            return cached[1]
        feats = handcrafted_visual(images, progress=self.progress)
        self._last_visual = (images, feats)
        return feats

    def embed_images(self, images: np.ndarray, partner: str) -> np.ndarray:
        visual = self._visual(images)
        if partner in ("text", "image"):
            return self.text_cca.transform_x(visual)
        if partner == "audio":
            return self.audio_cca.transform_x(visual)
        raise ValueError(f"unknown partner modality {partner!r}")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text_cca.transform_y(self.tfidf.transform(texts))

    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        audio = clip_features(clips, sr)
        return self.audio_cca.transform_y((audio - self.audio_mean) / self.audio_std)
