"""The evaluation protocol of notebook 06 and ``benchmarks/bench_align.py``.

Training uses fresh scenes (:data:`TRAIN_WORLD`, its train split; its val split for the
held-out curves), never the evaluation world; evaluation uses the demo's world
(:data:`EVAL_WORLD`: n = 2,500, seed 0), its test split of 441 images and 2,205 captions,
scored with :func:`mmkit.methods.evaluate.score_direction` and
:func:`~mmkit.methods.evaluate.score_metrics`, and set against the Bayes ceiling
(:func:`mmkit.methods.evaluate.ceiling_results`; the fraction of it with
:func:`mmkit.methods.evaluate.fraction_of`).
"""
from __future__ import annotations

import numpy as np

from mmkit.data.world import World, WorldConfig
from mmkit.errors import InputError
from mmkit.methods.evaluate import (Embedded, ceiling_results, fraction_of, score_direction,
                                    score_metrics)

#: the fresh scenes every aligner of notebook 06 trains on (never the evaluation world)
TRAIN_WORLD: dict[str, int] = {"n": 6000, "seed": 3001}
#: the evaluation world (the demo's)
EVAL_WORLD: dict[str, int] = {"n": 2500, "seed": 0}
#: the directions of notebook 06's table
ALIGN_DIRECTIONS: tuple[str, ...] = ("text->image", "image->text", "audio->image")
#: the metric columns of the table
METRICS: tuple[str, ...] = ("R@1", "R@5", "R@10", "mAP", "NDCG@10")


def train_world() -> World:
    """The training world :data:`TRAIN_WORLD` (6,000 fresh scenes of seed 3001)."""
    return World(WorldConfig(**TRAIN_WORLD), progress=False)


def eval_world() -> World:
    """The evaluation world :data:`EVAL_WORLD` (the demo's: 2,500 scenes of seed 0)."""
    return World(WorldConfig(**EVAL_WORLD), progress=False)


def retrieval_table(world: World, images: np.ndarray, vectors: dict[str, np.ndarray],
                    directions: tuple[str, ...] = ALIGN_DIRECTIONS
                    ) -> dict[str, dict[str, float]]:
    """``{direction: {R@1, R@5, R@10, mAP, NDCG@10}}`` of embeddings over ``images``.

    ``vectors[modality]`` holds one L2-normalised row per unit of the WHOLE world (image and
    audio: float [N, d] by image index; text: float [M, d] by caption index); each direction's
    queries and gallery over ``images`` are taken from it (:meth:`World.direction_ids`).
    """
    out = {}
    for name in directions:
        q, g = world.direction_ids(name, images)
        qm, gm = name.split("->")
        for m, ids in ((qm, q), (gm, g)):
            if m not in vectors:
                raise InputError(f"retrieval_table: {name} needs {m!r} vectors; given "
                                 f"{sorted(vectors)}")
            if np.asarray(vectors[m]).ndim != 2 or len(vectors[m]) <= int(ids.max()):
                raise InputError(f"retrieval_table: {m!r} vectors must be [units of the whole "
                                 f"world, d], got {np.shape(vectors[m])}")
        run = score_direction(world, name, images, Embedded(vectors[qm][q], q),
                              Embedded(vectors[gm][g], g))
        out[name] = score_metrics(run.scores, run.relevance, run.positives)
    return out


def ceilings(world: World, images: np.ndarray,
             directions: tuple[str, ...] = ALIGN_DIRECTIONS) -> dict[str, dict[str, float]]:
    """The Bayes ceiling per direction and metric (:func:`~mmkit.methods.evaluate.ceiling_results`:
    R@K of the Bayes-optimal ranking; mAP and NDCG@10 of the relevance oracle)."""
    return ceiling_results(world, images, directions)


def format_table(tables: dict[str, dict[str, dict[str, float]]],
                 ceiling: dict[str, dict[str, float]] | None = None) -> str:
    """A markdown table: one row per (model, direction), ``value (fraction of the ceiling)``
    in each metric column; ``tables`` maps a model's name to its :func:`retrieval_table`."""
    lines = ["| model | direction | " + " | ".join(METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    rows = list(tables.items()) + ([("ceiling", ceiling)] if ceiling is not None else [])
    for name, table in rows:
        frac = fraction_of(table, ceiling) if ceiling is not None else None
        for d, res in table.items():
            cells = [f"{res[m]:.3f}" + (f" ({frac[d][m]:.2f})" if frac is not None
                                        and name != "ceiling" else "") for m in METRICS]
            lines.append(f"| {name} | {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
