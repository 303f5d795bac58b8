"""Evaluate a method on the world, direction by direction, with one set of metrics.

Two ways in, nothing private:

- :func:`evaluate` / :func:`run_direction` take a fitted
  :class:`~mmkit.methods.base.RetrievalMethod` and embed what each direction needs;
- :func:`score_direction` takes precomputed :class:`Embedded` queries and gallery (vectors
  with the world ids they stand for) and checks the ids against the direction's queries and
  gallery over the given images: mismatched ids raise, nothing is scored against the wrong
  items.

What a direction's queries, gallery, positives and exclusions are is read from
:data:`mmkit.data.directions.DIRECTIONS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from mmkit.data.directions import DEMO_DIRECTIONS, Direction, exclude, get_direction
from mmkit.data.relevance import oracle_hit_rate
from mmkit.data.world import World
from mmkit.errors import InputError
from mmkit.methods.base import RetrievalMethod
from mmkit.metrics import average_precision, hit_rate_at_k, ndcg_at_k

#: the metrics of the demo table, in order
METRICS = ("R@1", "R@5", "R@10", "mAP", "NDCG@10")


@dataclass
class DirectionRun:
    """Scores and ground truth of one direction: queries x gallery.

    Excluded items (the query itself in image->image) have score ``-inf``, relevance 0 and
    are no positive.
    """

    direction: str
    scores: np.ndarray       # float32 [Q, G]
    relevance: np.ndarray    # int8 [Q, G], 0..3
    positives: np.ndarray    # bool [Q, G]
    query_ids: np.ndarray    # int64 [Q] caption or image index per query
    gallery_ids: np.ndarray  # int64 [G] caption or image index per gallery item


@dataclass(frozen=True)
class Embedded:
    """Embeddings of some world items: ``vectors`` float [N, d] for the items ``ids`` int [N]
    (caption indices for text/speech, image indices for image/audio)."""

    vectors: np.ndarray
    ids: np.ndarray


def score_metrics(scores: np.ndarray, relevance: np.ndarray,
                  positives: np.ndarray) -> dict[str, float]:
    """The demo's metrics from a score matrix.

    R@K is the cross-modal hit rate (any positive in the top K); mAP counts an item as
    relevant when its graded relevance is 3 (it fits the query completely); NDCG@10 uses the
    graded relevance with linear gain.
    """
    out = {f"R@{k}": float(hit_rate_at_k(scores, positives, k).mean()) for k in (1, 5, 10)}
    out["mAP"] = float(average_precision(scores, relevance, level=3).mean())
    out["NDCG@10"] = float(ndcg_at_k(scores, relevance, 10).mean())
    return out


def _check_ids(side: str, d: Direction, given: Embedded, expected: np.ndarray) -> np.ndarray:
    vectors = np.asarray(given.vectors)
    ids = np.asarray(given.ids)
    modality = d.query if side == "query" else d.gallery
    unit = "caption" if modality in ("text", "speech") else "image"
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise InputError(f"{d.name} {side}: vectors must be [N, d] with one id per row, got "
                         f"vectors {vectors.shape} and {len(ids)} ids")
    if len(ids) != len(expected) or not np.array_equal(ids, expected):
        where = next((i for i, (a, b) in enumerate(zip(ids, expected)) if a != b),
                     min(len(ids), len(expected)))
        raise InputError(f"{d.name} {side} ids do not match the {len(expected)} {unit} ids of "
                         f"these images (first difference at position {where}: "
                         f"{'got ' + str(int(ids[where])) if where < len(ids) else 'missing'}"
                         f"{', expected ' + str(int(expected[where])) if where < len(expected) else ''})")
    if not np.isfinite(vectors).all():
        raise InputError(f"{d.name} {side}: vectors contain NaN or infinite values")
    return vectors.astype(np.float32, copy=False)


def score_direction(world: World, direction: str | Direction, images: np.ndarray,
                    queries: Embedded, gallery: Embedded) -> DirectionRun:
    """Score precomputed query and gallery embeddings of ``direction`` over ``images``.

    ``queries.ids`` and ``gallery.ids`` must be exactly the direction's query and gallery ids
    (:meth:`World.direction_ids`, in that order); scores are cosine similarities if the
    vectors are L2-normalised (inner products otherwise).
    """
    d = get_direction(direction)
    images = np.asarray(images)
    qids, gids = world.direction_ids(d, images)
    q = _check_ids("query", d, queries, qids)
    g = _check_ids("gallery", d, gallery, gids)
    if q.shape[1] != g.shape[1]:
        raise InputError(f"{d.name}: query vectors have {q.shape[1]} dimensions, gallery vectors "
                         f"{g.shape[1]}")
    rel, pos = world.ground_truth(d, images)
    scores = exclude((q @ g.T).astype(np.float32), d.self_mask(qids, gids))
    return DirectionRun(d.name, scores, rel, pos, qids, gids)


def _embed(method: RetrievalMethod, world: World, modality: str, ids: np.ndarray,
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


def _embedded(method: RetrievalMethod, world: World, d: Direction, images: np.ndarray,
              memo: dict) -> tuple[Embedded, Embedded]:
    """Query and gallery embeddings of ``d``; one embedding per (modality, space) in ``memo``."""
    out = []
    for modality, other, ids in ((d.query, d.gallery, world.unit_ids(d.query, images)),
                                 (d.gallery, d.query, world.unit_ids(d.gallery, images))):
        partner = other if modality == "image" else ""
        key = (modality, partner)
        if key not in memo:
            memo[key] = _embed(method, world, modality, ids, partner)
        out.append(Embedded(memo[key], ids))
    return out[0], out[1]


def run_direction(method: RetrievalMethod, world: World, direction: str | Direction,
                  images: np.ndarray) -> DirectionRun:
    """Embed the queries and gallery of ``direction`` over ``images`` with ``method`` and
    score them."""
    if not isinstance(method, RetrievalMethod):
        raise InputError(f"method must be a RetrievalMethod, got {type(method).__name__} "
                         "(precomputed embeddings go to score_direction)")
    d = get_direction(direction)
    _check_supported(method, d)
    queries, gallery = _embedded(method, world, d, np.asarray(images), {})
    return score_direction(world, d, images, queries, gallery)


def evaluate(method: RetrievalMethod, world: World, images: np.ndarray,
             directions: Iterable[str] | None = None
             ) -> tuple[dict[str, dict[str, float]], dict[str, DirectionRun]]:
    """Metrics per direction (``{direction: {metric: value}}``) and the runs behind them.

    ``directions`` defaults to every direction the method does, in the demo's order first.
    Each modality is embedded once per space, however many directions use it.
    """
    if not isinstance(method, RetrievalMethod):
        raise InputError(f"method must be a RetrievalMethod, got {type(method).__name__}")
    names = _default_directions(method) if directions is None else list(directions)
    images = np.asarray(images)
    memo: dict = {}
    results, runs = {}, {}
    for name in names:
        d = get_direction(name)
        _check_supported(method, d)
        queries, gallery = _embedded(method, world, d, images, memo)
        runs[d.name] = score_direction(world, d, images, queries, gallery)
        results[d.name] = score_metrics(runs[d.name].scores, runs[d.name].relevance,
                                        runs[d.name].positives)
    return results, runs


def _default_directions(method: RetrievalMethod) -> list[str]:
    first = [d for d in DEMO_DIRECTIONS if d in method.directions]
    return first + [d for d in method.directions if d not in first]


def oracle_results(world: World, images: np.ndarray,
                   directions: Iterable[str] = DEMO_DIRECTIONS) -> dict[str, dict[str, float]]:
    """The relevance oracle: a system that ranks by the world's graded relevance, ties broken
    at random. It is NOT a ceiling for R@K: among the images that fit a caption fully it
    cannot tell which one the caption was written from (:func:`ceiling_results` can).

    R@K is the exact expectation over tie orders; mAP and NDCG@10 are 1 by construction for
    this ranking, so they are computed (not assumed) from the relevance itself. Excluded
    items are removed exactly as in :func:`score_direction`.
    """
    out = {}
    images = np.asarray(images)
    for name in directions:
        d = get_direction(name)
        rel, pos = world.ground_truth(d, images)
        mask = d.self_mask(*world.direction_ids(d, images))
        scores = exclude(rel.astype(np.float32), mask)
        res = {f"R@{k}": float(oracle_hit_rate(rel, pos, k, exclude=mask).mean())
               for k in (1, 5, 10)}
        res["mAP"] = float(average_precision(scores, rel, level=3).mean())
        res["NDCG@10"] = float(ndcg_at_k(scores, rel, 10).mean())
        out[d.name] = res
    return out


def ceiling_results(world: World, images: np.ndarray,
                    directions: Iterable[str] = DEMO_DIRECTIONS,
                    oracle: dict[str, dict[str, float]] | None = None
                    ) -> dict[str, dict[str, float]]:
    """The best any system can score, per direction and metric.

    R@K is the Bayes-optimal ranking's expected hit rate
    (:func:`mmkit.data.ceiling.ceiling_hit_rates`: rank by the generator's likelihood of what
    the query says, as an observer of the images can compute it). mAP and NDCG@10 count the
    graded relevance itself, which the relevance oracle ranks perfectly, so their ceiling is
    the oracle's (``oracle``, computed when not given).
    """
    from mmkit.data.ceiling import ceiling_hit_rates

    directions = list(directions)
    images = np.asarray(images)
    oracle = oracle if oracle is not None else oracle_results(world, images, directions)
    out = {}
    for name in directions:
        d = get_direction(name)
        res = {k: float(v) for k, v in ceiling_hit_rates(world, d, images).items()}
        res["mAP"], res["NDCG@10"] = oracle[d.name]["mAP"], oracle[d.name]["NDCG@10"]
        out[d.name] = res
    return out


def fraction_of(results: dict[str, dict[str, float]], reference: dict[str, dict[str, float]]
                ) -> dict[str, dict[str, float]]:
    """``results / reference`` per direction and metric (e.g. the fraction of the ceiling);
    metrics the reference lacks are left out."""
    return {d: {m: (v / reference[d][m] if reference[d][m] else float("nan"))
                for m, v in row.items() if m in reference[d]} for d, row in results.items()}
