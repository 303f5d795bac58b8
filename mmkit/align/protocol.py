"""The evaluation of notebook 06 and ``benchmarks/bench_align.py``.

Training uses fresh scenes (:data:`TRAIN_WORLD`, its train split; its val split for the
held-out curves), never the evaluation world; evaluation uses the evaluation world
(:data:`mmkit.scoring.EVAL_WORLD`: the demo's, n = 2,500, seed 0), its test split of 441
images and 2,205 captions, scored by :func:`mmkit.scoring.score_embeddings` and set against
the Bayes ceiling (:func:`mmkit.scoring.ceiling_results`; the fraction of it with
:func:`mmkit.scoring.fraction_of`).
"""
from __future__ import annotations

import numpy as np

from mmkit.data.world import World, WorldConfig
from mmkit.scoring import EVAL_WORLD, METRICS, ceiling_results, score_embeddings  # noqa: F401
from mmkit.scoring import eval_world as _eval_world
from mmkit.scoring import format_table as _format_table

#: the fresh scenes every aligner of notebook 06 trains on (never the evaluation world)
TRAIN_WORLD: dict[str, int] = {"n": 6000, "seed": 3001}
#: the directions of notebook 06's table
ALIGN_DIRECTIONS: tuple[str, ...] = ("text->image", "image->text", "audio->image")


def train_world() -> World:
    """The training world :data:`TRAIN_WORLD` (6,000 fresh scenes of seed 3001)."""
    return World(WorldConfig(**TRAIN_WORLD), progress=False)


def eval_world() -> World:
    """The evaluation world (:func:`mmkit.scoring.eval_world`: the demo's, 2,500 scenes of
    seed 0)."""
    return _eval_world()


def retrieval_table(world: World, images: np.ndarray, vectors: dict[str, np.ndarray],
                    directions: tuple[str, ...] = ALIGN_DIRECTIONS
                    ) -> dict[str, dict[str, float]]:
    """``{direction: {R@1, R@5, R@10, mAP, NDCG@10}}`` of embeddings over ``images``.

    ``vectors[modality]`` holds one L2-normalised row per unit of the WHOLE world (image and
    audio: float [N, d] by image index; text: float [M, d] by caption index); each direction's
    queries and gallery over ``images`` are taken from it
    (:func:`mmkit.scoring.score_embeddings` with ``rows="all"``).
    """
    return score_embeddings(world, images, vectors, directions, rows="all")


def ceilings(world: World, images: np.ndarray,
             directions: tuple[str, ...] = ALIGN_DIRECTIONS) -> dict[str, dict[str, float]]:
    """The Bayes ceiling per direction and metric (:func:`~mmkit.scoring.ceiling_results`:
    R@K of the Bayes-optimal ranking; mAP and NDCG@10 of the relevance oracle)."""
    return ceiling_results(world, images, directions)


def format_table(tables: dict[str, dict[str, dict[str, float]]],
                 ceiling: dict[str, dict[str, float]] | None = None) -> str:
    """A markdown table: one row per (model, direction), ``value (fraction of the ceiling)``
    in each metric column; ``tables`` maps a model's name to its :func:`retrieval_table`
    (:func:`mmkit.scoring.format_table` with ``markdown=True``)."""
    return _format_table(tables, ceiling=ceiling, markdown=True)
