"""``mmkit demo``: the whole kit in one run on the embedded world.

Generates a world, fits the chosen method on its train split, evaluates every direction the
method does on the test split (:data:`mmkit.data.directions.DEMO_DIRECTIONS` first), prints
one table (directions x metrics, with the oracle in brackets), and writes to ``--out``:

- ``gallery.png``: a few seeded queries per direction with their top 5, framed by outcome;
- ``scores.npz``: every direction's score matrix and the ids of its queries and gallery
  (``{direction}/scores``, ``{direction}/query_ids``, ``{direction}/gallery_ids``), so that
  anyone can recompute the table with another library.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from mmkit._io import atomic_write_bytes, check_writable_dir
from mmkit.data.directions import get_direction
from mmkit.data.world import World, WorldConfig
from mmkit.errors import InputError
from mmkit.methods import DEFAULT_METHOD, get_method
from mmkit.methods.evaluate import METRICS, DirectionRun, evaluate, oracle_results

DEMO_N = 2500
#: the fewest train and test scenes the demo accepts (a smaller world cannot be evaluated
#: meaningfully: the train split would be too small to fit, the test split too small to rank)
MIN_TRAIN, MIN_TEST = 20, 5
GALLERY_K = 5


def format_table(results: dict[str, dict[str, float]],
                 oracle: dict[str, dict[str, float]] | None = None) -> str:
    """Plain-text table: one row per direction, one column per metric (oracle in brackets)."""
    head = f"{'direction':<14}" + "".join(f"{m:>16}" for m in METRICS)
    lines = [head, "-" * len(head)]
    for d, row in results.items():
        cells = []
        for m in METRICS:
            cell = f"{row[m]:.3f}"
            if oracle is not None:
                cell += f" ({oracle[d][m]:.3f})"
            cells.append(f"{cell:>16}")
        lines.append(f"{d:<14}" + "".join(cells))
    if oracle is not None:
        lines.append("(in brackets: the oracle, which ranks by the world's graded relevance)")
    return "\n".join(lines)


def _shown(world: World, modality: str, item: int):
    """What the gallery figure draws for one world item of ``modality``."""
    if modality == "text":
        return world.captions[item]
    if modality == "speech":
        return (world.speech(item), world.config.sample_rate)
    if modality == "audio":
        return (world.audio[item], world.config.sample_rate)
    return world.images[item]


def gallery_rows(world: World, runs: dict[str, DirectionRun], per_direction: int = 2,
                 k: int = GALLERY_K, seed: int = 0) -> list[dict]:
    """Rows for :func:`mmkit.viz.gallery`: a few seeded queries per direction, each with its
    top ``k`` (fewer when the gallery is smaller), excluded items never shown."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, run in runs.items():
        d = get_direction(name)
        n_queries = len(run.scores)
        for q in rng.choice(n_queries, size=min(per_direction, n_queries), replace=False):
            shown = np.isfinite(run.scores[q])          # -inf = excluded from the gallery
            order = np.argsort(-run.scores[q], kind="stable")[:min(k, int(shown.sum()))]
            outcome = ["hit" if run.positives[q, g] else
                       "relevant" if run.relevance[q, g] == 3 else "miss" for g in order]
            rows.append({"direction": name,
                         "query": _shown(world, d.query, int(run.query_ids[q])),
                         "results": [_shown(world, d.gallery, int(run.gallery_ids[g]))
                                     for g in order],
                         "outcome": outcome})
    return rows


def save_scores(runs: dict[str, DirectionRun], path: str | Path) -> Path:
    """Write every run's scores and ids to one ``.npz`` file, atomically."""
    arrays = {}
    for name, run in runs.items():
        arrays[f"{name}/scores"] = run.scores
        arrays[f"{name}/query_ids"] = run.query_ids
        arrays[f"{name}/gallery_ids"] = run.gallery_ids
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def check_demo_world(world: World) -> None:
    """Refuse a world too small for the demo, with a one-line reason."""
    n_train, n_test = len(world.indices("train")), len(world.indices("test"))
    if n_train < MIN_TRAIN or n_test < MIN_TEST:
        raise InputError(f"a world of n={world.config.n} scenes has {n_train} train and {n_test} "
                         f"test scenes; the demo needs at least {MIN_TRAIN} and {MIN_TEST} "
                         f"(use --n 100 or more)")


def run_demo(n: int = DEMO_N, seed: int = 0, method: str = DEFAULT_METHOD,
             out: str | Path = "out/demo", progress: bool = True) -> dict:
    """Run the demo.

    Returns ``{"method", "world", "directions", "results", "oracle", "figure", "scores",
    "seconds"}``; ``results`` and ``oracle`` are ``{direction: {metric: value}}``.
    Bad input (``n`` too small, an ``out`` that cannot be written) raises
    :class:`~mmkit.errors.InputError` before any work is done.
    """
    from tqdm.auto import tqdm

    from mmkit.viz import gallery, save_figure

    t0 = time.perf_counter()
    out = check_writable_dir(out)
    world = World(WorldConfig(n=n, seed=seed), progress=progress)
    check_demo_world(world)
    model = get_method(method, progress=progress)
    stages = iter(["render images and sounds", f"fit {method}", "evaluate", "oracle",
                   "gallery figure"])
    bar = tqdm(total=5, desc="demo", disable=not progress,
               bar_format="{l_bar}{bar}| {n}/{total} [{elapsed}] {postfix}")
    started = []

    def stage() -> None:
        """Close the running stage (if any) and name the next one."""
        if started:
            bar.update(1)
        started.append(True)
        bar.set_postfix_str(next(stages, "done"))

    stage()
    world.images, world.audio  # noqa: B018 - render now, so the timings below are honest
    stage()
    model.fit(world, world.indices("train"))
    stage()
    test = world.indices("test")
    results, runs = evaluate(model, world, test)
    stage()
    oracle = oracle_results(world, test, list(results))
    stage()
    fig = gallery(gallery_rows(world, runs, seed=seed))
    figure = save_figure(fig, out / "gallery.png")
    fig.clf()
    scores = save_scores(runs, out / "scores.npz")
    stage()
    bar.close()
    summary = world.summary()
    summary["n_test"] = int(len(test))
    return {"method": method, "world": summary, "directions": list(results),
            "results": results, "oracle": oracle, "figure": str(figure), "scores": str(scores),
            "seconds": round(time.perf_counter() - t0, 1)}
