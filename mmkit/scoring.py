"""Scoring retrieval, written once: the evaluation world, the results table, the modality gap.

Everything that turns embeddings into the kit's numbers lives here, and every chapter, model
and command scores through it (the demo, the joint models' training logs, the aligners of
notebook 06, the fusion queries, the CLIP wrappers):

- **the evaluation world** (:data:`EVAL_WORLD`, :func:`eval_world`): the demo's world,
  ``World(n=2500, seed=0)``; its **evaluation split** is :data:`EVAL_SPLIT` (``"test"``: 441
  images, 2,205 captions). Training worlds use other seeds, never this one;
  :func:`unseen_classes` are the classes it holds out (its ``unseen`` split), which zero-shot
  models never train on;
- **the results table** ``{direction: {metric: value}}`` with the columns :data:`METRICS`:
  :func:`score_embeddings` scores embeddings given by modality over a list of directions
  (:func:`score_runs` keeps the score matrices, :func:`score_direction` scores one direction
  from :class:`Embedded` queries and gallery, :func:`score_metrics` one score matrix);
  :func:`oracle_results` (the relevance oracle), :func:`ceiling_results` (the best any
  system can score) and :func:`fraction_of` (a table as a fraction of another);
  :func:`format_table` prints tables;
- **the modality gap** (Liang et al. 2022, "Mind the gap"): :func:`modality_gap`, the distance
  between the centroids of two modalities' L2-normalised embeddings, and
  :func:`modality_probe`, how well a linear classifier tells them apart.

What a direction's queries, gallery, positives and exclusions are is read from
:data:`mmkit.data.directions.DIRECTIONS` and the collection (the generated
:class:`~mmkit.data.world.World` or a :class:`~mmkit.data.dataset.RetrievalDataset`:
``direction_ids``, ``ground_truth``). This module imports no model code and no torch.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Union

import numpy as np

from mmkit.data.ceiling import ceiling_hit_rates
from mmkit.data.collection import Collection
from mmkit.data.directions import DEMO_DIRECTIONS, Direction, exclude, get_direction
from mmkit.data.relevance import oracle_hit_rate
from mmkit.data.world import World, WorldConfig
from mmkit.errors import InputError
from mmkit.metrics import average_precision, hit_rate_at_k, ndcg_at_k

__all__ = ["EVAL_WORLD", "EVAL_SPLIT", "METRICS", "eval_world", "unseen_classes",
           "Embedded", "DirectionRun", "score_metrics", "score_direction", "space_key",
           "score_runs", "score_embeddings", "oracle_results", "ceiling_results",
           "fraction_of", "format_table", "modality_gap", "modality_probe"]

#: the evaluation world: the demo's, the README's, the benchmarks' and every notebook's
EVAL_WORLD: dict[str, int] = {"n": 2500, "seed": 0}
#: the split of the evaluation world that tables report (441 images, 2,205 captions)
EVAL_SPLIT = "test"
#: the metrics of the results table, in column order
METRICS: tuple[str, ...] = ("R@1", "R@5", "R@10", "mAP", "NDCG@10")


# ================================================================== the evaluation world
@functools.lru_cache(maxsize=1)
def _eval_world() -> World:
    return World(WorldConfig(**EVAL_WORLD), progress=False)


def eval_world(progress: bool = False) -> World:
    """The evaluation world ``World(WorldConfig(**EVAL_WORLD))``.

    One instance per process (the world is deterministic; images and sounds are rendered on
    first use and then kept): treat it as read-only. ``progress``: bars while rendering.
    """
    world = _eval_world()
    world.progress = progress
    return world


def unseen_classes(seed: int | None = None) -> np.ndarray:
    """The classes the evaluation world holds out of its train, val and test splits (its
    ``unseen`` split): int [8], ascending. Training never sees them, so retrieval within the
    unseen split measures zero-shot transfer. ``seed``: the world seed (default
    ``EVAL_WORLD["seed"]``; the held-out classes depend on nothing else)."""
    seed = EVAL_WORLD["seed"] if seed is None else int(seed)
    return World(WorldConfig(n=1, seed=seed), progress=False).unseen_classes


# ======================================================================= the results table
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

    def metrics(self) -> dict[str, float]:
        """:func:`score_metrics` of this run: ``{metric: value}`` for :data:`METRICS`."""
        return score_metrics(self.scores, self.relevance, self.positives)


@dataclass(frozen=True)
class Embedded:
    """Embeddings of some collection items: ``vectors`` float [N, d] for the items ``ids``
    int [N] (caption indices for text/speech, image indices for image/audio)."""

    vectors: np.ndarray
    ids: np.ndarray

    def take(self, ids: np.ndarray) -> "Embedded":
        """The rows of the items ``ids`` int [K], in that order (one-line InputError naming
        the first id that has no row)."""
        ids = np.asarray(ids)
        row = {int(i): r for r, i in enumerate(np.asarray(self.ids))}
        missing = next((int(i) for i in ids if int(i) not in row), None)
        if missing is not None:
            raise InputError(f"no embedding for item {missing} (these embeddings hold "
                             f"{len(row)} items)")
        return Embedded(np.asarray(self.vectors)[[row[int(i)] for i in ids]], ids)


def score_metrics(scores: np.ndarray, relevance: np.ndarray,
                  positives: np.ndarray) -> dict[str, float]:
    """The table's metrics of a score matrix float [Q, G] (relevance int [Q, G] graded 0..3,
    positives bool [Q, G]).

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


def score_direction(collection: Collection, direction: str | Direction, images: np.ndarray,
                    queries: Embedded, gallery: Embedded) -> DirectionRun:
    """Score precomputed query and gallery embeddings of ``direction`` over ``images``.

    ``queries.ids`` and ``gallery.ids`` must be exactly the direction's query and gallery ids
    (``collection.direction_ids(direction, images)``, in that order; mismatched ids raise,
    nothing is scored against the wrong items); scores are cosine similarities if the vectors
    are L2-normalised (inner products otherwise).
    """
    d = get_direction(direction)
    images = np.asarray(images)
    qids, gids = collection.direction_ids(d, images)
    q = _check_ids("query", d, queries, qids)
    g = _check_ids("gallery", d, gallery, gids)
    if q.shape[1] != g.shape[1]:
        raise InputError(f"{d.name}: query vectors have {q.shape[1]} dimensions, gallery vectors "
                         f"{g.shape[1]}")
    rel, pos = collection.ground_truth(d, images)
    scores = exclude((q @ g.T).astype(np.float32), d.self_mask(qids, gids))
    return DirectionRun(d.name, scores, rel, pos, qids, gids)


#: what :func:`score_embeddings` takes for one modality
Vectors = Union[np.ndarray, Embedded]


def space_key(modality: str, partner: str) -> str:
    """The key of ``modality``'s embeddings in the space it shares with ``partner``:
    ``"image@audio"`` is the images embedded for audio->image (a method with one space per
    pair embeds an image differently for each partner). :func:`score_runs` looks up this key
    first, then the plain modality."""
    return f"{modality}@{partner}"


def _key(vectors: Mapping[str, Vectors], modality: str, partner: str) -> str | None:
    return next((k for k in (space_key(modality, partner), modality) if k in vectors), None)


def _rows(vectors: Mapping[str, Vectors], key: str, modality: str, ids: np.ndarray,
          rows: str) -> Embedded:
    value = vectors[key]
    if isinstance(value, Embedded):
        return value.take(ids)
    x = np.asarray(value)
    if rows == "all":
        if x.ndim != 2 or (len(ids) and len(x) <= int(ids.max())):
            raise InputError(f"{key!r} vectors must be [units of the whole collection, d] "
                             f"(rows=\"all\"), got {x.shape}")
        return Embedded(x[ids], ids)
    if x.ndim != 2 or len(x) != len(ids):
        raise InputError(f"{key!r} vectors must be [{len(ids)}, d], one row per {modality} "
                         f"unit of these images in unit_ids order, got {x.shape}")
    return Embedded(x, ids)


def score_runs(collection: Collection, images: np.ndarray, vectors: Mapping[str, Vectors],
               directions: Iterable[str | Direction], *, rows: str = "images",
               skip_missing: bool = False) -> dict[str, DirectionRun]:
    """The :class:`DirectionRun` of every direction of ``directions``, in that order, from
    embeddings given by modality (what :func:`score_embeddings` scores).

    Args:
        collection: a :class:`~mmkit.data.world.World` or a dataset (anything with
            ``direction_ids`` and ``ground_truth``).
        images: int [K] the image indices queries and gallery come from (e.g. the test split).
        vectors: ``{key: embeddings}``, ``key`` a modality (``"image"``, ``"text"``,
            ``"audio"``, ``"speech"``) or a modality in one partner's space
            (:func:`space_key`, e.g. ``"image@audio"``; looked up first). The embeddings are
            an :class:`Embedded` (rows picked by id, any superset of the ids needed) or a
            float array [units, d] whose rows are, with ``rows="images"``, the modality's
            units of ``images`` in ``collection.unit_ids`` order, with ``rows="all"``, every
            unit of the collection by id (image and audio rows by image index, text and
            speech rows by caption index).
        directions: direction names, e.g. ``("text->image", "image->text")``.
        rows: how plain arrays are indexed, ``"images"`` or ``"all"`` (above).
        skip_missing: leave out a direction whose modalities ``vectors`` lacks (default: a
            one-line InputError).
    """
    if not isinstance(vectors, Mapping):
        raise InputError(f"vectors must be a dict {{modality: embeddings}}, got "
                         f"{type(vectors).__name__}")
    if rows not in ("images", "all"):
        raise InputError(f"rows must be 'images' or 'all', got {rows!r}")
    if isinstance(directions, (str, Direction)):
        directions = [directions]
    images = np.asarray(images)
    out: dict[str, DirectionRun] = {}
    for name in directions:
        d = get_direction(name)
        keys = _key(vectors, d.query, d.gallery), _key(vectors, d.gallery, d.query)
        if None in keys:
            if skip_missing:
                continue
            missing = d.query if keys[0] is None else d.gallery
            raise InputError(f"{d.name} needs {missing!r} vectors; given {sorted(vectors)}")
        qids, gids = collection.direction_ids(d, images)
        out[d.name] = score_direction(collection, d, images,
                                      _rows(vectors, keys[0], d.query, qids, rows),
                                      _rows(vectors, keys[1], d.gallery, gids, rows))
    return out


def score_embeddings(collection: Collection, images: np.ndarray,
                     vectors: Mapping[str, Vectors], directions: Iterable[str | Direction], *,
                     rows: str = "images", skip_missing: bool = False
                     ) -> dict[str, dict[str, float]]:
    """The results table ``{direction: {metric: value}}`` (:data:`METRICS`) of embeddings given
    by modality, over ``images`` of ``collection``, for each of ``directions``.

    The arguments are :func:`score_runs`'s. Example (one row per unit of the test split)::

        test = world.indices("test")
        texts = [world.captions[j] for j in world.caption_indices(test)]
        vectors = {"image": model.embed_images(world.images[test]),
                   "text": model.embed_texts(texts)}
        score_embeddings(world, test, vectors, ["text->image", "image->text"])
    """
    return {name: run.metrics() for name, run in score_runs(
        collection, images, vectors, directions, rows=rows, skip_missing=skip_missing).items()}


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


# ========================================================================= the table printed
Table = dict[str, dict[str, float]]


def format_table(results: Table | dict[str, Table], oracle: Table | None = None,
                 ceiling: Table | None = None, *, markdown: bool = False) -> str:
    """The results table as text, one column per metric of :data:`METRICS`.

    Plain text (the demo's table, ``markdown=False``): ``results`` is one table
    ``{direction: {metric: value}}``, one row per direction; in brackets the relevance
    ``oracle`` and, with both, the ``ceiling``: ``value (oracle | ceiling)``, explained on a
    last line.

    Markdown (notebook 06's table, ``markdown=True``): ``results`` maps a model's name to its
    table, ``{model: {direction: {metric: value}}}``, one row per (model, direction); in
    brackets the fraction of the ``ceiling`` (:func:`fraction_of`), whose own rows come last.
    """
    if markdown:
        if oracle is not None:
            raise InputError("format_table: a markdown table shows fractions of the ceiling, "
                             "not the oracle (pass ceiling=...)")
        return _markdown_table(results, ceiling)
    width = 16 if ceiling is None else 23
    head = f"{'direction':<14}" + "".join(f"{m:>{width}}" for m in METRICS)
    lines = [head, "-" * len(head)]
    for d, row in results.items():
        cells = []
        for m in METRICS:
            cell = f"{row[m]:.3f}"
            if oracle is not None and ceiling is not None and d in ceiling:
                cell += f" ({oracle[d][m]:.3f} | {ceiling[d][m]:.3f})"
            elif oracle is not None:
                cell += f" ({oracle[d][m]:.3f})"
            cells.append(f"{cell:>{width}}")
        lines.append(f"{d:<14}" + "".join(cells))
    if oracle is not None and ceiling is not None:
        lines.append("(in brackets: the relevance oracle, which ranks by the world's graded "
                     "relevance | the ceiling, the Bayes-optimal ranking)")
    elif oracle is not None:
        lines.append("(in brackets: the relevance oracle, which ranks by the world's graded "
                     "relevance)")
    return "\n".join(lines)


def _markdown_table(tables: dict[str, Table], ceiling: Table | None) -> str:
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


# ========================================================================= the modality gap
def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) == 0 or len(b) == 0:
        raise InputError(f"modality embeddings must be [N, D] and [M, D] with N, M >= 1, got "
                         f"{a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("modality embeddings contain NaN or infinite values")
    return a, b


def _unit_rows(x: np.ndarray, which: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not (norms > 0).all():
        raise InputError(f"row {int(np.flatnonzero(norms[:, 0] <= 0)[0])} of the {which} "
                         "embeddings is all zeros: it has no direction to normalise")
    return x / norms


def modality_gap(a: np.ndarray, b: np.ndarray) -> float:
    """The modality gap between embeddings ``a`` float [N, D] of one modality and ``b``
    float [M, D] of another: the Euclidean distance between the centroids of their
    L2-normalised rows (Liang et al. 2022, "Mind the gap"), in [0, 2].

    Contrastive training leaves two modalities in separate cones of the sphere whatever their
    retrieval quality; 0 means both clouds have the same mean direction and length. Rows are
    normalised first, so the gap does not depend on the embeddings' scale (for embeddings that
    are already unit vectors it is the plain distance between the mean rows).
    """
    a, b = _pair(a, b)
    return float(np.linalg.norm(_unit_rows(a, "first").mean(0)
                                - _unit_rows(b, "second").mean(0)))


def modality_probe(a: np.ndarray, b: np.ndarray, seed: int = 0, test_fraction: float = 0.5,
                   C: float = 1.0) -> float:
    """Held-out accuracy of a linear probe telling rows of ``a`` [N, D] from rows of ``b``
    [M, D]: 0.5 = indistinguishable (chance), 1.0 = linearly separable.

    The two sets are first subsampled to the same size (so that chance is exactly 0.5), then
    split (stratified, ``test_fraction`` held out, seeded); scikit-learn's
    ``LogisticRegression(C=C)`` on standardised inputs is fitted on the rest.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = _pair(a, b)
    if min(len(a), len(b)) < 4:
        raise InputError(f"modality_probe needs at least 4 rows per modality, got {len(a)} "
                         f"and {len(b)}")
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    a = a[np.sort(rng.choice(len(a), n, replace=False))]
    b = b[np.sort(rng.choice(len(b), n, replace=False))]
    x = np.concatenate([a, b])
    y = np.repeat([0, 1], n)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                          stratify=y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    clf.fit(xtr, ytr)
    return float(clf.score(xte, yte))
