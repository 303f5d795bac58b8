"""Feature caches under ``data/cache/``: written atomically, keyed by everything they depend on.

>>> feats = cached("hog", {"images": array_key(images), "cell": 8}, lambda: hog_features(images))

The key is a SHA-256 over a JSON description of the inputs and the configuration (any
JSON-serialisable dict; arrays go in through :func:`array_key`, which hashes their bytes,
shape and dtype) plus the cache format version. A change of inputs or configuration gives
another key, so a stale cache is never served; a file that cannot be read (truncated, foreign)
is recomputed and replaced.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmkit._io import atomic_write_bytes
from mmkit._setup import project_root

CACHE_VERSION = 1


def cache_dir() -> Path:
    """``$MMKIT_DATA/cache`` or the project's ``data/cache``."""
    return Path(os.environ.get("MMKIT_DATA", project_root() / "data")) / "cache"


def array_key(x: Any) -> str:
    """SHA-256 of an array's dtype, shape and bytes (a torch tensor or list is converted)."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    a = np.ascontiguousarray(np.asarray(x))
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()


def text_key(texts: list[str]) -> str:
    """SHA-256 of a list of strings (order matters)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


def cache_key(name: str, parts: dict[str, Any]) -> str:
    """The cache key of ``name`` with ``parts`` (inputs and configuration)."""
    payload = json.dumps({"name": name, "version": CACHE_VERSION, "parts": parts},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def cached(name: str, parts: dict[str, Any], compute: Callable[[], np.ndarray], *,
           folder: str | Path | None = None, enabled: bool = True) -> np.ndarray:
    """``compute()``, or its result from the cache when the same ``name`` and ``parts`` were
    computed before. Returns a numpy array; ``enabled=False`` always computes."""
    if not enabled:
        return np.asarray(compute())
    folder = cache_dir() if folder is None else Path(folder)
    path = folder / f"{name}-{cache_key(name, parts)[:24]}.npy"
    if path.is_file():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            pass  # unreadable: recompute and replace
    value = np.asarray(compute())
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    return value
