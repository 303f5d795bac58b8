"""Find the image files under a folder and decode them for a method, reporting bad files.

- :func:`list_images`: every ``.png`` / ``.jpg`` / ``.jpeg`` file under a folder (recursive,
  any letter case), as sorted relative POSIX paths: the order that gives each file its id.
- :func:`load_image`: one file -> uint8 [S, S, 3]. Documented conversions: any PIL mode
  (grayscale, palette, RGBA, CMYK, 16-bit) -> RGB (alpha is dropped); any size -> the
  shorter side resized to S (bicubic), then the centre S x S crop (CLIP-style preprocessing;
  an S x S image is passed through untouched).
- :func:`load_images`: many files; an unreadable or truncated file is reported with its
  path and reason and skipped, never a crash half-way.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmkit.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def check_folder(path: str | os.PathLike, option: str = "--images") -> Path:
    """``path`` as a Path if it is an existing folder, else a one-line InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{option} {p}: no such folder")
    if not p.is_dir():
        raise InputError(f"{option} {p}: is not a folder")
    return p


def list_images(root: str | os.PathLike, option: str = "--images") -> list[str]:
    """Sorted relative paths (POSIX) of the PNG/JPEG files under ``root``; error if none."""
    root = check_folder(root, option)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    if not found:
        raise InputError(f"{option} {root}: no PNG or JPEG files in this folder "
                         f"(looked for {', '.join(IMAGE_SUFFIXES)}, in subfolders too)")
    return sorted(found)


def _fit_square(im, size: int):
    """Shorter side -> ``size`` (bicubic), then the centre ``size`` x ``size`` crop."""
    from PIL import Image

    w, h = im.size
    if (w, h) == (size, size):
        return im
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """uint8 [size, size, 3] RGB pixels of one PNG/JPEG file (see the module docstring).

    Raises InputError naming the file when it cannot be decoded (not an image, truncated,
    empty, unsupported).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()                       # decode now: a truncated file fails here
            if im.mode not in ("RGB",):
                im = im.convert("RGBA").convert("RGB") if im.mode in ("P", "LA", "PA") \
                    else im.convert("RGB")
            im = _fit_square(im, size)
            pixels = np.array(im, dtype=np.uint8)   # a writable copy (torch warns on views)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image PIL can read") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated, corrupt, unsupported
        raise InputError(f"{path}: cannot decode image ({str(e).splitlines()[0] or type(e).__name__})"
                         ) from None
    except Image.DecompressionBombError as e:
        raise InputError(f"{path}: {e}") from None
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
