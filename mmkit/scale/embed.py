"""Preparing the method of an index folder, and embedding files in resumable partitions.

Layout of an index folder (``INDEX_DIR``)::

    plan.json                  written first: method, its fit, spaces, options, the images folder
    store/<run>-<k>.npz        embedding chunks keyed by each file's SHA-256
                               (:mod:`mmkit.scale.store`)
    index/g<generation>/<space>/shard-000.mmidx   the search index of each space, in S shards
    index/g<generation>/extras.npz                per indexed file: what explains a hit
    method.npz                 a method fitted for this index (the CCA baseline), stored once
    manifest.json              written LAST: files with their SHA-256, the method and model
                               checksums, a SHA-256 of every file above

Every file is written atomically (:mod:`mmkit._io`): a killed build leaves finished chunks
and no manifest, so the folder does not load as an index, and the next build into the same
folder embeds only the files no chunk holds. An update writes a new generation of the
index, then the manifest, then removes the old generation: a reader sees the old index or
the new one, never a mix.

Spaces: a method with one joint space (``joint_space = True``) stores one embedding set,
``"joint"``. A method with one space per modality pair (the CCA baseline, ``pretrained``)
stores one set per partner modality it supports ("text", "image", "audio"), so that each
kind of query searches the space made for it.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmkit._io import atomic_write_text, check_writable_dir
from mmkit.data.images import read_image
from mmkit.data.world import World, WorldConfig
from mmkit.errors import InputError
from mmkit.methods import available_methods, get_method
from mmkit.scale.files import load_images
from mmkit.scale.store import write_chunk
from mmkit.scoring import EVAL_WORLD

FORMAT = "mmkit.scale.index"
VERSION = 2
PLAN = "plan.json"
MANIFEST = "manifest.json"
METHOD_STATE = "method.npz"
DEFAULT_PARTITION = 256
#: the world a method that must be fitted (``pretrained = False``) is fitted on: the
#: evaluation world (:data:`mmkit.scoring.EVAL_WORLD`), its train split
FIT_WORLD: dict[str, int] = EVAL_WORLD
QUERY_MODALITIES = ("text", "image", "audio")
_DIRECTION_OF = {"text": "text->image", "image": "image->image", "audio": "audio->image"}
#: the method an index is built with when none is named: it works on any photos, offline
INDEX_METHOD = "pretrained"


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


def make_method(name: str, options: dict[str, Any] | None = None) -> Any:
    """A new method by name with the build options it takes (``model`` for clip); one-line
    errors for an unknown name or an option the method does not take."""
    if name not in available_methods():
        raise InputError(f"unknown method {name!r}; available: {', '.join(available_methods())}")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if "model" in options and name != "clip":
        raise InputError(f"--model is for --method clip (a local CLIP folder); method {name!r} "
                         "loads its own weights")
    method = get_method(name, **options)
    if hasattr(method, "progress"):
        method.progress = False
    return method


def prepare_method(name: str, *, fit_world: dict[str, int] | None = None,
                   options: dict[str, Any] | None = None,
                   quiet: bool = False) -> tuple[Any, dict[str, Any]]:
    """A ready method by name and a description of how it was made (stored in the manifest).

    A pretrained method (``pretrained = True``) is used as it comes. Any other method is
    fitted on the train split of the demo world ``World(WorldConfig(**fit_world))``
    (default n=2500, seed=0) -- about a minute for the baseline on 2 cores, announced with
    one line on stderr. :func:`mmkit.scale.build.build_folder_index` stores the fitted
    method in the index folder (``method.npz``) when it can, so searching never fits again.

    The description holds the method's ``fingerprint`` (for a method built from weights,
    the sha256 of the weights it loads: :attr:`mmkit.methods.joint.JointMethod.fingerprint`),
    so an index built by one model is never searched with another: after
    ``mmkit train joint_world`` the descriptions differ and
    :meth:`~mmkit.scale.search.FolderIndex.check_method` refuses in one line.
    """
    method = make_method(name, options)
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


def read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read the {what} ({type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: not an mmkit index {what}")
    if data.get("version") != VERSION:
        raise InputError(f"{path}: an index {what} of format version {data.get('version')!r}, "
                         f"this mmkit reads version {VERSION}; build the index again into a "
                         "new folder")
    return data


def check_out_dir(out: str | os.PathLike) -> Path:
    """Refuse an ``--out`` that is a file, or a non-empty folder that is neither an mmkit
    index nor an unfinished build of one (one-line InputError); returns the path. A finished
    index is accepted: building into it again updates it."""
    out = check_writable_dir(out)
    if out.is_dir() and any(out.iterdir()) and not (out / PLAN).is_file() \
            and not (out / MANIFEST).is_file():
        raise InputError(f"--out {out}: folder is not empty and is not an mmkit index "
                         "(choose a new or empty folder)")
    return out


PLAN_KEYS = ("method", "fit", "spaces", "input_size", "options")


def open_plan(out: Path, plan: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Write ``plan`` to a new build, or check that the build already in ``out`` (finished
    or not) was made the same way. Returns (plan, existing). Another method, fit or option
    is a one-line error; another model (fingerprint) is allowed: every file is re-embedded."""
    path = Path(out) / PLAN
    if path.is_file():
        old = read_json(path, "build plan")
        for key in PLAN_KEYS:
            a, b = old.get(key), plan[key]
            if key == "fit":
                a = {k: v for k, v in (a or {}).items() if k != "fingerprint"}
                b = {k: v for k, v in b.items() if k != "fingerprint"}
            if a != b:
                raise InputError(f"--out {out}: holds an index built with another {key} "
                                 f"({old.get(key)!r}; now {plan[key]!r}); choose a new folder, "
                                 "or delete this one")
        atomic_write_text(path, json.dumps(plan))
        return plan, True
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(plan))
    return plan, False


def new_plan(root: Path, method_name: str, fit: dict, spaces: list[str], input_size: int,
             partition_size: int, options: dict[str, Any], ocr: bool) -> dict[str, Any]:
    """How files are embedded into this folder (``todo`` is filled per run)."""
    return {"format": FORMAT, "version": VERSION, "method": method_name, "fit": fit,
            "spaces": spaces, "input_size": int(input_size), "options": options,
            "ocr": bool(ocr), "partition_size": int(partition_size),
            "root": str(Path(root).resolve()), "todo": []}


def run_name(fingerprint: str, shas: list[str]) -> str:
    """A short name for one run's work: the same todo list and model give the same name."""
    h = hashlib.sha256(fingerprint.encode())
    for s in shas:
        h.update(s.encode())
    return h.hexdigest()[:12]


# ----------------------------------------------------------------------------- partitions

def embed_partition(method: Any, plan: dict[str, Any], k: int) -> dict[str, np.ndarray]:
    """Decode and embed partition ``k`` of ``plan["todo"]`` ([path, sha256] pairs): a chunk
    (:mod:`mmkit.scale.store`): sha str [n] of the good files, emb_<space> float32 [n, d],
    the method's ``x_*`` arrays, ``ocr`` str [n] when ``plan["ocr"]``, failed str [m] and
    errors str [m], fingerprint."""
    size = plan["partition_size"]
    todo = plan["todo"][k * size:(k + 1) * size]
    paths = [p for p, _ in todo]
    shas = np.array([s for _, s in todo], dtype=str)
    images, ok, errors = load_images(plan["root"], paths, plan["input_size"])
    arrays: dict[str, np.ndarray] = {
        "sha": shas[ok], "failed": shas[~ok],
        "errors": np.array([reason for _, reason in errors], dtype=str),
        "fingerprint": np.array(plan["fit"]["fingerprint"])}
    if len(images):
        found = method.embed_for_index(images, plan["spaces"])
        for key, value in found.items():
            name = key if key.startswith("x_") else f"emb_{key}"
            arrays[name] = np.ascontiguousarray(value)
        for space in plan["spaces"]:
            arrays[f"emb_{space}"] = arrays[f"emb_{space}"].astype(np.float32, copy=False)
    else:
        for space in plan["spaces"]:
            arrays[f"emb_{space}"] = np.zeros((0, 0), np.float32)
    if plan.get("ocr"):
        words = []
        for rel in np.array(paths)[ok]:
            words.append(" ".join(method.read_words(read_image(Path(plan["root"]) / rel))))
        arrays["ocr"] = np.array(words, dtype=str).reshape(-1)
    return arrays


def embed_and_write(method: Any, plan: dict[str, Any], out: str, k: int) -> dict[str, Any]:
    """Embed partition ``k`` and write its chunk; returns {"part", "n_ok", "n_failed",
    "seconds"}."""
    t0 = time.perf_counter()
    arrays = embed_partition(method, plan, k)
    write_chunk(Path(out), f"{plan['run']}-{k:05d}", arrays)
    return {"part": k, "n_ok": int(arrays["sha"].shape[0]),
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
