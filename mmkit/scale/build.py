"""``build_folder_index``: a folder of images -> embeddings in partitions -> a (sharded) index;
``FolderIndex``: open such an index folder and search it by text, image or sound.

Steps of a build (see :mod:`mmkit.scale.embed` for the folder layout):

1. list the PNG/JPEG files (their sorted relative paths give the ids 0..N-1);
2. embed them in partitions of P files (local engine: in this process; Ray engine: Ray Data
   ``map_batches`` on N workers); unreadable files are counted and reported, not fatal;
3. per space: choose the index (``kind="auto"``: :func:`mmkit.scale.auto.choose_index`),
   train one quantizer on a global sample, build S shards from it (in parallel on Ray),
   tune nprobe / ef_search to the recall target on held-out queries
   (:func:`mmkit.index.tune`), save every shard;
4. write ``manifest.json``, last.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mmkit._io import atomic_write_text
from mmkit.errors import InputError
from mmkit.index import KINDS, SearchIndexError, SearchResult, load_index, tune
from mmkit.scale import embed as E
from mmkit.scale.auto import DEFAULT_MEMORY, IndexChoice, bytes_per_vector, choose_index
from mmkit.scale.shards import (ShardedIndex, build_shard, index_bytes, index_from_bytes,
                                shard_bounds, train_quantizer)

ENGINES = ("local", "ray")
METRIC = "cosine"
TUNE_QUERIES = 500
TUNE_K = 10


class _LeaveOneOut:
    """An index seen through queries that are stored vectors: each query's own id is dropped
    from its hits, so tuning on stored vectors measures recall on the rest (held out)."""

    def __init__(self, index: Any, self_ids: torch.Tensor) -> None:
        self.index, self.self_ids = index, self_ids
        self.kind, self.dim, self.search_knob = index.kind, index.dim, index.search_knob

    def __len__(self) -> int:
        return len(self.index) - 1

    def set_search_params(self, **p: int) -> None:
        self.index.set_search_params(**p)

    def knob_range(self) -> tuple[int, int]:
        return self.index.knob_range()

    def search(self, q: Any, k: int) -> SearchResult:
        return drop_self(self.index.search(q, k + 1), self.self_ids, k)


def drop_self(result: SearchResult, self_ids: torch.Tensor, k: int) -> SearchResult:
    """The first k hits of each row that are not the query's own id [Q]."""
    keep = result.ids != self_ids[:, None]
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :k]
    return SearchResult(result.scores.gather(1, order), result.ids.gather(1, order))


def tune_sharded(index: ShardedIndex, vectors: np.ndarray, ids: np.ndarray, *,
                 target_recall: float, seed: int = 0) -> dict[str, Any] | None:
    """Tune the knob of ``index`` on up to 500 stored vectors, leave-one-out (None: no knob
    or too few vectors). Ground truth: exact search over ``vectors``."""
    from mmkit.index import ExactIndex

    k = TUNE_K
    if index.search_knob is None or len(index) <= k + 1:
        return None
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(ids), min(TUNE_QUERIES, len(ids)), replace=False))
    queries = torch.from_numpy(vectors[rows])
    self_ids = torch.from_numpy(ids[rows])
    exact = ExactIndex(index.dim, METRIC)
    exact.add(vectors, ids=ids, progress=False)
    truth = drop_self(exact.search(queries, k + 1), self_ids, k).ids
    t0 = time.perf_counter()
    result = tune(_LeaveOneOut(index, self_ids), queries, target_recall, k,
                  ground_truth_ids=truth)
    return {"param": result.param, "value": result.value, "recall": round(result.recall, 4),
            "target_recall": target_recall, "reached": result.reached, "k": k,
            "queries": int(len(rows)), "protocol": "stored vectors as queries, leave-one-out",
            "curve": [[int(v), round(r, 4)] for v, r in result.curve],
            "seconds": round(time.perf_counter() - t0, 3)}


def _resolve_method(method: Any, quiet: bool) -> tuple[Any, str, dict[str, Any]]:
    """(method object, name, fit description) from a name, None (default) or (object, fit)."""
    from mmkit.methods import DEFAULT_METHOD

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
    """Embed every PNG/JPEG under ``images`` and build a searchable index folder ``out``.

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
    from mmkit.scale.files import list_images

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
        from mmkit.scale.ray_engine import build_shards_ray, embed_ray, ray_session

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
    import json

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


# ----------------------------------------------------------------------------- opening, search

class FolderIndex:
    """An index folder made by :func:`build_folder_index`, opened for search."""

    def __init__(self, path: Path, manifest: dict[str, Any],
                 indexes: dict[str, ShardedIndex]) -> None:
        self.path, self.manifest, self.indexes = path, manifest, indexes

    @classmethod
    def open(cls, path: str | os.PathLike) -> FolderIndex:
        """Read and check ``path/manifest.json`` and every shard it names (one-line errors:
        not a folder, an unfinished build, a foreign or inconsistent folder)."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"--index {path}: is not a folder" if path.exists()
                             else f"--index {path}: no such folder")
        if not (path / E.MANIFEST).is_file():
            if (path / E.PLAN).is_file():
                raise InputError(f"--index {path}: an unfinished build (no manifest.json); "
                                 "run the same 'mmkit index build' again to finish it")
            raise InputError(f"--index {path}: not an mmkit index folder (no manifest.json)")
        m = E.read_json(path / E.MANIFEST, "manifest")
        indexes = {}
        for space, info in m.get("spaces", {}).items():
            shards = []
            for rel in info["shards"]:
                try:
                    shard = load_index(path / rel)
                except SearchIndexError as e:
                    raise InputError(f"--index {path}: {e}") from None
                if shard.dim != info["dim"]:
                    raise InputError(f"--index {path}: {rel} has dimension {shard.dim}, the "
                                     f"manifest says {info['dim']} (a folder mixed from "
                                     "different builds?)")
                shards.append(shard)
            sharded = ShardedIndex(shards)
            if len(sharded) != info["n"]:
                raise InputError(f"--index {path}: the {space} shards hold {len(sharded)} "
                                 f"vectors, the manifest says {info['n']}")
            if info.get("search_params"):
                sharded.set_search_params(**info["search_params"])
            indexes[space] = sharded
        if not indexes:
            raise InputError(f"--index {path}: the manifest lists no index")
        return cls(path, m, indexes)

    @property
    def spaces(self) -> list[str]:
        return list(self.indexes)

    def check_method(self, name: str, fit: dict[str, Any]) -> None:
        """One-line error unless the index was made by method ``name`` fitted as ``fit``."""
        m = self.manifest
        if m["method"] != name:
            raise InputError(f"--index {self.path}: made by method {m['method']!r}, not {name!r}")
        if m["fit"] != fit:
            raise InputError(f"--index {self.path}: method {name!r} was fitted differently for "
                             f"this index ({m['fit']}) than here ({fit}); embeddings would not "
                             "match")

    def search_vectors(self, space: str, queries: np.ndarray, k: int = 10) -> SearchResult:
        """Top-k of float32 [Q, d] query embeddings in ``space``: (scores, ids) [Q, k]."""
        index = self.indexes[space]
        q = np.asarray(queries, np.float32)
        if q.ndim != 2 or q.shape[1] != index.dim:
            raise InputError(f"query embeddings have shape {q.shape}, the {space} index has "
                             f"dimension {index.dim} (another method or model?)")
        try:
            return index.search(q, min(int(k), len(index)))
        except SearchIndexError as e:
            raise InputError(str(e)) from None

    def paths(self, ids: Any) -> list[str]:
        """File paths (the images folder joined with the relative path) of ids [n] (-1: skipped)."""
        root = Path(self.manifest["root"])
        return [str(root / self.manifest["files"][int(i)]) for i in np.asarray(ids) if i >= 0]

    def relative_paths(self, ids: Any) -> list[str]:
        return [self.manifest["files"][int(i)] for i in np.asarray(ids) if i >= 0]


def load_query_audio(path: str | os.PathLike, sr: int) -> np.ndarray:
    """float32 [T] mono waveform at ``sr`` Hz from a sound file. Documented conversions:
    several channels -> their mean (mono downmix); another rate -> resampled (librosa)."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        raise InputError(f"--audio {path}: not a sound file soundfile can read "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if data.shape[0] == 0:
        raise InputError(f"--audio {path}: the sound file is empty")
    clip = data.mean(axis=1)
    if rate != sr:
        import librosa

        clip = librosa.resample(clip, orig_sr=rate, target_sr=sr).astype(np.float32)
    if not np.isfinite(clip).all():
        raise InputError(f"--audio {path}: contains NaN or infinite samples")
    return clip


def embed_query(method: Any, *, text: str | None = None, image: str | None = None,
                audio: str | None = None, input_size: int = 64) -> tuple[str, np.ndarray]:
    """(modality, float32 [1, d]) for exactly one of a text, an image file, a sound file."""
    given = [(m, v) for m, v in (("text", text), ("image", image), ("audio", audio))
             if v is not None]
    if len(given) != 1:
        raise InputError("give exactly one query: --text, --image or --audio")
    modality, value = given[0]
    if modality == "text":
        if not str(value).strip():
            raise InputError("--text: the query text is empty")
        return modality, np.asarray(method.embed_texts([str(value)]), np.float32)
    if modality == "image":
        from mmkit.scale.files import load_image

        pixels = load_image(value, input_size)
        partner = "image"
        return modality, np.asarray(method.embed_images(pixels[None], partner), np.float32)
    sr = int(getattr(method, "sample_rate", 16000))
    clip = load_query_audio(value, sr)
    return modality, np.asarray(method.embed_audio(clip[None], sr), np.float32)


def check_query(*, text: str | None = None, image: str | None = None,
                audio: str | None = None) -> None:
    """Check the query input before any model work (one-line InputError)."""
    given = [v for v in (text, image, audio) if v is not None]
    if len(given) != 1:
        raise InputError("give exactly one query: --text, --image or --audio")
    if text is not None and not text.strip():
        raise InputError("--text: the query text is empty")
    if image is not None:
        from mmkit.scale.files import load_image

        try:
            load_image(image, 8)
        except InputError as e:
            raise InputError(f"--image {e}") from None
    if audio is not None:
        load_query_audio(audio, 16000)


def search_folder(index: str | os.PathLike | FolderIndex, *, text: str | None = None,
                  image: str | None = None, audio: str | None = None, k: int = 10,
                  method: Any = None, quiet: bool = False) -> dict[str, Any]:
    """Search an index folder: ``{"query": {...}, "results": [{"path", "score"}, ...]}``.

    ``method``: None (the index's own method, prepared as the build prepared it) or a
    pair (method object, fit description) that must match the manifest.
    """
    check_query(text=text, image=image, audio=audio)
    fi = index if isinstance(index, FolderIndex) else FolderIndex.open(index)
    if method is None:
        from mmkit.methods import available_methods

        name = fi.manifest["method"]
        if name not in available_methods():
            raise InputError(f"--index {fi.path}: made by method {name!r}, which this mmkit "
                             f"does not have (available: {', '.join(available_methods())})")
        if fi.manifest["fit"].get("pretrained") is False and fi.manifest["fit"].get("world") \
                != E.FIT_WORLD:
            raise InputError(f"--index {fi.path}: method {name!r} was fitted on a custom world "
                             f"({fi.manifest['fit']}); search it from Python with that method")
        obj, fit = E.prepare_method(name, quiet=quiet)
    else:
        obj, fit = method
        name = getattr(obj, "name", type(obj).__name__)
    fi.check_method(name, fit)
    modality, q = embed_query(obj, text=text, image=image, audio=audio,
                              input_size=int(getattr(obj, "input_size", 64)))
    space = E.space_for(modality, fi.spaces)
    res = fi.search_vectors(space, q, k)
    keep = res.ids[0] >= 0
    ids, scores = res.ids[0][keep], res.scores[0][keep]
    return {"query": {modality: text if modality == "text" else str(image or audio)},
            "space": space,
            "results": [{"path": p, "score": round(float(s), 6)}
                        for p, s in zip(fi.paths(ids), scores)]}
