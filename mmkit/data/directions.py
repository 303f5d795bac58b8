"""Retrieval directions as one table: what a query is, what the gallery is, what counts.

A *direction* such as ``"text->image"`` says which modality the queries are in, which
modality the gallery is in, which gallery items are the query's **positives** (what R@K
counts), how graded **relevance** is defined, and whether a query is **excluded** from its own
gallery. Ground truth (:meth:`mmkit.data.collection.CollectionBase.ground_truth`, shared by
the world and every dataset), the evaluation (:mod:`mmkit.methods.evaluate`), the oracle and
the demo's gallery all read :data:`DIRECTIONS`, so adding a direction is one entry here.

Every modality is carried by one of two *units* of the world:

- a **caption** (``text``: the sentence; ``speech``: the sentence spoken by espeak-ng),
  identified by its caption index;
- a **scene** (``image``: its picture; ``audio``: its sound clip), identified by its image index.

Relevance follows from the units: caption <-> scene uses the caption relevance (0-3, what the
caption says against what the scene holds; the transpose for scene -> caption), scene <-> scene
the scene relevance (how many of the main object's shape, colour, texture agree).
Positives are either the query's **pair** (a caption's own scene; a scene's own captions) or
its **class** (every scene of the same fine-grained class).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmkit.errors import InputError

#: which unit of the world carries each modality
MODALITY_UNIT: dict[str, str] = {"text": "caption", "speech": "caption",
                                 "image": "scene", "audio": "scene"}
MODALITIES = tuple(MODALITY_UNIT)


@dataclass(frozen=True)
class Direction:
    """One retrieval direction.

    Attributes:
        name: ``"QUERY->GALLERY"``, e.g. ``"text->image"``.
        query, gallery: modalities (keys of :data:`MODALITY_UNIT`).
        positive: ``"pair"`` (the query's own counterpart: a caption's scene, a scene's
            captions) or ``"class"`` (scenes of the query's fine-grained class).
        exclude_self: the query's own unit is removed from its gallery (relevance 0, never a
            positive, scored ``-inf`` so that it ranks last). Only meaningful when both sides
            are the same unit, e.g. image->image.
        summary: one line for tables and docs.
    """

    name: str
    query: str
    gallery: str
    positive: str
    exclude_self: bool
    summary: str

    def __post_init__(self) -> None:
        if self.name != f"{self.query}->{self.gallery}":
            raise ValueError(f"direction {self.name!r} must be named query->gallery")
        if self.query not in MODALITY_UNIT or self.gallery not in MODALITY_UNIT:
            raise ValueError(f"direction {self.name!r}: unknown modality")
        if self.positive not in ("pair", "class"):
            raise ValueError(f"direction {self.name!r}: positive must be 'pair' or 'class'")
        if self.positive == "class" and self.units != ("scene", "scene"):
            raise ValueError(f"direction {self.name!r}: 'class' positives need scenes on both "
                             "sides")
        if self.units == ("caption", "caption"):
            raise ValueError(f"direction {self.name!r}: caption -> caption has no relevance")

    @property
    def query_unit(self) -> str:
        return MODALITY_UNIT[self.query]

    @property
    def gallery_unit(self) -> str:
        return MODALITY_UNIT[self.gallery]

    @property
    def units(self) -> tuple[str, str]:
        return self.query_unit, self.gallery_unit

    @property
    def relevance(self) -> str:
        """``"caption"`` (caption relevance, transposed for scene -> caption) or ``"scene"``."""
        return "scene" if self.units == ("scene", "scene") else "caption"

    def self_mask(self, query_ids: np.ndarray, gallery_ids: np.ndarray) -> np.ndarray | None:
        """bool [Q, G]: True where a gallery item is the query itself and must be excluded;
        ``None`` when this direction excludes nothing."""
        if not self.exclude_self:
            return None
        return np.asarray(query_ids)[:, None] == np.asarray(gallery_ids)[None, :]


def _table(*rows: Direction) -> dict[str, Direction]:
    return {d.name: d for d in rows}


#: every direction the kit knows, by name
DIRECTIONS: dict[str, Direction] = _table(
    Direction("text->image", "text", "image", "pair", False,
              "a caption finds its own image"),
    Direction("image->text", "image", "text", "pair", False,
              "an image finds any of its own captions"),
    Direction("image->image", "image", "image", "class", True,
              "an image finds the other images of its class (itself excluded)"),
    Direction("audio->image", "audio", "image", "class", False,
              "a scene's sound finds images of the scene's class (its own image included)"),
    Direction("speech->image", "speech", "image", "pair", False,
              "a spoken caption finds the image it describes"),
)

#: the directions of the demo and the README's world card, in table order
DEMO_DIRECTIONS: tuple[str, ...] = ("text->image", "image->text", "image->image", "audio->image",
                                     "speech->image")


def get_direction(direction: str | Direction) -> Direction:
    """The :class:`Direction` called ``direction`` (or the object itself)."""
    if isinstance(direction, Direction):
        return direction
    try:
        return DIRECTIONS[direction]
    except (KeyError, TypeError):
        raise InputError(f"unknown direction {direction!r}; choose one of "
                         f"{', '.join(DIRECTIONS)}") from None


def check_image_set(images: np.ndarray, n: int, where: str) -> np.ndarray:
    """``images`` as int64 [K]: a non-empty set of distinct image indices in ``[0, n)``.

    ``where`` names the collection in the one-line error (e.g. ``"this world (n=12)"``).
    """
    images = np.asarray(images)
    if images.ndim != 1 or (images.size and images.dtype.kind not in "iu"):
        raise InputError(f"images must be a 1-D array of image indices, got shape "
                         f"{images.shape} and dtype {images.dtype}")
    if images.size == 0:
        raise InputError(f"no images given (an empty split of {where}?)")
    if images.min() < 0 or images.max() >= n:
        bad = images[(images < 0) | (images >= n)][0]
        raise InputError(f"image index {int(bad)} is outside {where}")
    if len(np.unique(images)) != len(images):
        raise InputError("images contain duplicate indices")
    return images.astype(np.int64)


def exclude(scores: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``scores`` with excluded items set to ``-inf`` (in place; returns ``scores``)."""
    if mask is not None:
        scores[mask] = -np.inf
    return scores
