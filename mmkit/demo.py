"""``mmkit demo``: the whole kit in one run on the embedded world.

Generates a world, fits the chosen method on its train split, evaluates text->image,
image->text, image->image and audio->image retrieval on the test split, prints one table
(directions x metrics, with the oracle ceiling), and saves a gallery figure.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mmkit.data.world import DIRECTIONS, World, WorldConfig
from mmkit.methods import DEFAULT_METHOD, get_method
from mmkit.methods.evaluate import METRICS, DirectionRun, evaluate, oracle_results

DEMO_N = 2500


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
        lines.append("(in brackets: the oracle ceiling, ranking by the world's true relevance)")
    return "\n".join(lines)


def gallery_rows(world: World, runs: dict[str, DirectionRun], per_direction: int = 2,
                 k: int = 5, seed: int = 0) -> list[dict]:
    """Rows for :func:`mmkit.viz.gallery`: a few seeded queries per direction."""
    rng = np.random.default_rng(seed)
    rows = []
    for d, run in runs.items():
        for q in rng.choice(len(run.scores), size=min(per_direction, len(run.scores)),
                            replace=False):
            order = np.argsort(-run.scores[q], kind="stable")[:k]
            outcome = ["hit" if run.positives[q, g] else
                       "relevant" if run.relevance[q, g] == 3 else "miss" for g in order]
            qid = int(run.query_ids[q])
            if d == "text->image":
                query = world.captions[qid]
            elif d == "audio->image":
                query = (world.audio[qid], world.config.sample_rate)
            else:
                query = world.images[qid]
            if d == "image->text":
                results = [world.captions[int(run.gallery_ids[g])] for g in order]
            else:
                results = [world.images[int(run.gallery_ids[g])] for g in order]
            rows.append({"direction": d, "query": query, "results": results, "outcome": outcome})
    return rows


def run_demo(n: int = DEMO_N, seed: int = 0, method: str = DEFAULT_METHOD,
             out: str | Path = "out/demo", progress: bool = True) -> dict:
    """Run the demo; returns ``{"method", "world", "results", "oracle", "figure", "seconds"}``."""
    from tqdm.auto import tqdm

    from mmkit.viz import gallery, save_figure

    t0 = time.perf_counter()
    stages = iter(["generate world", "render images and sounds", f"fit {method}",
                   "evaluate 4 directions", "oracle ceiling", "gallery figure"])
    bar = tqdm(total=6, desc="demo", disable=not progress,
               bar_format="{l_bar}{bar}| {n}/{total} [{elapsed}] {postfix}")

    started = []

    def stage() -> None:
        """Close the running stage (if any) and name the next one."""
        if started:
            bar.update(1)
        started.append(True)
        bar.set_postfix_str(next(stages, "done"))

    stage()
    world = World(WorldConfig(n=n, seed=seed))
    model = get_method(method, progress=progress)
    stage()
    world.images, world.audio  # noqa: B018 - render now, so the timings below are honest
    stage()
    model.fit(world, world.indices("train"))
    stage()
    test = world.indices("test")
    results, runs = evaluate(model, world, test, DIRECTIONS)
    stage()
    oracle = oracle_results(world, test, DIRECTIONS)
    stage()
    fig = gallery(gallery_rows(world, runs, seed=seed))
    figure = save_figure(fig, Path(out) / "gallery.png")
    fig.clf()
    stage()
    bar.close()
    summary = world.summary()
    summary["n_test"] = int(len(test))
    return {"method": method, "world": summary, "results": results, "oracle": oracle,
            "figure": str(figure), "seconds": round(time.perf_counter() - t0, 1)}
