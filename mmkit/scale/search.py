"""Searching an index folder made by :func:`mmkit.scale.build.build_folder_index`.

- :class:`FolderIndex`: open a folder (its ``manifest.json`` and every shard, checked) and
  search it with query embeddings (:meth:`FolderIndex.search_vectors`);
- :func:`search_folder`: one query (a text, an image file or a sound file) embedded by the
  method that built the index, searched in the matching space; ``mmkit search`` runs it;
- :func:`check_query`, :func:`embed_query`, :func:`load_query_audio`: the query side.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mmkit.errors import InputError
from mmkit.index import SearchIndexError, SearchResult, load_index
from mmkit.methods import available_methods
from mmkit.scale import embed as E
from mmkit.scale.files import load_image
from mmkit.scale.shards import ShardedIndex


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
        pixels = load_image(value, input_size)
        partner = "image"
        return modality, np.asarray(method.embed_images(pixels[None], partner=partner), np.float32)
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


__all__ = ["FolderIndex", "load_query_audio", "embed_query", "check_query", "search_folder"]
