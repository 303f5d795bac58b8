"""``mmkit demo``: the whole kit in one run on the embedded world, or on a real dataset.

Generates a world, fits the chosen method on its train split, evaluates every direction the
method does on the test split (:data:`mmkit.data.directions.DEMO_DIRECTIONS` first), prints
one table (directions x metrics, with the relevance oracle and the Bayes ceiling in
brackets), and writes to ``--out``:

- ``gallery.png``: a few seeded queries per direction with their top 5, framed by outcome;
- ``scores.npz``: every direction's score matrix and the ids of its queries and gallery
  (``{direction}/scores``, ``{direction}/query_ids``, ``{direction}/gallery_ids``), so that
  anyone can recompute the table with another library.

``mmkit demo --dataset NAME --root DIR`` (:func:`run_dataset_demo`) runs the same evaluation
on data read from disk (:func:`load_dataset`): an exported world, any Karpathy split file,
MS-COCO, Flickr30K, Flickr8K (with its spoken captions) or CUB-200-2011.
"""
from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np

from mmkit._io import atomic_write_bytes, check_writable_dir
from mmkit._setup import project_root
from mmkit.data.coco import load_coco, load_coco_karpathy
from mmkit.data.cub import load_cub
from mmkit.data.dataset import IMAGE_SIZE
from mmkit.data.directions import get_direction
from mmkit.data.flickr import load_flickr8k, load_flickr30k
from mmkit.data.karpathy import load_karpathy
from mmkit.data.spoken import load_flickr8k_audio
from mmkit.data.world import World, WorldConfig
from mmkit.errors import InputError
from mmkit.methods import DEFAULT_METHOD, available_methods, get_method
from mmkit.methods.clip import DEFAULT_CLIP, clip_folder
from mmkit.methods.evaluate import evaluate
from mmkit.scoring import (EVAL_WORLD, METRICS, DirectionRun, ceiling_results,  # noqa: F401
                           format_table, oracle_results)
from mmkit.viz import gallery, save_figure

#: the demo's world size: the evaluation world's (:data:`mmkit.scoring.EVAL_WORLD`)
DEMO_N = EVAL_WORLD["n"]
#: the fewest train and test scenes the demo accepts (a smaller world cannot be evaluated
#: meaningfully: the train split would be too small to fit, the test split too small to rank)
MIN_TRAIN, MIN_TEST = 20, 5
GALLERY_K = 5


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


def run_demo(n: int = DEMO_N, seed: int = EVAL_WORLD["seed"], method: str = DEFAULT_METHOD,
             out: str | Path = "out/demo", progress: bool = True, retrain: bool = False,
             model: str | Path | None = None) -> dict:
    """Run the demo.

    Returns ``{"method", "world", "directions", "results", "oracle", "ceiling", "figure",
    "scores", "seconds"}``; ``results``, ``oracle`` and ``ceiling`` are
    ``{direction: {metric: value}}`` (the ceiling: :func:`~mmkit.scoring.ceiling_results`).
    ``retrain`` (learned methods only) trains the models afresh instead of loading the
    committed checkpoints; ``model`` is the local CLIP folder of ``method="clip"``. Bad input (``n`` too small, an ``out`` that cannot be written,
    ``retrain`` for a method that trains nothing) raises :class:`~mmkit.errors.InputError`
    before any work is done.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    if retrain and method != "joint":
        raise InputError(f"--retrain applies to the learned method (joint); {method!r} loads no "
                         "checkpoint")
    if model is not None and method != "clip":
        raise InputError(f"--model is for --method clip (a local CLIP folder); {method!r} "
                         "loads its own weights")
    kwargs: dict = {"retrain": True} if retrain else {}
    if model is not None:
        kwargs["model"] = str(model)
    if method == "clip":
        clip_folder(model if model is not None else DEFAULT_CLIP)   # no weights: one line now
    out = check_writable_dir(out)
    world = World(WorldConfig(n=n, seed=seed), progress=progress)
    check_demo_world(world)
    model = get_method(method, progress=progress, **kwargs)
    stages = iter(["render images and sounds", f"fit {method}", "evaluate",
                   "oracle and ceiling", "gallery figure"])
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
    ceiling = ceiling_results(world, test, list(results), oracle)
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
            "results": results, "oracle": oracle, "ceiling": ceiling, "figure": str(figure), "scores": str(scores),
            "seconds": round(time.perf_counter() - t0, 1)}


# ----------------------------------------------------------------------------- real datasets
#: ``mmkit demo --dataset``: the generated world (default), or data read from ``--root``
DATASETS = ("world", "karpathy", "coco", "flickr30k", "flickr8k", "cub")
#: where ``--root`` defaults to, under the data folder (``MMKIT_DATA`` or ``data/``)
DEFAULT_ROOTS = {"world": "world", "karpathy": "karpathy", "coco": "coco",
                 "flickr30k": "flickr30k", "flickr8k": "flickr8k", "cub": "cub"}
#: COCO's convention: 1K = mean over this many consecutive folds of the test split
COCO_FOLDS = 5


def default_root(dataset: str) -> Path:
    """``$MMKIT_DATA/NAME`` (default ``data/NAME`` in the repository)."""
    return Path(os.environ.get("MMKIT_DATA", project_root() / "data")) / DEFAULT_ROOTS[dataset]


def _karpathy_file(root: Path, pattern: str = "dataset_*.json") -> Path:
    if root.is_file():
        return root
    if not root.is_dir():
        raise InputError(f"{root}: folder not found (--root must be a folder holding "
                         f"{pattern})")
    found = sorted(root.glob(pattern))
    if len(found) != 1:
        raise InputError(f"{root}: expected one Karpathy split file {pattern} there, found "
                         f"{len(found) or 'none'}"
                         + (f" ({', '.join(p.name for p in found)})" if found else ""))
    return found[0]


def load_dataset(dataset: str, root: str | Path):
    """The :class:`~mmkit.data.dataset.RetrievalDataset` of ``--dataset NAME --root DIR``.

    - ``world``: an exported world (``mmkit world --out DIR``): ``DIR/dataset_world.json``;
    - ``karpathy``: any Karpathy split file (``DIR/dataset_*.json``, or the file itself);
      images under the file's folder, or ``flickr30k-images/`` / ``Flicker8k_Dataset/``;
    - ``coco``: ``DIR/dataset_coco.json`` (Karpathy splits), else the official
      ``DIR/annotations/captions_{train,val}2017.json`` (val2017 is then the test split);
    - ``flickr30k``, ``flickr8k`` (with ``flickr_audio/`` when present), ``cub``: see their
      loaders in :mod:`mmkit.data`.
    """
    root = Path(root)
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if not root.exists():
        raise InputError(f"{root}: folder not found (--dataset {dataset} expects it; "
                         "see data/README.md for the layout)")
    if dataset == "world":
        return load_karpathy(_karpathy_file(root, "dataset_world.json"))
    if dataset == "karpathy":
        path = _karpathy_file(root)
        image_root = path.parent
        for sub in ("flickr30k-images", "Flicker8k_Dataset", "Images"):
            if (path.parent / sub).is_dir():
                image_root = path.parent / sub
        return load_karpathy(path, image_root=image_root)
    if dataset == "coco":
        if (root / "dataset_coco.json").is_file() or not (root / "annotations").is_dir():
            return load_coco_karpathy(root)
        ds = load_coco(root)
        ds.split = np.where(ds.split == "val", "test", ds.split)   # val2017 serves as test
        return ds
    if dataset == "flickr30k":
        return load_flickr30k(root)
    if dataset == "flickr8k":
        ds = load_flickr8k(root)
        if (root / "flickr_audio" / "wav2capt.txt").is_file():
            load_flickr8k_audio(ds, root / "flickr_audio")
        return ds
    return load_cub(root)


def consecutive_folds(images: np.ndarray, n_folds: int) -> list[np.ndarray]:
    """``n_folds`` consecutive folds of equal size (the COCO-1K convention; a remainder of
    fewer than ``n_folds`` images is left out of the folds, never out of the full run)."""
    size = len(images) // n_folds
    return [images[k * size:(k + 1) * size] for k in range(n_folds)] if size else []


def _mean_results(parts: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {d: {m: float(np.mean([p[d][m] for p in parts])) for m in parts[0][d]}
            for d in parts[0]}


def run_dataset_demo(dataset: str, root: str | Path | None = None, split: str = "test",
                     method: str = DEFAULT_METHOD, model: str | None = None,
                     out: str | Path = "out/demo", progress: bool = True,
                     folds: int | None = None) -> dict:
    """The demo's evaluation and table on a dataset read from ``root``.

    The method fits on the dataset's ``train`` split (``restval`` included) and is evaluated
    on ``split`` in every direction both the method does and the data defines (image -> image
    needs labels, audio -> image a clip per image, speech -> image recorded spoken captions).
    There is no oracle column: real data has no graded relevance. COCO also reports the 1K
    protocol: the mean over ``folds`` (5) consecutive folds of the test split (``1K`` when
    the split has 5,000 images), next to the full split (``5K``).

    Returns ``{"dataset", "root", "method", "model", "split", "data", "directions",
    "results", "protocols", "repairs", "figure", "scores", "seconds"}``; ``results`` is
    ``{direction: {metric: value}}`` over the whole split; ``protocols`` maps a protocol
    name (``"5K"``, ``"1K"`` for COCO, else ``"all"``) to such results.
    """
    t0 = time.perf_counter()
    out = check_writable_dir(out)
    if method not in available_methods():
        raise InputError(f"unknown method {method!r}; choose one of "
                         f"{', '.join(available_methods())}")
    root = Path(root) if root is not None else default_root(dataset)
    ds = load_dataset(dataset, root)
    test = ds.indices(split)
    if len(test) == 0:
        raise InputError(f"{root}: split {split!r} of {ds.name} has no images (splits: "
                         + ", ".join(f"{k or 'none'} {v}" for k, v in ds.splits.items())
                         + ("; Flickr30K's split comes from dataset_flickr30k.json"
                            if ds.name == "flickr30k" else "") + ")")
    kwargs = {"progress": progress}
    if model is not None:
        if method != "clip":
            raise InputError(f"--model is for --method clip, not --method {method}")
        kwargs["model"] = model
    fitted = get_method(method, **kwargs)
    fitted.fit(ds, ds.indices("train"))
    ds.image_size = int(getattr(fitted, "input_size", IMAGE_SIZE))
    directions = [d for d in fitted.directions if ds.defines(d)]
    if not directions:
        raise InputError(f"method {method!r} does {', '.join(fitted.directions)}; {ds.name} "
                         f"defines {', '.join(ds.directions)}: nothing to evaluate")
    results, runs = evaluate(fitted, ds, test, directions)
    protocols = {"all": results}
    n_folds = folds if folds is not None else (COCO_FOLDS if ds.name == "coco" else 0)
    parts = consecutive_folds(test, n_folds) if n_folds else []
    if parts:
        full = f"{len(test) // 1000}K" if len(test) % 1000 == 0 else f"{len(test)}"
        one = f"{len(parts[0]) // 1000}K" if len(parts[0]) % 1000 == 0 else f"{len(parts[0])}"
        protocols = {full: results,
                     f"{one} x {len(parts)} folds": _mean_results(
                         [evaluate(fitted, ds, p, directions)[0] for p in parts])}

    fig = gallery(gallery_rows(ds, runs, seed=0))
    figure = save_figure(fig, out / "gallery.png")
    fig.clf()
    scores = save_scores(runs, out / "scores.npz")
    summary = ds.summary()
    summary["n_test"] = int(len(test))
    summary["n_train"] = int(len(ds.indices("train")))
    return {"dataset": dataset, "root": str(root), "method": method, "model": model,
            "split": split, "data": summary, "directions": list(results), "results": results,
            "protocols": protocols, "repairs": ds.repair_summary(), "figure": str(figure),
            "scores": str(scores), "seconds": round(time.perf_counter() - t0, 1)}

