"""One dataset type for every real dataset: images, captions, splits, and what else a dataset has.

Every loader (:mod:`mmkit.data.karpathy`, :mod:`~mmkit.data.coco`, :mod:`~mmkit.data.flickr`,
:mod:`~mmkit.data.cub`, :mod:`~mmkit.data.spoken`) returns a :class:`RetrievalDataset`.
It is a :class:`~mmkit.data.collection.Collection`, as :class:`mmkit.data.world.World` is, so
that the evaluation (:mod:`mmkit.methods.evaluate`) and the methods run on both unchanged
(the shared logic is :class:`~mmkit.data.collection.CollectionBase`):

- ``unit_ids(modality, images)`` / ``direction_ids(direction, images)``: caption indices for
  ``text`` and ``speech`` (the first :attr:`RetrievalDataset.captions_per_image` captions of
  each image, in image order), image indices for ``image`` and ``audio``;
- ``ground_truth(direction, images)``: **binary** relevance, stored as 0 / 3 so that the
  world's conventions (mAP counts relevance 3, NDCG@10 linear gain) read it unchanged:
  caption <-> image: the caption's own image; image -> image and audio -> image: the same
  class label (the query itself excluded for image -> image);
- ``images[ids]``: uint8 [N, S, S, 3], loaded lazily from disk at ``image_size`` (S) and
  remembered; ``captions``, ``caption_image``, ``audio[ids]``, ``speech(j)``, ``config``.

A direction exists only where the data defines it (:attr:`RetrievalDataset.directions`):
image -> image and audio -> image need class labels, audio -> image needs a sound clip per
image, speech -> image needs recorded spoken captions.

Nothing is dropped silently: a loader either raises a one-line
:class:`~mmkit.errors.InputError` naming file, line and field, or applies a documented
repair, which it records in :attr:`RetrievalDataset.repairs` (:meth:`repair_summary` gives
one line).

This module imports no model code; ``torch`` is imported only by :meth:`as_torch`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmkit.data.collection import CollectionBase
from mmkit.data.collection import directions_of, modalities_of  # noqa: F401 - re-export
from mmkit.data.directions import Direction
from mmkit.data.images import load_image as load_image_file
from mmkit.data.world import WORLD_MODALITIES  # noqa: F401 - re-export
from mmkit.errors import InputError

#: evaluation keeps this many captions per image (COCO has 5-7; the convention keeps 5)
CAPTIONS_PER_IMAGE = 5
#: images are loaded at this size (square) unless told otherwise
IMAGE_SIZE = 64


@dataclass(frozen=True)
class Repair:
    """One documented repair a loader applied to a file.

    Attributes:
        file: the file repaired (as given to the loader).
        line: 1-based line number, or ``None`` for a whole-file repair.
        field: the field or column concerned (``"caption"``, ``"comment_number"``...).
        kind: a short name of the repair, the same for every repair of its kind
            (``"broken row split"``, ``"extra field dropped"``...).
        detail: what was found and what was done.
    """

    file: str
    line: int | None
    field: str
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.kind} ({self.detail})"


@dataclass(frozen=True)
class DatasetConfig:
    """What code written for :class:`~mmkit.data.world.World` reads from ``world.config``."""

    n: int
    sample_rate: int = 16000
    image_size: int = IMAGE_SIZE
    captions_per_image: int = CAPTIONS_PER_IMAGE
    seed: int | None = None


class LazyImages:
    """``dataset.images``: indexing loads images from disk at the dataset's ``image_size``.

    ``images[i]`` -> uint8 [S, S, 3]; ``images[ids]`` (an int array or list) -> uint8
    [len(ids), S, S, 3]. Loaded images are remembered per (index, size).
    """

    def __init__(self, dataset: "RetrievalDataset") -> None:
        self._ds = dataset
        self._memo: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._ds)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        s = self._ds.image_size
        return (len(self._ds), s, s, 3)

    def _one(self, i: int) -> np.ndarray:
        key = (i, self._ds.image_size)
        if key not in self._memo:
            self._memo[key] = self._ds.load_image(i, self._ds.image_size)
        return self._memo[key]

    def __getitem__(self, ids: Any) -> np.ndarray:
        if isinstance(ids, (int, np.integer)):
            return self._one(int(ids))
        ids = np.arange(len(self._ds))[ids] if isinstance(ids, slice) else np.asarray(ids)
        s = self._ds.image_size
        out = np.empty((len(ids), s, s, 3), np.uint8)
        for k, i in enumerate(ids):
            out[k] = self._one(int(i))
        return out


class LazyAudio:
    """``dataset.audio``: one sound clip per image (the world's export has them), loaded from
    disk as float32 mono at the dataset's sample rate; ``audio[ids]`` -> float32 [N, T]
    (shorter clips zero-padded to the longest of the batch)."""

    def __init__(self, dataset: "RetrievalDataset") -> None:
        self._ds = dataset

    def __len__(self) -> int:
        return len(self._ds)

    def __getitem__(self, ids: Any) -> np.ndarray:
        paths = self._ds.audio_paths
        if paths is None:
            raise InputError(f"dataset {self._ds.name!r} has no sound clips per image")
        if isinstance(ids, (int, np.integer)):
            return read_audio(paths[int(ids)], self._ds.sample_rate)
        ids = np.arange(len(self._ds))[ids] if isinstance(ids, slice) else np.asarray(ids)
        clips = [read_audio(paths[int(i)], self._ds.sample_rate) for i in ids]
        return pad_clips(clips)


def pad_clips(clips: list[np.ndarray]) -> np.ndarray:
    """float32 [N, max T]: the clips zero-padded at the end to the longest."""
    t = max((len(c) for c in clips), default=0)
    out = np.zeros((len(clips), t), np.float32)
    for k, c in enumerate(clips):
        out[k, :len(c)] = c
    return out


def read_audio(path: str | Path, sr: int) -> np.ndarray:
    """A sound file as float32 mono [T] at ``sr`` Hz.

    Documented conversions: several channels are averaged (downmix), another sample rate is
    resampled with a polyphase filter (:func:`scipy.signal.resample_poly`).
    """
    import soundfile as sf

    try:
        clip, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise InputError(f"{path}: sound file not found") from None
    except (OSError, RuntimeError, sf.LibsndfileError) as exc:
        raise InputError(f"{path}: cannot read sound file ({exc})") from None
    clip = clip.mean(axis=1)
    if rate != sr:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(rate), int(sr))
        clip = resample_poly(clip, sr // g, rate // g).astype(np.float32)
    return np.ascontiguousarray(clip, dtype=np.float32)


@dataclass
class RetrievalDataset(CollectionBase):
    """Images with captions and, where the data has them, labels, attributes, boxes, audio.

    Attributes:
        name: the dataset's name (``coco``, ``flickr30k``, ``flickr8k``, ``cub``, ``world``...).
        image_paths: one path per image (opened only when an image is asked for).
        split: str [N] split name per image (``train``, ``restval``, ``val``, ``test``; the
            world's ``unseen``; ``""`` where the files define no split).
        captions: every caption, stripped, grouped by image (image order, file order).
        caption_image: int64 [M] image index of each caption.
        tokens: per caption the file's tokens (Karpathy files) or ``None``.
        labels: int64 [N] class index (0-based) per image, or ``None``.
        class_names: name per class index, or ``None``.
        attributes: uint8 [N, A] binary attributes per image (CUB: present with certainty
            >= ``min_certainty`` at load time), or ``None``; names in ``attribute_names``.
        boxes: float32 [N, 4] one bounding box per image (x, y, w, h in pixels), or ``None``.
        audio_paths: one sound clip per image (the world's export), or ``None``.
        speech_paths: per caption the path of its spoken recording (``None`` where a caption
            has none), or ``None`` when the dataset has no spoken captions.
        image_ids: the files' own image ids (COCO ids, CUB ids), int64 [N], or ``None``.
        caption_ids: per caption the file's own id (Flickr's ``#k`` number, COCO's annotation
            id, Karpathy's ``sentid``), or ``None``.
        extras: per-image dicts of further fields (e.g. the world's ``class_id``).
        repairs: every documented repair the loader applied (see :class:`Repair`).
        image_size: side S of the square images ``images[...]`` returns.
        sample_rate: rate audio and speech are returned at.
        captions_per_image: evaluation keeps the first this many captions per image.
    """

    name: str
    image_paths: list[Path]
    split: np.ndarray
    captions: list[str]
    caption_image: np.ndarray
    tokens: list[list[str]] | None = None
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    attributes: np.ndarray | None = None
    attribute_names: list[str] | None = None
    boxes: np.ndarray | None = None
    audio_paths: list[Path] | None = None
    speech_paths: list[Path | None] | None = None
    image_ids: np.ndarray | None = None
    caption_ids: list | None = None
    extras: list[dict] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    image_size: int = IMAGE_SIZE
    sample_rate: int = 16000
    captions_per_image: int = CAPTIONS_PER_IMAGE

    def __post_init__(self) -> None:
        self.split = np.asarray(self.split, dtype=str)
        self.caption_image = np.asarray(self.caption_image, dtype=np.int64).reshape(-1)
        n = len(self.image_paths)
        if len(self.split) != n:
            raise InputError(f"{self.name}: {len(self.split)} split names for {n} images")
        if len(self.caption_image) != len(self.captions):
            raise InputError(f"{self.name}: {len(self.caption_image)} caption owners for "
                             f"{len(self.captions)} captions")
        if len(self.caption_image) and (self.caption_image.min() < 0
                                        or self.caption_image.max() >= n):
            raise InputError(f"{self.name}: a caption belongs to no image")
        for key in ("labels", "image_ids"):
            value = getattr(self, key)
            if value is not None:
                value = np.asarray(value, dtype=np.int64)
                if len(value) != n:
                    raise InputError(f"{self.name}: {len(value)} {key} for {n} images")
                setattr(self, key, value)
        if self.caption_ids is not None and len(self.caption_ids) != len(self.captions):
            raise InputError(f"{self.name}: {len(self.caption_ids)} caption ids for "
                             f"{len(self.captions)} captions")
        if self.speech_paths is not None and len(self.speech_paths) != len(self.captions):
            raise InputError(f"{self.name}: {len(self.speech_paths)} speech paths for "
                             f"{len(self.captions)} captions")
        if not self.extras:
            self.extras = [{} for _ in range(n)]
        self.images = LazyImages(self)
        self.audio = LazyAudio(self)

    # ------------------------------------------------------------------ sizes and splits
    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def config(self) -> DatasetConfig:
        """The settings code written for the world reads (``sample_rate``, ``image_size``,
        ``captions_per_image``, ``n``)."""
        return DatasetConfig(n=len(self), sample_rate=self.sample_rate,
                             image_size=self.image_size,
                             captions_per_image=self.captions_per_image)

    @property
    def splits(self) -> dict[str, int]:
        """Images per split name, in first-seen order."""
        return dict(Counter(str(s) for s in self.split))

    def indices(self, split: str, merge_restval: bool = True) -> np.ndarray:
        """Image indices of a split, ascending; ``train`` includes ``restval`` (the COCO
        convention: 82,783 + 30,504 = 113,287) unless ``merge_restval`` is False."""
        names = {split}
        if split == "train" and merge_restval:
            names.add("restval")
        return np.flatnonzero(np.isin(self.split, sorted(names)))

    def captions_of(self, i: int) -> list[int]:
        """Every caption index of image ``i`` (all of them, not only the first five)."""
        return [int(j) for j in np.flatnonzero(self.caption_image == i)]

    def caption_indices(self, images: np.ndarray, first: int | None = CAPTIONS_PER_IMAGE
                        ) -> np.ndarray:
        """Caption indices of the given images in image order, keeping the ``first``
        captions of each (file order; ``None``: all). int64 [M]."""
        images = np.asarray(images, dtype=np.int64).reshape(-1)
        order = np.argsort(self.caption_image, kind="stable")
        starts = np.searchsorted(self.caption_image[order], images, side="left")
        ends = np.searchsorted(self.caption_image[order], images, side="right")
        if first is not None:
            ends = np.minimum(ends, starts + first)
        parts = [order[a:b] for a, b in zip(starts, ends)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    # ------------------------------------------------------------------ the files
    def load_image(self, i: int, size: int | None = None) -> np.ndarray:
        """Image ``i`` as uint8 [H, W, 3], or uint8 [size, size, 3] resized by the one rule
        of every loader and the folder index (:data:`mmkit.data.images.RESIZE_RULE`: the
        shorter side to ``size``, bicubic, then the centre crop). Decoding (EXIF orientation,
        16-bit and float scaling, grey, palette, CMYK, transparency over white):
        :func:`mmkit.data.images.read_image`."""
        try:
            return load_image_file(self.image_paths[i], size)
        except InputError as exc:
            raise InputError(f"{exc} (image {i} of {self.name})") from None

    def speech(self, j: int, sr: int | None = None) -> np.ndarray:
        """The recorded spoken caption ``j`` as float32 [T] at ``sr`` (default: the dataset's
        rate)."""
        path = self.speech_paths[j] if self.speech_paths is not None else None
        if path is None:
            raise InputError(f"caption {j} of {self.name} has no spoken recording")
        return read_audio(path, sr or self.sample_rate)

    # ------------------------------------------------------------------ what it defines
    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities the data has (``image`` always; ``text`` with captions; ``audio``
        with a clip per image; ``speech`` with recorded spoken captions)."""
        out = ["image"]
        if self.captions:
            out.insert(0, "text")
        if self.audio_paths is not None:
            out.append("audio")
        if self.speech_paths is not None and any(p is not None for p in self.speech_paths):
            out.append("speech")
        return tuple(out)

    @property
    def collection_name(self) -> str:
        return self.name

    def speech_units(self, captions: np.ndarray) -> np.ndarray:
        """The captions among ``captions`` (int64 [K]) that have a recording."""
        if self.speech_paths is None:
            return captions[:0]
        return captions[[self.speech_paths[int(j)] is not None for j in captions]]

    def relevance(self, direction: str | Direction, query_ids: np.ndarray,
                  gallery_ids: np.ndarray, positives: np.ndarray) -> np.ndarray:
        """**Binary** relevance int8 [Q, G]: 3 exactly where an item is a positive, 0
        elsewhere (a real dataset knows no grades; 3 so that mAP and NDCG@10 read it as the
        world's full fit)."""
        return positives.astype(np.int8) * 3

    # ------------------------------------------------------------------ reports
    def repair_summary(self) -> str:
        """One line: how many repairs of each kind (``"no repairs"`` when none)."""
        if not self.repairs:
            return f"{self.name}: no repairs"
        kinds = Counter(r.kind for r in self.repairs)
        parts = ", ".join(f"{n} x {kind}" for kind, n in kinds.items())
        return f"{self.name}: {len(self.repairs)} repairs ({parts}); see dataset.repairs"

    def summary(self) -> dict:
        """Sizes, for the demo's header line and tables."""
        return {"name": self.name, "n_images": len(self), "n_captions": len(self.captions),
                "n_classes": (len(self.class_names) if self.class_names is not None
                              else int(len(np.unique(self.labels))) if self.labels is not None
                              else 0),
                "splits": self.splits, "modalities": list(self.modalities),
                "directions": list(self.directions), "repairs": len(self.repairs)}

    # ------------------------------------------------------------------ item access
    def __getitem__(self, i: int) -> dict:
        """Image ``i`` with what belongs to it: ``{"index", "image" (uint8 [S, S, 3]),
        "captions" (list of str, all of them), "label" (int, -1 without labels), "split"}``."""
        if not isinstance(i, (int, np.integer)) or not -len(self) <= int(i) < len(self):
            raise IndexError(f"image index {i!r} out of range for {len(self)} images")
        i = int(i) % len(self)
        return {"index": i, "image": self.images[i],
                "captions": [self.captions[j] for j in self.captions_of(i)],
                "label": int(self.labels[i]) if self.labels is not None else -1,
                "split": str(self.split[i])}

    def as_torch(self, images: np.ndarray | None = None, size: int | None = None):
        """A ``torch.utils.data.Dataset`` over ``images`` (default: all) returning
        ``(float32 tensor [3, S, S] in [0, 1], image index)``; torch is imported here only."""
        from torch.utils.data import Dataset

        ids = np.arange(len(self)) if images is None else self.check_image_ids(images)
        size = size or self.image_size
        parent = self

        class _Images(Dataset):
            def __len__(self) -> int:
                return len(ids)

            def __getitem__(self, k: int):
                import torch

                pixels = parent.load_image(int(ids[k]), size)
                return (torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255.0,
                        int(ids[k]))

        return _Images()


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a one-line InputError naming what was expected where."""
    if not path.is_file():
        raise InputError(f"{path}: {what} not found (expected at {path.parent})"
                         if path.parent.is_dir() else
                         f"{path}: {what} not found (folder {path.parent} does not exist)")
    return path


def read_text_lines(path: Path, what: str, errors: str = "strict") -> list[str]:
    """Lines of a UTF-8 text file (no line ends); a missing or undecodable file is one line.

    ``errors="replace"`` decodes invalid bytes as U+FFFD (the caller records the repair)."""
    require_file(path, what)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: invalid UTF-8 (byte {data[exc.start]:#04x})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.splitlines()
