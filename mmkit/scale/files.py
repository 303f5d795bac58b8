"""Find the image files under a folder and decode them for a method, reporting bad files.

- :func:`list_images`: every ``.png`` / ``.jpg`` / ``.jpeg`` / ``.webp`` / ``.tif`` /
  ``.tiff`` file under a folder (recursive, any letter case), as sorted relative POSIX paths:
  the order that gives each file its id.
- :func:`load_image`: one file -> uint8 [S, S, 3] by the decoder and the resize rule that
  every dataset loader uses too (:mod:`mmkit.data.images`): EXIF orientation applied; grey,
  1-bit, palette, CMYK -> RGB; 16-bit and float images scaled to 0..255 (not saturated);
  transparency composited over white; then the shorter side resized to S (bicubic) and the
  centre S x S crop kept (CLIP-style preprocessing; an S x S image is passed through
  untouched). A WebP file without WebP support in PIL is reported as skipped.
- :func:`load_images`: many files; an unreadable or truncated file is reported with its
  path and reason and skipped, never a crash half-way.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmkit.data import images as _images
from mmkit.data.images import IMAGE_SUFFIXES
from mmkit.errors import InputError


def check_folder(path: str | os.PathLike, option: str = "--images") -> Path:
    """``path`` as a Path if it is an existing folder, else a one-line InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{option} {p}: no such folder")
    if not p.is_dir():
        raise InputError(f"{option} {p}: is not a folder")
    return p


def list_images(root: str | os.PathLike, option: str = "--images") -> list[str]:
    """Sorted relative paths (POSIX) of the image files (:data:`IMAGE_SUFFIXES`) under
    ``root``; error if none."""
    root = check_folder(root, option)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    if not found:
        raise InputError(f"{option} {root}: no PNG or JPEG files in this folder, nor WebP or "
                         f"TIFF (looked for {', '.join(IMAGE_SUFFIXES)}, in subfolders too)")
    return sorted(found)


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """uint8 [size, size, 3] RGB pixels of one image file (see the module docstring:
    :func:`mmkit.data.images.load_image` with the one resize rule).

    Raises InputError naming the file when it cannot be decoded (not an image, truncated,
    empty, unsupported).
    """
    pixels = _images.load_image(path, size)
    if pixels.shape != (size, size, 3):
        raise InputError(f"{path}: decoded to shape {pixels.shape}, expected ({size}, {size}, 3)")
    return np.ascontiguousarray(pixels)


def load_images(root: str | os.PathLike, paths: list[str], size: int
                ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Decode ``paths`` (relative to ``root``): (images uint8 [n_ok, size, size, 3],
    ok bool [len(paths)], errors [(path, reason)] for the files that failed)."""
    root = Path(root)
    images, ok, errors = [], np.zeros(len(paths), bool), []
    for i, rel in enumerate(paths):
        try:
            images.append(load_image(root / rel, size))
            ok[i] = True
        except InputError as e:
            errors.append((rel, str(e).split(": ", 1)[-1]))
    stack = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return stack, ok, errors
