"""Partitioned, resumable embedding of an image folder into an index folder.

Layout of an index folder (``INDEX_DIR``)::

    plan.json                  written first: method, its fit, spaces, the file list, partition size
    parts/part-00000.npz       partition k = files [k P, (k+1) P): ids, failed ids + reasons,
                               and one float32 [n, d] embedding set per space (emb_<space>)
    index/<space>/shard-000.mmidx   the search index of each space, in S shards
    manifest.json              written LAST: the only file that makes the folder an index

Every file is written atomically (:mod:`mmkit._io`): a killed build leaves finished
partitions and no manifest, so the folder does not load as an index, and the next build
into the same folder redoes only the partitions that are missing (a finished partition is
never redone).

Spaces: a method with one joint space (``joint_space = True``) stores one embedding set,
``"joint"``. A method with one space per modality pair (the CCA baseline) stores one set per
partner modality it supports ("text", "image", "audio"), so that each kind of query
searches the space made for it.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmkit._io import atomic_path, atomic_write_text, check_writable_dir
from mmkit.data.world import World, WorldConfig
from mmkit.errors import InputError
from mmkit.methods import available_methods, get_method
from mmkit.scale.files import load_images
from mmkit.scoring import EVAL_WORLD

FORMAT = "mmkit.scale.index"
VERSION = 1
PLAN = "plan.json"
MANIFEST = "manifest.json"
PARTS = "parts"
DEFAULT_PARTITION = 256
#: the world a method that must be fitted (``pretrained = False``) is fitted on: the
#: evaluation world (:data:`mmkit.scoring.EVAL_WORLD`), its train split
FIT_WORLD: dict[str, int] = EVAL_WORLD
QUERY_MODALITIES = ("text", "image", "audio")
_DIRECTION_OF = {"text": "text->image", "image": "image->image", "audio": "audio->image"}


# ----------------------------------------------------------------------------- methods

def spaces_of(method: Any) -> list[str]:
    """The embedding spaces an index for ``method`` stores: ["joint"] or partner names."""
    if getattr(method, "joint_space", False):
        return ["joint"]
    directions = getattr(method, "directions", ())
    spaces = [m for m in QUERY_MODALITIES if _DIRECTION_OF[m] in directions]
    if not spaces:
        raise InputError(f"method {getattr(method, 'name', method)!r} retrieves no images")
    return spaces


def space_for(modality: str, spaces: list[str]) -> str:
    """The space a ``modality`` query ("text", "image", "audio") searches."""
    if spaces == ["joint"]:
        return "joint"
    if modality not in spaces:
        raise InputError(f"this index has no {modality} space (it has: {', '.join(spaces)}); "
                         f"its method does not do {modality} -> image retrieval")
    return modality


def prepare_method(name: str, *, fit_world: dict[str, int] | None = None,
                   quiet: bool = False) -> tuple[Any, dict[str, Any]]:
    """A ready method by name and a description of how it was made (stored in the manifest).

    A pretrained method (``pretrained = True``) is used as it comes. Any other method is
    fitted on the train split of the demo world ``World(WorldConfig(**fit_world))``
    (default n=2500, seed=0) -- about a minute for the baseline on 2 cores, announced with
    one line on stderr. The fit is deterministic, so ``mmkit search`` refits the same model.

    The description holds the method's ``fingerprint`` (for a method built from checkpoints,
    the sha256 of the weights it loads: :attr:`mmkit.methods.joint.JointMethod.fingerprint`),
    so an index built by one model is never searched, nor its build resumed, with another:
    after ``mmkit train joint_world`` the descriptions differ and
    :meth:`~mmkit.scale.build.FolderIndex.check_method` refuses in one line.
    """

    if name not in available_methods():
        raise InputError(f"unknown method {name!r}; available: {', '.join(available_methods())}")
    method = get_method(name)
    if hasattr(method, "progress"):
        method.progress = False
    if getattr(method, "pretrained", False):
        return method, {"pretrained": True, "fingerprint": method.fingerprint}

    cfg = dict(FIT_WORLD if fit_world is None else fit_world)
    if not quiet:
        print(f"mmkit: method {name!r} is not pretrained: fitting it on the train split of the "
              f"demo world (n={cfg['n']}, seed={cfg['seed']}; about a minute)", file=sys.stderr)
    world = World(WorldConfig(**cfg), progress=False)
    method.fit(world, np.flatnonzero(world.split == "train"))
    return method, {"pretrained": False, "world": cfg, "split": "train",
                    "fingerprint": method.fingerprint}


# ----------------------------------------------------------------------------- plan

def n_partitions(n_files: int, size: int) -> int:
    return (n_files + size - 1) // size


def part_path(out: Path, k: int) -> Path:
    return Path(out) / PARTS / f"part-{k:05d}.npz"


def read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read the {what} ({type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: not an mmkit index {what}")
    if data.get("version") != VERSION:
        raise InputError(f"{path}: {what} version {data.get('version')!r}, this mmkit reads "
                         f"version {VERSION}")
    return data


def check_out_dir(out: str | os.PathLike) -> Path:
    """Refuse an ``--out`` that is a file, a finished index, or a non-empty folder that is not
    an unfinished build (one-line InputError); returns the path."""

    out = check_writable_dir(out)
    if (out / MANIFEST).exists():
        raise InputError(f"--out {out}: already holds a finished index (choose a new folder, "
                         "or delete this one to rebuild)")
    if out.is_dir() and any(out.iterdir()) and not (out / PLAN).is_file():
        raise InputError(f"--out {out}: folder is not empty and is not an unfinished mmkit "
                         "index build (choose a new or empty folder)")
    return out


def open_plan(out: Path, plan: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Write ``plan`` to a new build, or check that an unfinished build in ``out`` has the
    same one. Returns (plan, resumed)."""
    path = Path(out) / PLAN
    if path.is_file():
        old = read_json(path, "build plan")
        for key in ("method", "fit", "spaces", "input_size", "partition_size", "files"):
            if old.get(key) != plan[key]:
                what = "file list" if key == "files" else key
                raise InputError(f"--out {out}: holds an unfinished build with another {what} "
                                 f"(choose a new folder, or delete this one)")
        return old, True
    (Path(out) / PARTS).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(plan))
    return plan, False


def new_plan(root: Path, files: list[str], method_name: str, fit: dict, spaces: list[str],
             input_size: int, partition_size: int) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "method": method_name, "fit": fit,
            "spaces": spaces, "input_size": int(input_size), "partition_size": int(partition_size),
            "root": str(Path(root).resolve()), "files": files}


# ----------------------------------------------------------------------------- partitions

def finished_partitions(out: Path, plan: dict[str, Any]) -> set[int]:
    """Partitions whose file is complete and readable (a corrupt one counts as missing)."""
    done = set()
    size = plan["partition_size"]
    for k in range(n_partitions(len(plan["files"]), size)):
        path = part_path(out, k)
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as z:
                want = {"ids", "failed", "errors"} | {f"emb_{s}" for s in plan["spaces"]}
                if want <= set(z.files) and all(z[f"emb_{s}"].shape[0] == z["ids"].shape[0]
                                                for s in plan["spaces"]):
                    done.add(k)
        except (OSError, ValueError, EOFError):
            pass
    return done


def embed_partition(method: Any, plan: dict[str, Any], k: int) -> dict[str, np.ndarray]:
    """Decode and embed partition ``k``: ids int64 [n] (file numbers of the good files),
    failed int64 [m], errors str [m], emb_<space> float32 [n, d]."""

    size = plan["partition_size"]
    lo, hi = k * size, min((k + 1) * size, len(plan["files"]))
    images, ok, errors = load_images(plan["root"], plan["files"][lo:hi], plan["input_size"])
    numbers = np.arange(lo, hi, dtype=np.int64)
    arrays = {"ids": numbers[ok], "failed": numbers[~ok],
              "errors": np.array([reason for _, reason in errors], dtype=str)}
    for space in plan["spaces"]:
        partner = "image" if space == "joint" else space
        if len(images):
            emb = np.asarray(method.embed_images(images, partner=partner), dtype=np.float32)
        else:
            emb = np.zeros((0, 0), np.float32)
        arrays[f"emb_{space}"] = np.ascontiguousarray(emb)
    return arrays


def write_partition(out: Path, k: int, arrays: dict[str, np.ndarray]) -> None:
    """Write partition ``k`` atomically (a reader never sees half of it)."""
    with atomic_path(part_path(out, k)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def embed_and_write(method: Any, plan: dict[str, Any], out: str, k: int) -> dict[str, Any]:
    """Embed partition ``k`` and write it; returns {"part", "n_ok", "n_failed", "seconds"}."""
    t0 = time.perf_counter()
    arrays = embed_partition(method, plan, k)
    write_partition(Path(out), k, arrays)
    return {"part": k, "n_ok": int(arrays["ids"].shape[0]),
            "n_failed": int(arrays["failed"].shape[0]), "seconds": time.perf_counter() - t0}


def embed_local(method: Any, plan: dict[str, Any], out: Path, todo: list[int], *,
                progress: bool = True,
                on_partition: Callable[[dict[str, Any]], None] | None = None) -> list[dict]:
    """The local engine: embed the ``todo`` partitions one after the other, in this process."""
    from tqdm.auto import tqdm

    stats = []
    for k in tqdm(todo, desc="embed partitions", unit="part", disable=not progress):
        stats.append(embed_and_write(method, plan, str(out), k))
        if on_partition is not None:
            on_partition(stats[-1])
    return stats


def load_embeddings(out: Path, plan: dict[str, Any]
                    ) -> tuple[dict[str, np.ndarray], np.ndarray, list[tuple[str, str]]]:
    """All finished partitions: ({space: float32 [N, d]}, ids int64 [N], errors [(path, why)])."""
    size = plan["partition_size"]
    vectors: dict[str, list[np.ndarray]] = {s: [] for s in plan["spaces"]}
    ids, errors = [], []
    for k in range(n_partitions(len(plan["files"]), size)):
        with np.load(part_path(out, k), allow_pickle=False) as z:
            ids.append(z["ids"])
            for space in plan["spaces"]:
                if z["ids"].shape[0]:
                    vectors[space].append(z[f"emb_{space}"])
            errors += [(plan["files"][int(i)], str(e)) for i, e in zip(z["failed"], z["errors"])]
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    stacked = {s: (np.concatenate(v) if v else np.zeros((0, 0), np.float32))
               for s, v in vectors.items()}
    return stacked, all_ids, errors
