"""Evaluate a method on the world in the four directions, with one set of metrics."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmkit.data.relevance import oracle_hit_rate
from mmkit.data.world import DIRECTIONS, World
from mmkit.methods.base import RetrievalMethod
from mmkit.metrics import average_precision, hit_rate_at_k, ndcg_at_k

#: the metrics of the demo table, in order
METRICS = ("R@1", "R@5", "R@10", "mAP", "NDCG@10")


@dataclass
class DirectionRun:
    """Scores and ground truth of one direction: queries x gallery."""

    direction: str
    scores: np.ndarray      # float32 [Q, G]
    relevance: np.ndarray   # int8 [Q, G], 0..3
    positives: np.ndarray   # bool [Q, G]
    query_ids: np.ndarray   # caption or image index per query
    gallery_ids: np.ndarray  # caption or image index per gallery item


def score_metrics(scores: np.ndarray, relevance: np.ndarray, positives: np.ndarray) -> dict[str, float]:
    """The demo's metrics from a score matrix.

    R@K is the cross-modal hit rate (any positive in the top K); mAP counts an item as
    relevant when its graded relevance is 3 (it fits the query completely); NDCG@10 uses the
    graded relevance with linear gain.
    """
    out = {f"R@{k}": float(hit_rate_at_k(scores, positives, k).mean()) for k in (1, 5, 10)}
    out["mAP"] = float(average_precision(scores, relevance, level=3).mean())
    out["NDCG@10"] = float(ndcg_at_k(scores, relevance, 10).mean())
    return out


class _Embedder:
    """Embeds the world's images, captions and clips of one split once per space."""

    def __init__(self, method: RetrievalMethod, world: World, images: np.ndarray) -> None:
        self.method, self.world, self.images = method, world, images
        self.pixels = world.images[images]
        self.caps = world.caption_indices(images)
        self._memo: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, modality: str, partner: str = "") -> np.ndarray:
        key = (modality, partner)
        if key not in self._memo:
            if modality == "image":
                self._memo[key] = self.method.embed_images(self.pixels, partner=partner)
            elif modality == "text":
                self._memo[key] = self.method.embed_texts(
                    [self.world.captions[j] for j in self.caps])
            else:
                self._memo[key] = self.method.embed_audio(
                    self.world.audio[self.images], self.world.config.sample_rate)
        return self._memo[key]


def run_direction(method: RetrievalMethod | _Embedder, world: World, direction: str,
                  images: np.ndarray) -> DirectionRun:
    """Embed queries and gallery of ``direction`` over ``images`` and score them."""
    images = np.asarray(images)
    embed = method if isinstance(method, _Embedder) else _Embedder(method, world, images)
    rel, pos = world.ground_truth(direction, images)
    caps = embed.caps
    if direction == "text->image":
        q, g, qid, gid = embed("text"), embed("image", "text"), caps, images
    elif direction == "image->text":
        q, g, qid, gid = embed("image", "text"), embed("text"), images, caps
    elif direction == "image->image":
        q = g = embed("image", "image")
        qid, gid = images, images
    elif direction == "audio->image":
        q, g, qid, gid = embed("audio"), embed("image", "audio"), images, images
    else:
        raise ValueError(f"unknown direction {direction!r}; choose one of {DIRECTIONS}")
    scores = (q @ g.T).astype(np.float32)
    if direction == "image->image":  # a query never retrieves itself
        np.fill_diagonal(scores, -2.0)
    return DirectionRun(direction, scores, rel, pos, np.asarray(qid), np.asarray(gid))


def evaluate(method: RetrievalMethod, world: World, images: np.ndarray,
             directions: tuple[str, ...] = DIRECTIONS) -> tuple[dict[str, dict[str, float]],
                                                                 dict[str, DirectionRun]]:
    """Metrics per direction (``{direction: {metric: value}}``) and the runs behind them."""
    results, runs = {}, {}
    embed = _Embedder(method, world, np.asarray(images))
    for d in directions:
        runs[d] = run_direction(embed, world, d, images)
        results[d] = score_metrics(runs[d].scores, runs[d].relevance, runs[d].positives)
    return results, runs


def oracle_results(world: World, images: np.ndarray,
                   directions: tuple[str, ...] = DIRECTIONS) -> dict[str, dict[str, float]]:
    """The ceiling: a system that ranks by the world's true relevance, ties broken at random.

    R@K is the exact expectation over tie orders; mAP and NDCG@10 are 1 by construction for
    this ranking, so they are computed (not assumed) from the relevance itself.
    """
    out = {}
    for d in directions:
        rel, pos = world.ground_truth(d, images)
        scores = rel.astype(np.float32)
        if d == "image->image":
            np.fill_diagonal(scores, -1.0)
        res = {f"R@{k}": float(oracle_hit_rate(rel, pos, k).mean()) for k in (1, 5, 10)}
        res["mAP"] = float(average_precision(scores, rel, level=3).mean())
        res["NDCG@10"] = float(ndcg_at_k(scores, rel, 10).mean())
        out[d] = res
    return out
