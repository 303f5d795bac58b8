"""What every evaluation and method reads from a retrieval collection, written once.

A *collection* is images with captions (and, where it has them, sound clips, spoken captions
and class labels) that the evaluation (:mod:`mmkit.methods.evaluate`) and the methods
(:mod:`mmkit.methods`) run on unchanged. Two kinds exist: the generated
:class:`~mmkit.data.world.World` and every real dataset,
:class:`~mmkit.data.dataset.RetrievalDataset`. Both satisfy :class:`Collection`
(``isinstance(world, Collection)`` holds at run time) and both inherit the shared logic from
:class:`CollectionBase`:

- :meth:`~CollectionBase.unit_ids` / :meth:`~CollectionBase.direction_ids`: caption indices for
  ``text`` and ``speech`` (the first :attr:`captions_per_image` captions of each image, in image
  order; for ``speech`` only those with a recording where recordings are files), image indices
  for ``image`` and ``audio``;
- :meth:`~CollectionBase.ground_truth`: the **positives** of a direction (a caption's own image,
  an image's own captions, or the images of the query's class label; the query itself
  excluded where the direction says so) and the relevance, which each kind grades its own way
  (:meth:`~CollectionBase.relevance`: the world's graded 0-3; a dataset's binary 0 / 3);
- :attr:`~CollectionBase.directions` / :meth:`~CollectionBase.defines`: the directions of
  :data:`~mmkit.data.directions.DIRECTIONS` whose ground truth the data has.

A class built on :class:`CollectionBase` provides ``__len__``, ``captions``,
``caption_image``, ``labels``, ``captions_per_image``, ``caption_indices(images, first)``,
:attr:`modalities` and :meth:`relevance`, and may override :attr:`synthesised`,
:meth:`speech_units`, :attr:`collection_name` and :attr:`image_set_name`.

This module imports no model code (and no torch).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from typing_extensions import Protocol, runtime_checkable

from mmkit.data.directions import (DIRECTIONS, MODALITY_UNIT, Direction, check_image_set,
                                   get_direction)
from mmkit.errors import InputError

__all__ = ["Collection", "CollectionBase", "CollectionSettings", "ItemArray"]


@runtime_checkable
class ItemArray(Protocol):
    """Items by index: ``x[ids]`` (an int array) -> an array [len(ids), ...]; ``x[i]`` -> one
    item. A numpy array, or an array that loads its items from disk on demand
    (:class:`~mmkit.data.dataset.LazyImages`)."""

    def __getitem__(self, ids: Any) -> np.ndarray: ...

    def __len__(self) -> int: ...


@runtime_checkable
class CollectionSettings(Protocol):
    """What code reads from ``collection.config``: :class:`~mmkit.data.world.WorldConfig` or
    :class:`~mmkit.data.dataset.DatasetConfig`."""

    n: int
    sample_rate: int
    image_size: int
    captions_per_image: int


@runtime_checkable
class Collection(Protocol):
    """A retrieval collection: what the evaluation and the methods read from it.

    ``N`` images, ``M`` captions (caption ``j`` belongs to image ``caption_image[j]``).
    Satisfied by :class:`~mmkit.data.world.World` and
    :class:`~mmkit.data.dataset.RetrievalDataset`; ``isinstance(x, Collection)`` checks that
    every member exists (without rendering anything).

    Attributes:
        captions: M strings.
        caption_image: int [M] image index of each caption.
        labels: int [N] class index per image, or ``None`` (no class directions then).
        images: ``images[ids]`` -> uint8 [len(ids), S, S, 3] (S = ``config.image_size``).
        audio: ``audio[ids]`` -> float32 [len(ids), T], one sound clip per image (only where
            ``"audio"`` is in :attr:`modalities`).
    """

    captions: list[str]
    caption_image: np.ndarray
    labels: np.ndarray | None
    images: ItemArray
    audio: ItemArray

    @property
    def config(self) -> CollectionSettings:
        """Sizes and rates: ``n``, ``sample_rate``, ``image_size``, ``captions_per_image``."""

    @property
    def captions_per_image(self) -> int:
        """Captions per image the evaluation keeps (the first ones of each image)."""

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities the collection holds as data (keys of
        :data:`~mmkit.data.directions.MODALITY_UNIT`)."""

    @property
    def directions(self) -> tuple[str, ...]:
        """The directions of :data:`~mmkit.data.directions.DIRECTIONS` it has the ground
        truth of, in table order."""

    def __len__(self) -> int:
        """N, the number of images."""

    def indices(self, split: str) -> np.ndarray:
        """Image indices of a split, ascending: int [K]."""

    def caption_indices(self, images: np.ndarray, first: int | None = ...) -> np.ndarray:
        """Caption indices of ``images`` in image order (the ``first`` of each): int64 [M']."""

    def speech(self, j: int, sr: int | None = None) -> np.ndarray:
        """Caption ``j`` spoken: float32 [T] at ``sr`` (default: ``config.sample_rate``)."""

    def defines(self, direction: str | Direction) -> bool:
        """Whether the collection has the ground truth of ``direction``."""

    def unit_ids(self, modality: str, images: np.ndarray) -> np.ndarray:
        """The items of ``modality`` that belong to ``images``: int64 [K]."""

    def direction_ids(self, direction: str | Direction,
                      images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query ids int64 [Q], gallery ids int64 [G]) of ``direction`` over ``images``."""

    def ground_truth(self, direction: str | Direction,
                     images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Relevance int8 [Q, G] in 0..3 and positives bool [Q, G] of ``direction`` over
        ``images``."""


class CollectionBase(ABC):
    """The logic every :class:`Collection` shares, on top of a few primitives (see the module
    docstring): ids of each modality's units, ids of a direction, positives, exclusions and
    which directions exist. Subclasses: :class:`~mmkit.data.world.World`,
    :class:`~mmkit.data.dataset.RetrievalDataset`."""

    #: modalities the collection produces on demand without holding them as data (the world
    #: speaks its captions with espeak-ng): their units exist, they are not in
    #: :attr:`modalities`
    synthesised: tuple[str, ...] = ()

    # ------------------------------------------------------------------ primitives
    captions: list[str]
    caption_image: np.ndarray
    labels: np.ndarray | None
    captions_per_image: int

    @abstractmethod
    def __len__(self) -> int:
        """N, the number of images."""

    @property
    @abstractmethod
    def modalities(self) -> tuple[str, ...]:
        """The modalities the collection holds as data."""

    @abstractmethod
    def caption_indices(self, images: np.ndarray, first: int | None = None) -> np.ndarray:
        """Caption indices of ``images`` in image order, the ``first`` of each: int64."""

    @abstractmethod
    def relevance(self, direction: Direction, query_ids: np.ndarray, gallery_ids: np.ndarray,
                  positives: np.ndarray) -> np.ndarray:
        """Relevance int8 [Q, G] in 0..3 of the gallery items to the queries, given the
        positives bool [Q, G] of ``direction`` (excluded items are zeroed afterwards)."""

    def speech_units(self, captions: np.ndarray) -> np.ndarray:
        """The captions among ``captions`` (int64 [K]) that can be heard (default: all)."""
        return captions

    @property
    def collection_name(self) -> str:
        """The collection as one-line errors name it."""
        return "this collection"

    @property
    def image_set_name(self) -> str:
        """The collection as one-line errors about image indices name it."""
        return f"{self.collection_name} (n={len(self)})"

    # ------------------------------------------------------------------ shared logic
    def check_image_ids(self, images: np.ndarray) -> np.ndarray:
        """``images`` as int64 [K]: a non-empty set of distinct image indices of this
        collection (one-line InputError otherwise)."""
        return check_image_set(images, len(self), self.image_set_name)

    def _has_units(self, modality: str) -> bool:
        return modality in self.modalities or modality in self.synthesised

    def defines(self, direction: str | Direction) -> bool:
        """Whether the collection has the ground truth of ``direction``: both modalities, and
        class labels for a ``class`` direction."""
        d = get_direction(direction)
        if not (self._has_units(d.query) and self._has_units(d.gallery)):
            return False
        return d.positive != "class" or self.labels is not None

    @property
    def directions(self) -> tuple[str, ...]:
        """The directions of :data:`~mmkit.data.directions.DIRECTIONS` this collection
        defines, in table order."""
        return tuple(name for name in DIRECTIONS if self.defines(name))

    def unit_ids(self, modality: str, images: np.ndarray) -> np.ndarray:
        """The items of ``modality`` that belong to ``images``, as int64 ids: for ``text`` the
        first :attr:`captions_per_image` captions of each image (in image order), for
        ``speech`` those of them that can be heard (:meth:`speech_units`), for ``image`` and
        ``audio`` the image indices themselves."""
        if modality not in MODALITY_UNIT:
            raise InputError(f"unknown modality {modality!r}; choose one of "
                             f"{', '.join(MODALITY_UNIT)}")
        if not self._has_units(modality):
            raise InputError(f"{self.collection_name} has no {modality} "
                             f"(it has {', '.join(self.modalities)})")
        images = self.check_image_ids(images)
        if MODALITY_UNIT[modality] == "scene":
            return images
        caps = np.asarray(self.caption_indices(images, first=self.captions_per_image),
                          dtype=np.int64)
        return self.speech_units(caps) if modality == "speech" else caps

    def direction_ids(self, direction: str | Direction,
                      images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query ids int64 [Q], gallery ids int64 [G]) of ``direction`` over ``images``."""
        d = get_direction(direction)
        return self.unit_ids(d.query, images), self.unit_ids(d.gallery, images)

    def positives(self, direction: str | Direction, query_ids: np.ndarray,
                  gallery_ids: np.ndarray) -> np.ndarray:
        """bool [Q, G]: the gallery items that count as hits for each query -- the query's
        pair (a caption's own image; an image's own captions) or, for a ``class`` direction,
        the images with the query's label. Excluded items are not removed here."""
        d = get_direction(direction)
        qids, gids = np.asarray(query_ids), np.asarray(gallery_ids)
        if d.positive == "class":
            labels = np.asarray(self.labels)
            return labels[qids][:, None] == labels[gids][None, :]
        if d.query_unit == "caption":
            return self.caption_image[qids][:, None] == gids[None, :]
        return qids[:, None] == self.caption_image[gids][None, :]

    def ground_truth(self, direction: str | Direction,
                     images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Relevance and positives of one retrieval direction over a set of images.

        Queries and gallery both come from ``images`` (e.g. the test split), as the direction's
        entry in :data:`mmkit.data.directions.DIRECTIONS` says (:meth:`direction_ids`);
        positives are :meth:`positives`, relevance is :meth:`relevance`; an excluded item
        (the query itself in image->image) has relevance 0 and is no positive.

        Returns:
            relevance int8 [Q, G] in 0..3 and positives bool [Q, G].
        """
        d = get_direction(direction)
        if not self.defines(d):
            need = "class labels" if d.positive == "class" else f"{d.query} and {d.gallery}"
            raise InputError(f"{self.collection_name} does not define "
                             f"{d.name} (it needs {need}; it has {', '.join(self.directions)})")
        qids, gids = self.direction_ids(d, images)
        pos = self.positives(d, qids, gids)
        mask = d.self_mask(qids, gids)
        if mask is not None:
            pos[mask] = False
        rel = self.relevance(d, qids, gids, pos)
        if mask is not None:
            rel[mask] = 0
        return rel, pos


def modalities_of(data: Collection) -> tuple[str, ...]:
    """The modalities a collection holds as data (:attr:`Collection.modalities`)."""
    return tuple(data.modalities)


def directions_of(data: Collection) -> tuple[str, ...]:
    """The directions a collection defines (:attr:`Collection.directions`)."""
    return tuple(data.directions)
