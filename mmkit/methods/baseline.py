"""The handcrafted baseline: TF-IDF + colour/HOG + MFCC statistics, joined by CCA.

- text -> image and image -> text: CCA between TF-IDF caption vectors and visual features
  (every caption is paired with its image's features);
- audio -> image: CCA between audio statistics and visual features;
- image -> image: the image side of the text-image CCA (a space shaped by what captions say,
  which is what "same class" means here); on data without captions but with class labels
  (CUB without Reed's text), the image side of a CCA between visual features and one-hot
  labels;
- speech -> image (data with recorded spoken captions only, e.g. Flickr8K Audio): CCA
  between the MFCC statistics of each recording and its image's visual features.

It fits on any :class:`~mmkit.data.collection.Collection` (the world or a
:class:`~mmkit.data.dataset.RetrievalDataset`), learning only what the data has
(:attr:`~mmkit.data.collection.Collection.modalities`); after :meth:`fit`, :attr:`directions`
names what it can do.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmkit.data.collection import Collection
from mmkit.data.images import check_images
from mmkit.encoders.cca import CCA
from mmkit.errors import InputError
from mmkit.features.audio import clip_features
from mmkit.features.text import TfidfEncoder
from mmkit.features.visual import handcrafted_visual
from mmkit.methods.base import RetrievalMethod


def _standardise(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return train.mean(0), train.std(0) + 1e-6


def speech_features(clips: Sequence[np.ndarray], sr: int) -> np.ndarray:
    """MFCC statistics of recordings of any length, one at a time: float32 [M, 60]."""
    return np.concatenate([clip_features(np.asarray(c, np.float32)[None], sr) for c in clips])


class BaselineMethod(RetrievalMethod):
    """TF-IDF + handcrafted visual + audio features mapped into joint spaces with CCA.

    Args:
        text_dims / audio_dims: size of the text-image and audio-image CCA spaces.
        speech: fit speech -> image (``None``: when the data has recorded spoken captions).
        progress: show progress bars while computing features.
    """

    name = "baseline"

    def __init__(self, text_dims: int = 48, audio_dims: int = 24, pca_dims: int = 256,
                 speech: bool | None = None, progress: bool = True) -> None:
        self.text_dims = text_dims
        self.audio_dims = audio_dims
        self.pca_dims = pca_dims
        self.speech = speech
        self.progress = progress

    @property
    def fingerprint(self) -> str:
        """What identifies this method's embeddings besides the data it is fitted on (which
        the caller records): its settings, e.g.
        ``"baseline|text_dims=48|audio_dims=24|pca_dims=256|speech=None"``; it loads no
        trained weights."""
        return (f"{self.name}|text_dims={self.text_dims}|audio_dims={self.audio_dims}|"
                f"pca_dims={self.pca_dims}|speech={self.speech}")

    def fit(self, collection: Collection, images: np.ndarray) -> "BaselineMethod":
        """Learn from ``images`` (indices into ``collection``: a World or a RetrievalDataset)."""
        images = np.asarray(images)
        if images.size == 0:
            raise InputError("the baseline needs training images (an empty train split?)")
        modalities = collection.modalities
        visual = handcrafted_visual(collection.images[images], progress=self.progress)
        row_of = np.full(len(collection), -1, np.int64)
        row_of[images] = np.arange(len(images))
        done = []
        self.text_cca = self.label_cca = self.audio_cca = self.speech_cca = None
        if "text" in modalities:
            caps = collection.caption_indices(images)
            texts = [collection.captions[j] for j in caps]
            self.tfidf = TfidfEncoder().fit(texts)
            self.text_cca = CCA(self.text_dims, pca_dims=self.pca_dims).fit(
                visual[row_of[collection.caption_image[caps]]], self.tfidf.transform(texts))
            done += ["text->image", "image->text", "image->image"]
        elif collection.labels is not None:
            labels = np.asarray(collection.labels)[images]
            classes, onehot_of = np.unique(labels, return_inverse=True)
            self.label_cca = CCA(min(self.text_dims, max(len(classes) - 1, 1)),
                                 pca_dims=self.pca_dims).fit(
                visual, np.eye(len(classes))[onehot_of])
            done.append("image->image")
        if "audio" in modalities:
            audio = clip_features(collection.audio[images], collection.config.sample_rate)
            self.audio_mean, self.audio_std = _standardise(audio)
            self.audio_cca = CCA(self.audio_dims,
                                 pca_dims=min(self.pca_dims, audio.shape[1])).fit(
                visual, (audio - self.audio_mean) / self.audio_std)
            done.append("audio->image")
        speech = self.speech if self.speech is not None else "speech" in modalities
        if speech and "speech" in modalities:
            caps = collection.unit_ids("speech", images)
            feats = speech_features([collection.speech(int(j)) for j in caps],
                                    collection.config.sample_rate)
            self.speech_mean, self.speech_std = _standardise(feats)
            self.speech_cca = CCA(self.audio_dims,
                                  pca_dims=min(self.pca_dims, feats.shape[1])).fit(
                visual[row_of[collection.caption_image[caps]]],
                (feats - self.speech_mean) / self.speech_std)
            done.append("speech->image")
        order = [d for d in type(self).directions if d in done]
        self.directions = tuple(order + [d for d in done if d not in order])
        return self

    _CCAS = ("text_cca", "label_cca", "audio_cca", "speech_cca")
    _STATS = ("audio_mean", "audio_std", "speech_mean", "speech_std")

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The fitted method as plain arrays (no pickles; :meth:`load_state_arrays` reverses
        it): settings, directions, TF-IDF vocabulary and weights, each fitted CCA, the
        audio / speech standardisation. An index folder stores it (``method.npz``) so that
        a search never fits again."""
        if not hasattr(self, "directions") or "text_cca" not in vars(self):
            raise InputError("the baseline is not fitted: call fit() first")
        out = {"settings": np.array([self.text_dims, self.audio_dims, self.pca_dims]),
               "speech": np.array("none" if self.speech is None else str(self.speech)),
               "directions": np.array(self.directions, dtype=str)}
        if getattr(self, "tfidf", None) is not None:
            out |= {f"tfidf.{k}": v for k, v in self.tfidf.to_arrays().items()}
        for name in self._CCAS:
            cca = getattr(self, name, None)
            if cca is not None:
                out |= {f"{name}.{k}": v for k, v in cca.to_arrays().items()}
        for name in self._STATS:
            if getattr(self, name, None) is not None:
                out[name] = np.asarray(getattr(self, name))
        return out

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> "BaselineMethod":
        """Become the fitted method :meth:`state_arrays` describes; returns self."""
        try:
            self.text_dims, self.audio_dims, self.pca_dims = (int(v) for v in arrays["settings"])
            speech = str(arrays["speech"])
            self.speech = None if speech == "none" else speech == "True"
            self.directions = tuple(str(d) for d in arrays["directions"])

            def part(prefix: str) -> dict[str, np.ndarray]:
                return {k[len(prefix) + 1:]: v for k, v in arrays.items()
                        if k.startswith(prefix + ".")}

            self.tfidf = TfidfEncoder.from_arrays(part("tfidf")) if part("tfidf") else None
            for name in self._CCAS:
                setattr(self, name, CCA.from_arrays(part(name)) if part(name) else None)
            for name in self._STATS:
                if name in arrays:
                    setattr(self, name, np.asarray(arrays[name]))
        except (KeyError, ValueError) as e:
            raise InputError(f"not a saved baseline method ({type(e).__name__}: {e})") from None
        return self

    def _visual(self, images: np.ndarray, progress: bool | None = None) -> np.ndarray:
        """Visual features, remembered for the last array seen (the evaluation asks for the
        same gallery in several spaces)."""
        cached = getattr(self, "_last_visual", None)
        if cached is not None and cached[0] is images:
            return cached[1]
        feats = handcrafted_visual(images, progress=self.progress if progress is None
                                   else bool(progress))
        self._last_visual = (images, feats)
        return feats

    def embed_images(self, images: np.ndarray, *, partner: str = "text",
                     batch_size: int | None = None, progress: bool | None = None
                     ) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, d] in the CCA space shared with ``partner``
        (``"image"`` uses the text-image space, or the label space on data without captions).
        Handcrafted features have no batches: ``batch_size`` is accepted for the common
        signature and unused; ``progress`` (``None``: the method's setting) shows a bar."""
        visual = self._visual(check_images(images, name="baseline images"), progress)
        if partner in ("text", "image") and self.text_cca is not None:
            return self.text_cca.transform_x(visual)
        if partner == "image" and self.label_cca is not None:
            return self.label_cca.transform_x(visual)
        if partner == "audio" and self.audio_cca is not None:
            return self.audio_cca.transform_x(visual)
        if partner == "speech" and self.speech_cca is not None:
            return self.speech_cca.transform_x(visual)
        raise ValueError(f"unknown partner modality {partner!r} (or not fitted for it)")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text_cca.transform_y(self.tfidf.transform(texts))

    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        audio = clip_features(clips, sr)
        return self.audio_cca.transform_y((audio - self.audio_mean) / self.audio_std)

    def embed_speech(self, clips: Sequence[np.ndarray], sr: int) -> np.ndarray:
        if self.speech_cca is None:
            return super().embed_speech(clips, sr)
        feats = speech_features(clips, sr)
        return self.speech_cca.transform_y((feats - self.speech_mean) / self.speech_std)
