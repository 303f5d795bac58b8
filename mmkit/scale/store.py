"""The content-addressed embedding store of an index folder, and the scan of an image folder.

Every image file is identified by the SHA-256 of its bytes, so that:

- a file that is renamed or moved keeps its embedding (same bytes, same key): an update
  re-embeds only files whose bytes it has not seen;
- a changed file gets a new key and is embedded again; a deleted file's key is no longer
  referenced and its rows are dropped from the next index;
- a build killed half-way leaves finished chunks whose rows count as known when the build
  runs again (resuming is the same operation as updating).

:func:`scan_folder` lists the image files with their size, modification time and SHA-256
(a file whose path, size and mtime match the previous scan reuses its recorded hash, as
rclip does, so an update reads only new or touched files). A chunk ``store/<name>.npz``
holds, for the files of one partition: ``sha`` str [n], ``emb_<space>`` float32 [n, d] per
space, extra per-file arrays ``x_*`` [n, ...], ``ocr`` str [n] (the words read in the image,
space-separated; only when OCR ran), ``failed`` str [m] and ``errors`` str [m] (files that
could not be decoded, with the reason), and ``fingerprint`` (the method's, a 0-d str: a
chunk of another model never counts as known).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmkit._io import atomic_path
from mmkit.checkpoints import file_sha256
from mmkit.errors import InputError
from mmkit.scale.files import list_images

STORE = "store"


@dataclass(frozen=True)
class FileEntry:
    """One image file of a scanned folder: POSIX path relative to the folder, SHA-256 of its
    bytes, size in bytes and modification time (ns)."""

    path: str
    sha256: str
    size: int
    mtime_ns: int

    def row(self) -> list[Any]:
        """The compact form stored in a manifest: [path, sha256, size, mtime_ns]."""
        return [self.path, self.sha256, self.size, self.mtime_ns]

    @classmethod
    def from_row(cls, row: list[Any]) -> FileEntry:
        return cls(str(row[0]), str(row[1]), int(row[2]), int(row[3]))


#: SHA-256 (hex) of a file's bytes, read in chunks (the kit's one file hash)
sha256_of = file_sha256


def scan_folder(root: str | os.PathLike, previous: list[FileEntry] | None = None,
                option: str = "--images") -> list[FileEntry]:
    """The image files under ``root`` (sorted relative paths, :func:`list_images`) with their
    SHA-256; a file whose (path, size, mtime) equal an entry of ``previous`` reuses its hash."""
    root = Path(root)
    known = {(e.path, e.size, e.mtime_ns): e.sha256 for e in previous or ()}
    entries = []
    for rel in list_images(root, option):
        st = (root / rel).stat()
        sha = known.get((rel, st.st_size, st.st_mtime_ns))
        if sha is None:
            sha = sha256_of(root / rel)
        entries.append(FileEntry(rel, sha, int(st.st_size), int(st.st_mtime_ns)))
    return entries


def folder_changes(root: str | os.PathLike, entries: list[FileEntry]) -> dict[str, int]:
    """What changed under ``root`` since ``entries`` were scanned, by stat only (no hashing):
    {"new": files not in entries, "deleted": entries whose file is gone, "modified": files
    whose size or mtime differ}. A missing folder counts every entry as deleted."""
    root = Path(root)
    before = {e.path: e for e in entries}
    try:
        now = list_images(root)
    except InputError:
        now = []
    new = deleted = modified = 0
    for rel in now:
        e = before.pop(rel, None)
        if e is None:
            new += 1
            continue
        try:
            st = (root / rel).stat()
        except OSError:
            deleted += 1
            continue
        modified += (st.st_size, st.st_mtime_ns) != (e.size, e.mtime_ns)
    deleted += len(before)
    return {"new": new, "deleted": deleted, "modified": modified}


def chunk_path(out: Path, name: str) -> Path:
    return Path(out) / STORE / f"{name}.npz"


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to the .npz file ``path`` atomically (a reader never sees half of it)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def read_npz(path: str | os.PathLike, sha256: str | None = None, what: str = "file"
             ) -> dict[str, np.ndarray]:
    """The arrays of an .npz file (no pickles); with ``sha256``, the file must have it, else
    a one-line InputError naming the damaged file."""
    path = Path(path)
    if sha256 is not None and sha256_of(path) != sha256:
        raise InputError(f"{path}: the {what} is damaged (its SHA-256 differs from the "
                         "manifest's); run 'mmkit index update' to rebuild it")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: cannot read the {what} ({type(e).__name__})") from None


def write_chunk(out: Path, name: str, arrays: dict[str, np.ndarray]) -> Path:
    """Write chunk ``name`` of the store atomically."""
    return write_npz(chunk_path(out, name), arrays)


@dataclass
class Store:
    """The readable chunks of an index folder made by one model: rows by file SHA-256.

    ``rows[sha] = (chunk name, row)``; ``failed[sha] = reason`` for files that could not be
    decoded; ``chunks[name]`` the loaded arrays."""

    spaces: list[str]
    fingerprint: str
    rows: dict[str, tuple[str, int]]
    failed: dict[str, str]
    chunks: dict[str, dict[str, np.ndarray]]

    def vectors(self, space: str, shas: list[str]) -> np.ndarray:
        """float32 [len(shas), d] embeddings of ``shas`` (every one must be in :attr:`rows`)."""
        if not shas:
            return np.zeros((0, 0), np.float32)
        parts = [self.chunks[self.rows[s][0]][f"emb_{space}"][self.rows[s][1]] for s in shas]
        return np.ascontiguousarray(np.stack(parts), dtype=np.float32)

    def extras(self, shas: list[str]) -> dict[str, np.ndarray]:
        """The ``x_*`` arrays and ``ocr`` words of ``shas``, stacked in that order (keys that
        every chunk involved has)."""
        names = {self.rows[s][0] for s in shas}
        keys = set.intersection(*[{k for k in self.chunks[n] if k.startswith("x_") or k == "ocr"}
                                  for n in names]) if names else set()
        return {k: np.stack([self.chunks[self.rows[s][0]][k][self.rows[s][1]] for s in shas])
                for k in sorted(keys)}

    def chunk_names(self, shas: list[str]) -> list[str]:
        """The chunks that hold rows of ``shas`` (sorted)."""
        return sorted({self.rows[s][0] for s in shas if s in self.rows})


def open_store(out: Path, spaces: list[str], fingerprint: str,
               checksums: dict[str, str] | None = None) -> Store:
    """Load every complete chunk of ``out/store`` made by the model ``fingerprint`` for
    ``spaces``; unreadable, incomplete or foreign chunks are ignored (they count as not
    embedded). A chunk listed in ``checksums`` ({relative path: sha256}, from the manifest)
    must match it, else a one-line InputError (a damaged file is never used)."""
    rows: dict[str, tuple[str, int]] = {}
    failed: dict[str, str] = {}
    chunks: dict[str, dict[str, np.ndarray]] = {}
    folder = Path(out) / STORE
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        rel = f"{STORE}/{path.name}"
        if checksums and rel in checksums and sha256_of(path) != checksums[rel]:
            raise InputError(f"--index {out}: {rel} is damaged (its SHA-256 differs from the "
                             "manifest's); delete it and run 'mmkit index update' to re-embed")
        arrays = _read_chunk(path, spaces, fingerprint)
        if arrays is None:
            continue
        name = path.stem
        chunks[name] = arrays
        for i, sha in enumerate(arrays["sha"].tolist()):
            rows.setdefault(sha, (name, i))
        for sha, why in zip(arrays["failed"].tolist(), arrays["errors"].tolist()):
            failed.setdefault(sha, why)
    return Store(list(spaces), fingerprint, rows, failed, chunks)


def _read_chunk(path: Path, spaces: list[str], fingerprint: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError):
        return None
    want = {"sha", "failed", "errors", "fingerprint"} | {f"emb_{s}" for s in spaces}
    if not want <= set(arrays) or str(arrays["fingerprint"]) != fingerprint:
        return None
    n = arrays["sha"].shape[0]
    if any(arrays[f"emb_{s}"].shape[0] != n for s in spaces if n):
        return None
    return arrays


__all__ = ["FileEntry", "Store", "STORE", "sha256_of", "scan_folder", "folder_changes",
           "chunk_path", "write_chunk", "write_npz", "read_npz", "open_store"]
