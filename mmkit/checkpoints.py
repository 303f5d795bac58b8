"""Trained models: train with the package's own code, ship small checkpoints, load them safely.

A model that a notebook or the demo needs is described by a :class:`CheckpointSpec`
(how to build it, how to train it, its default config) in the module that owns it, listed in
that module's ``CHECKPOINTS`` dict; :data:`SPEC_MODULES` names those modules. Then

- ``mmkit train NAME`` (:func:`train_and_save`) trains it from scratch on fresh scenes and
  writes ``NAME.safetensors`` (the weights) and ``NAME.json`` (the manifest: config, seed,
  training data, wall time, metrics, sha256 of the weights, versions) atomically;
- :func:`load` (what notebooks and the demo call) reads the committed checkpoint shipped in
  ``mmkit/trained/``, or a retrained one in the user's ``data/checkpoints/``; it checks
  the manifest (format, name, config, sha256, tensor names and shapes) and, when anything is
  missing, corrupt or mismatched, prints ONE line saying what and retrains (and saves the
  result in ``data/checkpoints/`` for next time), never a crash.
"""
from __future__ import annotations

import fnmatch
import hashlib
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmkit._io import atomic_write_bytes, atomic_write_text
from mmkit._setup import project_root, seed_everything
from mmkit._version import __version__
from mmkit.errors import InputError
from mmkit.training import torch_threads

FORMAT = "mmkit.checkpoint"
FORMAT_VERSION = 1
#: where committed checkpoints live (inside the package: they ship with it)
PACKAGE_DIR = Path(__file__).resolve().parent / "trained"
#: the modules whose ``CHECKPOINTS`` dict lists trainable models
SPEC_MODULES: tuple[str, ...] = ("mmkit.features.visual_cnn", "mmkit.features.word2vec",
                                 "mmkit.features.sentence_encoders",
                                 "mmkit.features.audio_cnn", "mmkit.encoders.metric_learning",
                                 "mmkit.encoders.joint_training",
                                 "mmkit.encoders.speech_training",
                                 "mmkit.encoders.clip.training",
                                 "mmkit.challenges.cross_domain", "mmkit.challenges.imbalance",
                                 "mmkit.challenges.fine_grained", "mmkit.challenges.multitask",
                                 "mmkit.challenges.compact")


@dataclass
class Trained:
    """What a trainer returns: the model, its metrics and a description of its training data
    (e.g. ``{"world": {"n": 10000, "seed": 1}, "steps": 900}``)."""

    model: Any                      # torch.nn.Module
    metrics: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointSpec:
    """How to build and train one named model.

    Attributes:
        name: the checkpoint's name (``mmkit train NAME``).
        build: ``config -> nn.Module``, untrained, the same architecture every time.
        train: ``(config, progress) -> Trained``: trains from scratch on fresh scenes (never
            on the scenes it is evaluated on) and reports metrics.
        config: the default config (JSON-serialisable); a manifest whose config differs is a
            mismatch.
        description: one line for ``mmkit train --list``.
        seconds: rough training time on 2 cores, for the retraining message.
        threads: torch threads to train with (``None``: leave as is; set and restored by
            :func:`mmkit.training.torch_threads`). Float sums run in an
            order that depends on the thread count, so a fixed count makes retraining give
            byte-identical weights on the same machine and library versions.
    """

    name: str
    build: Callable[[dict], Any]
    train: Callable[[dict, bool], Trained]
    config: dict
    description: str = ""
    seconds: float = 60.0
    threads: int | None = None


def spec_modules() -> tuple[str, ...]:
    """:data:`SPEC_MODULES` plus the modules named in ``MMKIT_MODEL_MODULES`` (comma
    separated): how a prototype registers its own trainable models for ``mmkit train``."""
    extra = [m.strip() for m in os.environ.get("MMKIT_MODEL_MODULES", "").split(",") if m.strip()]
    return SPEC_MODULES + tuple(extra)


def specs() -> dict[str, CheckpointSpec]:
    """Every registered checkpoint spec by name (modules that do not exist yet are skipped)."""
    out: dict[str, CheckpointSpec] = {}
    for module in spec_modules():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        out.update(getattr(mod, "CHECKPOINTS", {}))
    return out


def get_spec(name: str) -> CheckpointSpec:
    found = specs()
    if name not in found:
        raise InputError(f"unknown model {name!r}; trainable models: "
                         f"{', '.join(sorted(found)) or 'none'}")
    return found[name]


def user_dir() -> Path:
    """Where retrained checkpoints go: ``$MMKIT_DATA/checkpoints`` or ``data/checkpoints``."""
    return Path(os.environ.get("MMKIT_DATA", project_root() / "data")) / "checkpoints"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks of ``chunk_size`` bytes (a model of
    several GB never sits in memory twice)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


#: the files of a Hugging Face model folder that decide its outputs: weights (safetensors,
#: PyTorch pickles, shard indexes), configs, tokenizer and processor files
MODEL_FILE_PATTERNS: tuple[str, ...] = ("*.safetensors", "*.bin", "*.json", "*.txt", "*.model")


def folder_sha256(folder: str | Path, patterns: tuple[str, ...] = MODEL_FILE_PATTERNS) -> str:
    """SHA-256 (hex) over the files of ``folder`` (not its sub-folders) whose names match
    ``patterns``: each file's name and :func:`file_sha256`, in name order, so that changing,
    adding, removing or renaming any of them gives another value.

    Raises:
        InputError: ``folder`` is not a folder, or no file in it matches (no weights there).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a model folder")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in patterns))
    if not any(p.suffix in (".safetensors", ".bin") for p in files):
        raise InputError(f"{folder}: no weight file (model.safetensors or pytorch_model.bin)")
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()


def save(trained: Trained, spec: CheckpointSpec, config: dict, folder: str | Path,
         seconds: float, seed: int) -> Path:
    """Write ``NAME.safetensors`` and ``NAME.json`` into ``folder``, atomically; returns the
    weights' path."""
    import torch
    from safetensors.torch import save as st_save

    state = {k: v.detach().cpu().contiguous() for k, v in trained.model.state_dict().items()
             if isinstance(v, torch.Tensor)}
    blob = st_save(state)
    folder = Path(folder)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": spec.name,
        "config": config, "seed": seed, "training_data": trained.data,
        "wall_time_s": round(seconds, 1), "metrics": trained.metrics,
        "sha256": _sha256(blob), "bytes": len(blob),
        "tensors": {k: list(v.shape) for k, v in state.items()},
        "versions": {"mmkit": _version(), "torch": torch.__version__.split("+")[0]},
        "created": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    atomic_write_bytes(folder / f"{spec.name}.safetensors", blob)
    atomic_write_text(folder / f"{spec.name}.json", json.dumps(manifest, indent=2) + "\n")
    return folder / f"{spec.name}.safetensors"


def _version() -> str:
    return __version__


class CheckpointProblem(Exception):
    """Why a checkpoint on disk cannot be used (one line)."""


def _checked(spec: CheckpointSpec, folder: str | Path, want: dict) -> tuple[dict, bytes]:
    """(manifest, weight bytes) of the checkpoint of ``spec`` in ``folder`` whose manifest is
    an mmkit manifest of ``spec.name`` with config ``want`` and whose weights have the
    manifest's sha256; :class:`CheckpointProblem` otherwise."""
    folder = Path(folder)
    weights, meta = folder / f"{spec.name}.safetensors", folder / f"{spec.name}.json"
    if not weights.is_file() or not meta.is_file():
        raise CheckpointProblem(f"no checkpoint in {_shown(folder)}")
    try:
        manifest = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointProblem(f"{meta.name} is not a readable manifest "
                                f"({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointProblem(f"{meta.name} is not an mmkit checkpoint manifest of "
                                f"version {FORMAT_VERSION}")
    if manifest.get("name") != spec.name:
        raise CheckpointProblem(f"{meta.name} describes {manifest.get('name')!r}")
    if manifest.get("config") != want:
        diff = sorted(k for k in set(want) | set(manifest.get("config") or {})
                      if (manifest.get("config") or {}).get(k) != want.get(k))
        raise CheckpointProblem(f"{meta.name} was trained with another config "
                                f"(differs in {', '.join(diff) or 'its keys'})")
    blob = weights.read_bytes()
    if _sha256(blob) != manifest.get("sha256"):
        raise CheckpointProblem(f"{weights.name} does not match the sha256 in its manifest "
                                "(corrupt or replaced)")
    return manifest, blob


def read(spec: CheckpointSpec, folder: str | Path, config: dict | None = None):
    """Build the model of ``spec`` and load its checkpoint from ``folder``.

    Returns ``(model, manifest)``: ``manifest["sha256"]`` is the sha256 of the weight bytes
    actually loaded (checked before loading). Raises :class:`CheckpointProblem` with a
    one-line reason (missing, corrupt, sha256 mismatch, other config, other tensors).
    """
    from safetensors.torch import load as st_load

    want = spec.config if config is None else config
    manifest, blob = _checked(spec, folder, want)
    weights = Path(folder) / f"{spec.name}.safetensors"
    try:
        state = st_load(blob)
    except Exception as exc:  # safetensors raises several types for a broken file
        raise CheckpointProblem(f"{weights.name} cannot be read ({type(exc).__name__})") from None
    model = spec.build(want)
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    got = {k: list(v.shape) for k, v in state.items()}
    if expected != got:
        missing = sorted(set(expected) ^ set(got)) or sorted(
            k for k in expected if expected[k] != got.get(k))
        raise CheckpointProblem(f"{weights.name} does not fit the model (first difference: "
                                f"{missing[0]})")
    model.load_state_dict(state)
    model.eval()
    return model, manifest


def locate(name: str, config: dict | None = None) -> dict | None:
    """The manifest of the checkpoint that :func:`load` would read for ``name`` now, without
    building the model, or ``None`` when it would retrain (nothing usable on disk).

    The same order and checks as :func:`load` (the user's ``data/checkpoints/`` first, then
    the package; format, name, config, the weights' sha256), so ``locate(name)["sha256"]``
    is the sha256 of the weights a :func:`load` would load: what identifies the model in
    cache keys before it is loaded (a hit then loads nothing). Only the tensor shapes, which
    need the model, are left to :func:`load`.
    """
    spec = get_spec(name)
    want = spec.config if config is None else config
    for folder in (user_dir(), PACKAGE_DIR):
        try:
            return _checked(spec, folder, want)[0]
        except CheckpointProblem:
            continue
    return None


def _shown(folder: Path) -> str:
    try:
        return folder.resolve().relative_to(project_root().resolve()).as_posix() + "/"
    except ValueError:
        return str(folder)


def train_and_save(name: str, folder: str | Path | None = None, progress: bool = True,
                   seed: int = 0, **overrides: Any) -> tuple[Path, dict]:
    """Train ``name`` from scratch (``overrides`` replace config entries) and save it into
    ``folder`` (default: the package's ``mmkit/trained/``). Returns (weights path,
    manifest)."""
    spec = get_spec(name)
    unknown = sorted(set(overrides) - set(spec.config))
    if unknown:
        raise InputError(f"{name}: unknown config key(s) {', '.join(unknown)} "
                         f"(known: {', '.join(spec.config)})")
    config = {**spec.config, **overrides}
    seed_everything(seed)
    with torch_threads(spec.threads):
        t0 = time.perf_counter()
        trained = spec.train(config, progress)
        seconds = time.perf_counter() - t0
    path = save(trained, spec, config, PACKAGE_DIR if folder is None else folder, seconds, seed)
    return path, json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def load(name: str, *, retrain: bool = False, progress: bool = True,
         device: str = "cpu", config: dict | None = None):
    """The trained model ``name``, ready for inference (eval mode, on ``device``).

    Looks in ``data/checkpoints/`` (retrained copies) and then in the package; a checkpoint
    that is missing, corrupt or mismatched gives one line on stderr and the model is retrained
    with the package's own code, then saved to ``data/checkpoints/``. ``retrain=True`` skips
    the checkpoints. Returns ``(model, manifest)``; ``manifest["sha256"]`` is the sha256 of
    the weights actually loaded (checked against the file's bytes), the value caches of the
    model's outputs are keyed on (:func:`locate` gives it before loading).
    """
    spec = get_spec(name)
    want = spec.config if config is None else config
    problems = []
    if not retrain:
        for folder in (user_dir(), PACKAGE_DIR):
            try:
                model, manifest = read(spec, folder, want)
                return model.to(device), manifest
            except CheckpointProblem as exc:
                problems.append(str(exc))
        reason = problems[-1] if len(problems) == 2 and problems[0].startswith("no checkpoint") \
            else problems[0]
        print(f"mmkit: checkpoint {name!r}: {reason}; retraining (about "
              f"{spec.seconds:.0f} s on 2 cores)", file=sys.stderr)
    overrides = {k: v for k, v in want.items() if spec.config.get(k) != v}
    train_and_save(name, user_dir(), progress=progress, **overrides)
    model, manifest = read(spec, user_dir(), want)
    return model.to(device), manifest
