"""``build_folder_index``: a folder of images -> embeddings in partitions -> a (sharded) index.

Steps of a build (see :mod:`mmkit.scale.embed` for the folder layout):

1. list the image files (PNG, JPEG, WebP, TIFF) (their sorted relative paths give the ids 0..N-1);
2. embed them in partitions of P files (local engine: in this process; Ray engine: Ray Data
   ``map_batches`` on N workers); unreadable files are counted and reported, not fatal;
3. per space: choose the index (``kind="auto"``: :func:`mmkit.scale.auto.choose_index`),
   train one quantizer on a global sample, build S shards from it (in parallel on Ray),
   tune nprobe / ef_search to the recall target on stored vectors, leave-one-out
   (:func:`tune_sharded`, with :func:`mmkit.index.tune_leave_one_out`), save every shard;
4. write ``manifest.json``, last.

Searching the folder is :mod:`mmkit.scale.search` (:class:`FolderIndex`,
:func:`search_folder`; also importable from here, the old path).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmkit._io import atomic_write_text
from mmkit.errors import InputError
from mmkit.index import KINDS, SearchIndexError
from mmkit.index.tune import drop_self, tune_leave_one_out  # drop_self: re-export
from mmkit.methods import DEFAULT_METHOD
from mmkit.scale import embed as E
from mmkit.scale.auto import DEFAULT_MEMORY, IndexChoice, bytes_per_vector, choose_index
from mmkit.scale.files import list_images
from mmkit.scale.ray_engine import build_shards_ray, embed_ray, ray_session
from mmkit.scale.search import (FolderIndex, check_query, embed_query,  # re-export
                                load_query_audio, search_folder)
from mmkit.scale.shards import (ShardedIndex, build_shard, index_bytes, index_from_bytes,
                                shard_bounds, train_quantizer)

ENGINES = ("local", "ray")
METRIC = "cosine"
TUNE_QUERIES = 500
TUNE_K = 10


def tune_sharded(index: ShardedIndex, vectors: np.ndarray, ids: np.ndarray, *,
                 target_recall: float, seed: int = 0) -> dict[str, Any] | None:
    """Tune the knob of ``index`` on up to 500 stored vectors, leave-one-out (None: no knob
    or too few vectors). Ground truth: exact search over ``vectors``. Returns the
    manifest's ``tuning`` entry."""
    k = TUNE_K
    if index.search_knob is None or len(index) <= k + 1:
        return None
    t0 = time.perf_counter()
    result, n_queries = tune_leave_one_out(index, vectors, ids, target_recall, k,
                                           queries=TUNE_QUERIES, seed=seed, metric=METRIC)
    return {"param": result.param, "value": result.value, "recall": round(result.recall, 4),
            "target_recall": target_recall, "reached": result.reached, "k": k,
            "queries": n_queries, "protocol": "stored vectors as queries, leave-one-out",
            "curve": [[int(v), round(r, 4)] for v, r in result.curve],
            "seconds": round(time.perf_counter() - t0, 3)}


def _resolve_method(method: Any, quiet: bool) -> tuple[Any, str, dict[str, Any]]:
    """(method object, name, fit description) from a name, None (default) or (object, fit)."""
    if method is None:
        method = DEFAULT_METHOD
    if isinstance(method, str):
        obj, fit = E.prepare_method(method, quiet=quiet)
        return obj, method, fit
    if isinstance(method, tuple) and len(method) == 2:
        obj, fit = method
        return obj, getattr(obj, "name", type(obj).__name__), dict(fit)
    raise InputError("method must be a name, or a (fitted method, fit description) pair")


def build_folder_index(images: str | os.PathLike, out: str | os.PathLike, *,
                       method: Any = None, kind: str = "auto", engine: str = "local",
                       workers: int = 2, shards: int = 1, address: str | None = None,
                       memory: int = DEFAULT_MEMORY, target_recall: float = 0.95,
                       partition_size: int = E.DEFAULT_PARTITION, progress: bool = True,
                       quiet: bool = False,
                       on_partition: Callable[[dict[str, Any]], None] | None = None
                       ) -> dict[str, Any]:
    """Embed every image (PNG, JPEG, WebP, TIFF) under ``images`` and build a searchable
    index folder ``out``.

    Args:
        method: a registered method name (default ``mmkit.methods.DEFAULT_METHOD``), or a
            pair (ready method object, fit description) to use one you made yourself.
        kind: "auto" (:func:`~mmkit.scale.auto.choose_index` within ``memory`` bytes) or one
            of "exact", "flat", "ivf", "hnsw", "ivfpq".
        engine: "local" (this process) or "ray" (``workers`` Ray workers; a local cluster, or
            the cluster at ``address``).
        shards: number of shard indexes per space (one shared quantizer).
        target_recall: recall@10 the search knob is tuned to (approximate kinds).
        partition_size: files per partition (the unit of work and of resuming).
        on_partition: called with each finished partition's stats (progress hooks, tests).

    Returns the manifest (also written to ``out/manifest.json``). A build into the folder
    of an earlier, killed build resumes it.
    """
    t_start = time.perf_counter()
    if kind != "auto" and kind not in KINDS:
        raise InputError(f"--kind {kind!r}: choose auto or one of {', '.join(KINDS)}")
    if engine not in ENGINES:
        raise InputError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    for name, value in (("--workers", workers), ("--shards", shards),
                        ("partition_size", partition_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} must be a whole number >= 1, got {value!r}")
    if not 0 < target_recall <= 1:
        raise InputError(f"--recall must be in (0, 1], got {target_recall!r}")
    files = list_images(images)
    out = E.check_out_dir(out)
    if shards > len(files):
        raise InputError(f"--shards {shards}: more shards than the {len(files)} image files")
    obj, name, fit = _resolve_method(method, quiet)
    spaces = E.spaces_of(obj)
    size = int(getattr(obj, "input_size", 64))
    plan, resumed = E.open_plan(out, E.new_plan(Path(images), files, name, fit, spaces, size,
                                                partition_size))
    done = E.finished_partitions(out, plan)
    todo = [k for k in range(E.n_partitions(len(files), partition_size)) if k not in done]
    if resumed and not quiet:
        print(f"mmkit: resuming the build in {out}: {len(done)} partitions done, "
              f"{len(todo)} to go", file=sys.stderr)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if engine == "ray":
        with ray_session(workers, address) as startup:
            timings["ray_start_s"] = round(startup, 3)
            t0 = time.perf_counter()
            stats = embed_ray(obj, plan, out, todo, workers=workers, on_partition=on_partition)
            timings["embed_s"] = round(time.perf_counter() - t0, 3)
            spaces_out = _index_spaces(out, plan, kind, shards, memory, target_recall,
                                       build_shards_ray, timings)
    else:
        stats = E.embed_local(obj, plan, out, todo, progress=progress and not quiet,
                              on_partition=on_partition)
        timings["embed_s"] = round(time.perf_counter() - t0, 3)
        spaces_out = _index_spaces(out, plan, kind, shards, memory, target_recall, None, timings)

    _, ids, errors = E.load_embeddings(out, plan)
    manifest = {
        "format": E.FORMAT, "version": E.VERSION, "method": name, "fit": fit,
        "metric": METRIC, "root": plan["root"], "files": files, "n_files": len(files),
        "n_indexed": int(len(ids)), "n_errors": len(errors),
        "errors": [{"path": p, "error": e} for p, e in errors],
        "spaces": spaces_out, "engine": engine,
        "workers": int(workers) if engine == "ray" else 1,
        "shards": int(shards), "partition_size": int(partition_size),
        "partitions_embedded_now": len(stats), "resumed": resumed,
        "seconds": {**timings, "total_s": round(time.perf_counter() - t_start, 3)},
    }
    atomic_write_text(out / E.MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def _index_spaces(out: Path, plan: dict[str, Any], kind: str, shards: int, memory: int,
                  target_recall: float, ray_builder: Any, timings: dict[str, float]
                  ) -> dict[str, Any]:
    """Build, tune and save the shard indexes of every space; the manifest's "spaces"."""
    vectors, ids, _ = E.load_embeddings(out, plan)
    if len(ids) == 0:
        raise InputError(f"--images {plan['root']}: none of the {len(plan['files'])} image "
                         "files could be read (see the errors above)")
    if shards > len(ids):
        raise InputError(f"--shards {shards}: more shards than the {len(ids)} readable images")
    result = {}
    t0 = time.perf_counter()
    for space in plan["spaces"]:
        x = np.ascontiguousarray(vectors[space], dtype=np.float32)
        n, dim = x.shape
        if kind == "auto":
            choice = choose_index(n, dim, memory)
        else:
            choice = IndexChoice(kind, {}, f"--kind {kind}", bytes_per_vector(kind, dim),
                                 int(n * bytes_per_vector(kind, dim)))
        try:
            quantizer = train_quantizer(x, choice.kind, choice.params, metric=METRIC)
        except SearchIndexError as e:
            raise InputError(f"{space} space: {e}") from None
        qbytes = index_bytes(quantizer)
        bounds = shard_bounds(n, shards)
        if ray_builder is not None:
            built = [index_from_bytes(b) for b in ray_builder(qbytes, x, ids, bounds)]
        else:
            built = [build_shard(qbytes, x[a:b], ids[a:b]) for a, b in bounds]
        sharded = ShardedIndex(built)
        tuning = tune_sharded(sharded, x, ids, target_recall=target_recall)
        names = []
        for s, shard in enumerate(built):
            names.append(f"index/{space}/shard-{s:03d}.mmidx")
            shard.save(out / names[-1])
        result[space] = {"dim": int(dim), "n": int(n), "kind": choice.kind,
                         "params": choice.params, "reason": choice.reason,
                         "bytes_per_vector": choice.bytes_per_vector,
                         "search_params": sharded.search_params, "tuning": tuning,
                         "shards": names}
    timings["index_s"] = round(time.perf_counter() - t0, 3)
    return result


__all__ = ["build_folder_index", "tune_sharded", "ENGINES", "METRIC",
           # re-exported from mmkit.scale.search (the old import path)
           "FolderIndex", "search_folder", "check_query", "embed_query", "load_query_audio",
           # re-exported from mmkit.index.tune
           "drop_self"]
