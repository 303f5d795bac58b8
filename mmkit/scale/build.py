"""``build_folder_index``: a folder of images -> embeddings -> a (sharded) index, built or updated.

Steps of a build (see :mod:`mmkit.scale.embed` for the folder layout):

1. scan the image files (PNG, JPEG, WebP, TIFF; sorted relative paths give the ids 0..N-1)
   with the SHA-256 of their bytes (:func:`mmkit.scale.store.scan_folder`; an untouched
   file's hash is reused from the previous manifest);
2. embed the files whose bytes no chunk of the store holds, in partitions of P files (local
   engine: in this process; Ray engine: Ray Data ``map_batches`` on N workers); unreadable
   files are recorded and reported, not fatal; OCR words are read when the method can;
3. per space: choose the index (``kind="auto"``: :func:`mmkit.scale.auto.choose_index`),
   train one quantizer on a global sample, build S shards from it (in parallel on Ray),
   tune nprobe / ef_search to the recall target on stored vectors, leave-one-out
   (:func:`tune_sharded`, with :func:`mmkit.index.tune_leave_one_out`), save every shard in
   a new generation folder ``index/g<k>/``; the method's explanation arrays beside them; a
   fitted method (the CCA baseline) as ``method.npz``;
4. write ``manifest.json`` last (the files with their SHA-256, the method and its model
   fingerprint, a SHA-256 of every index file), then remove the old generation and the
   chunks no live file needs.

Searching the folder is :mod:`mmkit.scale.search` (:class:`FolderIndex`,
:func:`search_folder`; also importable from here, the old path).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmkit._io import atomic_write_text
from mmkit.errors import InputError
from mmkit.index import KINDS, SearchIndexError
from mmkit.index.tune import drop_self, tune_leave_one_out  # drop_self: re-export
from mmkit.scale import embed as E
from mmkit.scale.auto import DEFAULT_MEMORY, IndexChoice, bytes_per_vector, choose_index
from mmkit.scale.ray_engine import build_shards_ray, embed_ray, ray_session
from mmkit.scale.search import (  # re-export
    FolderIndex,
    check_query,
    embed_query,
    load_query_audio,
    search_folder,
)
from mmkit.scale.shards import (
    ShardedIndex,
    build_shard,
    index_bytes,
    index_from_bytes,
    shard_bounds,
    train_quantizer,
)
from mmkit.scale.store import (
    STORE,
    FileEntry,
    Store,
    open_store,
    scan_folder,
    sha256_of,
    write_npz,
)

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


def _resolve_method(method: Any, options: dict[str, Any], quiet: bool
                    ) -> tuple[Any, str, dict[str, Any]]:
    """(method object, name, fit description) from a name, None (default) or (object, fit)."""
    if method is None:
        method = E.INDEX_METHOD
    if isinstance(method, str):
        obj, fit = E.prepare_method(method, options=options, quiet=quiet)
        name = method
    elif isinstance(method, tuple) and len(method) == 2:
        obj, fit = method
        name = getattr(obj, "name", type(obj).__name__)
    else:
        raise InputError("method must be a name, or a (fitted method, fit description) pair")
    fit = dict(fit)
    fit.setdefault("fingerprint", getattr(obj, "fingerprint", type(obj).__name__))
    return obj, name, fit


def _previous_manifest(out: Path) -> dict[str, Any] | None:
    return E.read_json(out / E.MANIFEST, "manifest") if (out / E.MANIFEST).is_file() else None


def build_folder_index(images: str | os.PathLike | None, out: str | os.PathLike, *,
                       method: Any = None, model: str | os.PathLike | None = None,
                       ocr: bool | None = None, kind: str = "auto", engine: str = "local",
                       workers: int = 2, shards: int = 1, address: str | None = None,
                       memory: int = DEFAULT_MEMORY, target_recall: float = 0.95,
                       partition_size: int = E.DEFAULT_PARTITION, progress: bool = True,
                       quiet: bool = False,
                       on_partition: Callable[[dict[str, Any]], None] | None = None
                       ) -> dict[str, Any]:
    """Embed every image (PNG, JPEG, WebP, TIFF) under ``images`` and build, or update, the
    searchable index folder ``out``.

    Args:
        images: the photo folder; ``None`` to update ``out`` from the folder it was built
            from (``mmkit index update``).
        method: a registered method name (default ``"pretrained"``, for any photos; when
            updating, the index's own), or a pair (ready method object, fit description) to
            use one you made yourself.
        model: the local CLIP folder for ``method="clip"``.
        ocr: read the words written in each photo (methods that can, e.g. ``pretrained``;
            default on for them); about 0.1 s per photo on 2 cores.
        kind: "auto" (:func:`~mmkit.scale.auto.choose_index` within ``memory`` bytes) or one
            of "exact", "flat", "ivf", "hnsw", "ivfpq".
        engine: "local" (this process) or "ray" (``workers`` Ray workers; a local cluster, or
            the cluster at ``address``).
        shards: number of shard indexes per space (one shared quantizer).
        target_recall: recall@10 the search knob is tuned to (approximate kinds).
        partition_size: files per partition (the unit of work and of resuming).
        on_partition: called with each finished partition's stats (progress hooks, tests).

    Returns the manifest (also written to ``out/manifest.json``). Files are keyed by the
    SHA-256 of their bytes (:mod:`mmkit.scale.store`): building into an existing index
    embeds only new or changed files (renamed or moved files keep their embeddings), drops
    deleted ones and rebuilds the index, which then equals a fresh build's; a killed build
    resumes the same way. A build in which no file can be read leaves nothing behind.
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
    out = Path(out)
    fresh = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    out = E.check_out_dir(out)
    previous = _previous_manifest(out)
    if images is None:
        if previous is None:
            raise InputError(f"--index {out}: not an mmkit index folder (no manifest.json)")
        images = previous["root"]
    if method is None and previous is not None:
        method = previous["method"]
        if model is None:
            model = previous.get("options", {}).get("model")
    options = {"model": str(Path(model).resolve())} if model is not None else {}
    old_entries = [FileEntry.from_row(r) for r in previous["files"]] \
        if previous is not None and previous["root"] == str(Path(images).resolve()) else []
    entries = scan_folder(images, old_entries)
    if shards > len(entries):
        raise InputError(f"--shards {shards}: more shards than the {len(entries)} image files")
    obj, name, fit = _resolve_method(method, options, quiet)
    if ocr is None:
        ocr = previous["ocr"] if previous is not None else bool(getattr(obj, "ocr", False))
    if ocr and not hasattr(obj, "read_words"):
        raise InputError(f"--ocr: method {name!r} does not read words in images (pretrained does)")
    spaces = E.spaces_of(obj)
    size = int(getattr(obj, "input_size", 64))
    plan, existing = E.open_plan(out, E.new_plan(Path(images), name, fit, spaces, size,
                                                 partition_size, options, bool(ocr)))
    if previous is not None and previous["fit"].get("fingerprint") != fit["fingerprint"] \
            and not quiet:
        print(f"mmkit: the model of method {name!r} changed since {out} was built: "
              "every file is embedded again", file=sys.stderr)
    store = open_store(out, spaces, fit["fingerprint"],
                       previous.get("checksums") if previous else None)
    seen: set[str] = set()
    todo = []
    for e in entries:
        if e.sha256 not in store.rows and e.sha256 not in store.failed and e.sha256 not in seen:
            seen.add(e.sha256)
            todo.append([e.path, e.sha256])
    plan["todo"], plan["run"] = todo, E.run_name(fit["fingerprint"], [s for _, s in todo])
    parts = list(range(E.n_partitions(len(todo), partition_size)))
    if existing and previous is None and store.rows and not quiet:
        print(f"mmkit: resuming the build in {out}: {len(store.rows)} files embedded, "
              f"{len(todo)} to go", file=sys.stderr)
    try:
        manifest = _embed_and_index(obj, name, fit, plan, out, entries, parts, previous,
                                    kind=kind, engine=engine, workers=workers, shards=shards,
                                    address=address, memory=memory,
                                    target_recall=target_recall, progress=progress,
                                    quiet=quiet, on_partition=on_partition)
    except InputError:
        if fresh and not (out / E.MANIFEST).exists():
            _remove_build(out)
        raise
    manifest["seconds"]["total_s"] = round(time.perf_counter() - t_start, 3)
    atomic_write_text(out / E.MANIFEST, json.dumps(manifest, indent=1))
    _collect_garbage(out, manifest)
    return manifest


def _remove_build(out: Path) -> None:
    """Remove what a fresh build wrote (it failed before writing a manifest)."""
    for sub in (STORE, "index"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for name in (E.PLAN, E.METHOD_STATE):
        (out / name).unlink(missing_ok=True)
    try:
        out.rmdir()
    except OSError:
        pass


def _collect_garbage(out: Path, manifest: dict[str, Any]) -> None:
    """After the manifest is written: remove index generations and store chunks it does not
    list (an old generation, chunks of deleted files or of another model)."""
    listed = set(manifest["checksums"])
    keep_gen = f"index/{manifest['generation']}"
    for gen in (out / "index").glob("*") if (out / "index").is_dir() else []:
        if f"index/{gen.name}" != keep_gen:
            shutil.rmtree(gen, ignore_errors=True)
    for chunk in (out / STORE).glob("*.npz") if (out / STORE).is_dir() else []:
        if f"{STORE}/{chunk.name}" not in listed:
            chunk.unlink(missing_ok=True)


def _embed_and_index(obj: Any, name: str, fit: dict[str, Any], plan: dict[str, Any], out: Path,
                     entries: list[FileEntry], parts: list[int],
                     previous: dict[str, Any] | None, *, kind: str, engine: str, workers: int,
                     shards: int, address: str | None, memory: int, target_recall: float,
                     progress: bool, quiet: bool,
                     on_partition: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    atomic_write_text(out / E.PLAN, json.dumps(plan))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    generation = f"g{int(previous['generation'][1:]) + 1:04d}" if previous else "g0001"
    if engine == "ray":
        with ray_session(workers, address) as startup:
            timings["ray_start_s"] = round(startup, 3)
            t0 = time.perf_counter()
            stats = embed_ray(obj, plan, out, parts, workers=workers, on_partition=on_partition)
            timings["embed_s"] = round(time.perf_counter() - t0, 3)
            store = open_store(out, plan["spaces"], fit["fingerprint"])
            ids, vectors, errors = _assemble(store, entries, plan["spaces"])
            spaces_out = _index_spaces(out, generation, vectors, ids, kind, shards, memory,
                                       target_recall, build_shards_ray, timings)
    else:
        stats = E.embed_local(obj, plan, out, parts, progress=progress and not quiet,
                              on_partition=on_partition)
        timings["embed_s"] = round(time.perf_counter() - t0, 3)
        store = open_store(out, plan["spaces"], fit["fingerprint"])
        ids, vectors, errors = _assemble(store, entries, plan["spaces"])
        spaces_out = _index_spaces(out, generation, vectors, ids, kind, shards, memory,
                                   target_recall, None, timings)
    good = [entries[i].sha256 for i in ids]
    checksums = {rel: sha256_of(out / rel) for info in spaces_out.values()
                 for rel in info["shards"]}
    extras = store.extras(good)
    if extras:
        rel = f"index/{generation}/extras.npz"
        write_npz(out / rel, {"ids": ids, **extras})
        checksums[rel] = sha256_of(out / rel)
    if not fit.get("pretrained", True) and hasattr(obj, "state_arrays"):
        write_npz(out / E.METHOD_STATE, obj.state_arrays())
        checksums[E.METHOD_STATE] = sha256_of(out / E.METHOD_STATE)
    live = {e.sha256 for e in entries}
    for chunk in sorted(n for n, arrays in store.chunks.items()
                        if live & (set(arrays["sha"].tolist()) | set(arrays["failed"].tolist()))):
        rel = f"{STORE}/{chunk}.npz"
        checksums[rel] = sha256_of(out / rel)
    before = {e.path for e in (FileEntry.from_row(r) for r in previous["files"])} \
        if previous else set()
    embedded_now = sum(s["n_ok"] for s in stats)
    return {
        "format": E.FORMAT, "version": E.VERSION, "method": name, "fit": fit,
        "options": plan["options"], "ocr": plan["ocr"], "metric": METRIC,
        "root": plan["root"], "files": [e.row() for e in entries], "n_files": len(entries),
        "n_indexed": int(len(ids)), "n_errors": len(errors),
        "errors": [{"path": p, "error": e} for p, e in errors],
        "spaces": spaces_out, "generation": generation, "checksums": checksums,
        "engine": engine, "workers": int(workers) if engine == "ray" else 1,
        "shards": int(shards), "partition_size": int(plan["partition_size"]),
        "update": {"embedded": embedded_now, "reused": int(len(ids)) - embedded_now,
                   "new_paths": len({e.path for e in entries} - before),
                   "dropped_paths": len(before - {e.path for e in entries})},
        "resumed": bool(previous is None and len(store.rows) > embedded_now),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": dict(timings),
    }


def _assemble(store: Store, entries: list[FileEntry], spaces: list[str]
              ) -> tuple[np.ndarray, dict[str, np.ndarray], list[tuple[str, str]]]:
    """(ids int64 [n] = positions in ``entries`` of the readable files, {space: float32
    [n, d]}, errors [(path, reason)]); one-line error when no file could be read."""
    ids = np.array([i for i, e in enumerate(entries) if e.sha256 in store.rows], np.int64)
    errors = [(e.path, store.failed.get(e.sha256, "not embedded")) for e in entries
              if e.sha256 not in store.rows]
    if len(ids) == 0:
        raise InputError(f"none of the {len(entries)} image files could be read "
                         f"(e.g. {errors[0][0]}: {errors[0][1]})")
    shas = [entries[i].sha256 for i in ids]
    return ids, {s: store.vectors(s, shas) for s in spaces}, errors


def _index_spaces(out: Path, generation: str, vectors: dict[str, np.ndarray], ids: np.ndarray,
                  kind: str, shards: int, memory: int, target_recall: float, ray_builder: Any,
                  timings: dict[str, float]
                  ) -> dict[str, Any]:
    """Build, tune and save the shard indexes of every space into ``index/<generation>/``;
    the manifest's "spaces"."""
    if shards > len(ids):
        raise InputError(f"--shards {shards}: more shards than the {len(ids)} readable images")
    result = {}
    t0 = time.perf_counter()
    for space in vectors:
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
            names.append(f"index/{generation}/{space}/shard-{s:03d}.mmidx")
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
