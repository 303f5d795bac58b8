"""Composed queries: a reference image plus a text modification ("the same, but blue").

A :class:`Modification` changes ONE attribute (shape, colour or texture) of the reference's
main object to a new value. The **targets** are the gallery images whose main object has the
reference's shape, colour and texture with that one attribute replaced (size, position,
other objects, style and sign are free), exactly, from the world's attributes. Graded
relevance counts how many of (shape, colour, texture) agree with the target triple (0-3,
as the world's scene relevance: 3 = a target); the reference image itself is excluded from
its gallery (scored ``-inf``, relevance 0, never a target).

The modification is said in words the world's captions use:

- colour: ``"the same, but blue"``;
- texture: ``"with stripes instead of dots"``;
- shape: ``"the same, but a star instead of a circle"``.

No model code is imported here: the queries and ground truth are data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmkit.data import vocab as V
from mmkit.data.relevance import scene_relevance
from mmkit.errors import InputError

#: the attributes a modification can change (columns 0-2 of ``World.objects[:, 0]``)
MODIFIABLE: tuple[str, ...] = ("shape", "colour", "texture")
#: a texture as the noun phrase after "with"
TEXTURE_NOUN: dict[str, str] = {"plain": "no pattern", "striped": "stripes", "dotted": "dots",
                                "checkered": "a checkerboard pattern"}


@dataclass(frozen=True)
class Modification:
    """Change attribute ``attribute`` (one of :data:`MODIFIABLE`) from value index ``old``
    to ``new`` (indices into ``mmkit.data.vocab.ATTRIBUTE_VALUES[attribute]``)."""

    attribute: str
    old: int
    new: int

    def __post_init__(self) -> None:
        if self.attribute not in MODIFIABLE:
            raise InputError(f"Modification: attribute must be one of {', '.join(MODIFIABLE)}, "
                             f"got {self.attribute!r}")
        n = len(V.ATTRIBUTE_VALUES[self.attribute])
        for name, v in (("old", self.old), ("new", self.new)):
            if not 0 <= int(v) < n:
                raise InputError(f"Modification: {name} {self.attribute} index {v} is not in "
                                 f"[0, {n})")
        if self.old == self.new:
            raise InputError("Modification: old and new values are the same")

    @property
    def column(self) -> int:
        return MODIFIABLE.index(self.attribute)

    @property
    def text(self) -> str:
        """The modification in words, e.g. ``"the same, but blue"``."""
        values = V.ATTRIBUTE_VALUES[self.attribute]
        old, new = values[self.old], values[self.new]
        if self.attribute == "colour":
            return f"the same, but {new}"
        if self.attribute == "texture":
            return f"with {TEXTURE_NOUN[new]} instead of {TEXTURE_NOUN[old]}"
        return f"the same, but a {new} instead of a {old}"

    def apply(self, triple: np.ndarray) -> np.ndarray:
        """(shape, colour, texture) int [3] -> the target triple int [3]."""
        t = np.array(triple, np.int64).copy()
        if int(t[self.column]) != self.old:
            raise InputError(f"Modification: the reference's {self.attribute} is "
                             f"{V.ATTRIBUTE_VALUES[self.attribute][int(t[self.column])]}, not "
                             f"{V.ATTRIBUTE_VALUES[self.attribute][self.old]}")
        t[self.column] = self.new
        return t


def all_modification_texts() -> list[str]:
    """Every modification sentence there is (a finite set: embed them once)."""
    out = []
    for attr in MODIFIABLE:
        n = len(V.ATTRIBUTE_VALUES[attr])
        out += [Modification(attr, a, b).text for a in range(n) for b in range(n) if a != b]
    return out


def main_triples(world, images: np.ndarray) -> np.ndarray:
    """(shape, colour, texture) of the main object of each image: int64 [N, 3]."""
    return np.asarray(world.objects[np.asarray(images), 0, :3], np.int64)


@dataclass(frozen=True)
class ComposedQueries:
    """Q composed queries over a gallery of G images.

    Attributes:
        references: int64 [Q] image index of each query's reference.
        modifications: the Q :class:`Modification`\\ s.
        gallery: int64 [G] image indices.
        targets: int64 [Q, 3] the target (shape, colour, texture).
        relevance: int8 [Q, G] 0-3 agreement with the target (reference excluded: 0).
        positives: bool [Q, G] the targets (relevance 3).
        exclude: bool [Q, G] True at the reference itself.
    """

    references: np.ndarray
    modifications: tuple[Modification, ...]
    gallery: np.ndarray
    targets: np.ndarray
    relevance: np.ndarray
    positives: np.ndarray
    exclude: np.ndarray

    @property
    def texts(self) -> list[str]:
        return [m.text for m in self.modifications]


def composed_ground_truth(world, references: np.ndarray,
                          modifications: list[Modification],
                          gallery: np.ndarray) -> ComposedQueries:
    """Exact targets and graded relevance of given composed queries (see the module doc)."""
    refs = np.asarray(references, np.int64)
    gallery = np.asarray(gallery, np.int64)
    if refs.ndim != 1 or len(refs) != len(modifications):
        raise InputError(f"composed queries: {len(modifications)} modifications for "
                         f"{refs.shape} references (one each)")
    ref_triples = main_triples(world, refs)
    targets = np.stack([m.apply(t) for m, t in zip(modifications, ref_triples)]) \
        if len(refs) else np.zeros((0, 3), np.int64)
    rel = scene_relevance(targets, main_triples(world, gallery))
    excl = refs[:, None] == gallery[None, :]
    rel[excl] = 0
    return ComposedQueries(refs, tuple(modifications), gallery, targets, rel, rel == 3, excl)


def make_composed_queries(world, references: np.ndarray, gallery: np.ndarray,
                          seed: int = 0) -> ComposedQueries:
    """One composed query per reference image that has a target in ``gallery``: the
    attribute and new value are drawn uniformly (seeded) among those for which at least one
    gallery image (other than the reference) is a target. References without any such
    modification are skipped."""
    refs = np.asarray(references, np.int64)
    gallery = np.asarray(gallery, np.int64)
    gal = main_triples(world, gallery)
    present = {tuple(t): [] for t in map(tuple, gal)}
    for g, t in zip(gallery, map(tuple, gal)):
        present[t].append(int(g))
    kept, mods = [], []
    for i, r in enumerate(refs):
        rng = np.random.default_rng([seed, 7, int(r)])
        triple = main_triples(world, [r])[0]
        options = []
        for col, attr in enumerate(MODIFIABLE):
            for v in range(len(V.ATTRIBUTE_VALUES[attr])):
                if v == triple[col]:
                    continue
                t = triple.copy()
                t[col] = v
                if any(g != r for g in present.get(tuple(t), [])):
                    options.append(Modification(attr, int(triple[col]), v))
        if options:
            kept.append(int(r))
            mods.append(options[int(rng.integers(len(options)))])
    return composed_ground_truth(world, np.array(kept, np.int64), mods, gallery)
