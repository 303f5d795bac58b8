"""Evaluate a method on a collection, direction by direction, with one set of metrics.

:func:`evaluate` / :func:`run_direction` take a fitted
:class:`~mmkit.methods.base.RetrievalMethod`, embed what each direction needs (each modality
once per space) and score the embeddings with :func:`mmkit.scoring.score_runs`, the kit's one
scoring code. Precomputed embeddings go to :mod:`mmkit.scoring` directly
(:func:`~mmkit.scoring.score_embeddings`, :func:`~mmkit.scoring.score_direction`); its names
are re-exported here, where notebooks and older code import them from.

What a direction's queries, gallery, positives and exclusions are is read from
:data:`mmkit.data.directions.DIRECTIONS`.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mmkit.data.collection import Collection
from mmkit.data.directions import DEMO_DIRECTIONS, Direction, get_direction
from mmkit.errors import InputError
from mmkit.methods.base import RetrievalMethod
from mmkit.scoring import (METRICS, DirectionRun, Embedded, ceiling_results,  # re-export
                           fraction_of, oracle_results, score_direction, score_metrics,
                           score_runs, space_key)

__all__ = ["evaluate", "run_direction", "METRICS", "DirectionRun", "Embedded",
           "score_metrics", "score_direction", "oracle_results", "ceiling_results",
           "fraction_of"]


def _embed(method: RetrievalMethod, world: Collection, modality: str, ids: np.ndarray,
           partner: str) -> np.ndarray:
    """Embed the world items ``ids`` of ``modality`` with ``method`` (images in the space
    shared with ``partner``)."""
    if modality == "image":
        return method.embed_images(world.images[ids], partner=partner)
    if modality == "text":
        return method.embed_texts([world.captions[j] for j in ids])
    if modality == "audio":
        return method.embed_audio(world.audio[ids], world.config.sample_rate)
    if modality == "speech":
        return method.embed_world_speech(world, ids)
    raise InputError(f"unknown modality {modality!r}")


def _check_supported(method: RetrievalMethod, d: Direction) -> None:
    if d.name not in method.directions:
        raise InputError(f"method {method.name!r} does not do {d.name} retrieval (it does "
                         f"{', '.join(method.directions)})")


def _vectors(method: RetrievalMethod, world: Collection, directions: list[Direction],
             images: np.ndarray) -> dict[str, np.ndarray]:
    """``{key: float [units of images, d]}`` for :func:`~mmkit.scoring.score_runs`: every
    modality the directions use, embedded once per space (images once per partner:
    ``"image@text"``, ``"image@audio"``, ``"image@image"``)."""
    vectors: dict[str, np.ndarray] = {}
    for d in directions:
        for modality, other in ((d.query, d.gallery), (d.gallery, d.query)):
            partner = other if modality == "image" else ""
            key = space_key(modality, partner) if partner else modality
            if key not in vectors:
                vectors[key] = _embed(method, world, modality,
                                      world.unit_ids(modality, images), partner)
    return vectors


def run_direction(method: RetrievalMethod, world: Collection, direction: str | Direction,
                  images: np.ndarray) -> DirectionRun:
    """Embed the queries and gallery of ``direction`` over ``images`` with ``method`` and
    score them."""
    if not isinstance(method, RetrievalMethod):
        raise InputError(f"method must be a RetrievalMethod, got {type(method).__name__} "
                         "(precomputed embeddings go to score_direction)")
    d = get_direction(direction)
    _check_supported(method, d)
    images = np.asarray(images)
    return score_runs(world, images, _vectors(method, world, [d], images), [d])[d.name]


def evaluate(method: RetrievalMethod, world: Collection, images: np.ndarray,
             directions: Iterable[str] | None = None
             ) -> tuple[dict[str, dict[str, float]], dict[str, DirectionRun]]:
    """Metrics per direction (``{direction: {metric: value}}``) and the runs behind them.

    ``directions`` defaults to every direction the method does, in the demo's order first.
    Each modality is embedded once per space, however many directions use it.
    """
    if not isinstance(method, RetrievalMethod):
        raise InputError(f"method must be a RetrievalMethod, got {type(method).__name__}")
    names = _default_directions(method) if directions is None else list(directions)
    chosen = [get_direction(name) for name in names]
    for d in chosen:
        _check_supported(method, d)
    images = np.asarray(images)
    runs = score_runs(world, images, _vectors(method, world, chosen, images), chosen)
    return {name: run.metrics() for name, run in runs.items()}, runs


def _default_directions(method: RetrievalMethod) -> list[str]:
    first = [d for d in DEMO_DIRECTIONS if d in method.directions]
    return first + [d for d in method.directions if d not in first]
