"""Reading the text inside images: the word on a world image's sign, with PP-OCR (rapidocr).

:func:`read_sign_words` upscales each image, runs :func:`ocr_image` and keeps the most
confident line (:func:`sign_text`); reads are cached per image in one JSON file per OCR
setting (:func:`ocr_cache_path`, named and keyed with :mod:`mmkit.features.cache`).
:func:`word_query` scores retrieval of images by the word they show.

rapidocr and OpenCV are imported when OCR first runs, not with this module.
"""
from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmkit._io import atomic_write_text
from mmkit.data.images import check_images
from mmkit.errors import InputError
from mmkit.features._training import bar
from mmkit.features.cache import array_key, cache_dir, cache_key


@dataclass(frozen=True)
class OcrSettings:
    """How :func:`read_sign_words` runs PP-OCR (all of it is part of the cache key).

    - ``upscale``: the image is enlarged ``upscale`` times (bilinear) before OCR; a 64 px
      world image is too small for the detector;
    - ``det_limit``: the detector's input side (``None`` = the upscaled side; rapidocr's
      default of resizing the short side to 736 px is 4x slower and reads worse);
    - ``use_cls``: run the 180-degree text-direction classifier (signs are never upside down);
    - ``min_letters``: detections with fewer letters are ignored (shapes read as "8" or "Z").
    """

    upscale: int = 4
    det_limit: int | None = None
    use_cls: bool = False
    min_letters: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.upscale, (int, np.integer)) or not 1 <= self.upscale <= 16:
            raise InputError(f"upscale must be an integer in 1..16, got {self.upscale!r}")


@functools.lru_cache(maxsize=4)
def _ocr_engine(det_limit: int):
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR(det_limit_side_len=det_limit, det_limit_type="max",
                    intra_op_num_threads=max(1, torch.get_num_threads()))


@dataclass(frozen=True)
class OcrBox:
    """One detected line of text: the text as read, its confidence and its 4 corner points
    (x, y) in the original image's pixels."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]


def ocr_image(image: np.ndarray, settings: OcrSettings = OcrSettings()) -> list[OcrBox]:
    """Every line PP-OCR reads in one image uint8 [H, W, 3] (RGB), after upscaling."""
    import cv2

    img = check_images(np.asarray(image)[None], name="image", batch_only=True)[0]
    h, w = img.shape[:2]
    up = settings.upscale
    big = cv2.resize(img, (w * up, h * up), interpolation=cv2.INTER_LINEAR)
    engine = _ocr_engine(settings.det_limit or max(h, w) * up)
    result, _ = engine(np.ascontiguousarray(big[:, :, ::-1]), use_cls=settings.use_cls)
    return [OcrBox(str(text), float(score),
                   tuple((float(px) / up, float(py) / up) for px, py in box))
            for box, text, score in (result or [])]


def sign_text(boxes: Sequence[OcrBox], min_letters: int = 2) -> str:
    """The sign's word from OCR lines: each line lower-cased with everything but the letters
    a-z dropped; the most confident line with at least ``min_letters`` letters ("" if none)."""
    best, best_score = "", -1.0
    for b in boxes:
        letters = "".join(ch for ch in b.text.lower() if "a" <= ch <= "z")
        if len(letters) >= min_letters and b.score > best_score:
            best, best_score = letters, b.score
    return best


def ocr_cache_path(settings: OcrSettings, folder: str | Path | None = None) -> Path:
    """The JSON file that caches reads under ``settings``: ``ocr-<key>.json`` in the feature
    cache folder, the key a hash of the settings and the rapidocr version. Its content is
    ``{"format": "mmkit.ocr", "settings": {...}, "reads": {sha256 of image bytes: text}}``."""
    key = cache_key("ocr", {"settings": asdict(settings),
                            "rapidocr": version("rapidocr-onnxruntime")})
    return (cache_dir() if folder is None else Path(folder)) / f"ocr-{key[:24]}.json"


def _load_reads(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") == "mmkit.ocr" and isinstance(data.get("reads"), dict):
            return {str(k): str(v) for k, v in data["reads"].items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        pass                                  # missing or unreadable: start afresh
    return {}


def image_key(image: np.ndarray) -> str:
    """SHA-256 of one image's shape, dtype and bytes (the OCR cache key of an image)."""
    return array_key(image)


def read_sign_words(images: Any, upscale: int = 4, *, settings: OcrSettings | None = None,
                    progress: bool = False, cache: bool = True,
                    cache_folder: str | Path | None = None) -> list[str]:
    """Read the word on each image's sign with PP-OCR: ``images`` uint8 [N, H, W, 3] (RGB;
    grayscale [N, H, W] and the rest of :func:`mmkit.data.images.check_images` with
    ``batch_only=True`` are converted) -> N lower-case words ("" where nothing is read).

    Each image is upscaled ``upscale`` times, then :func:`ocr_image` and :func:`sign_text`.
    With ``cache`` the reads are kept in :func:`ocr_cache_path` (one JSON file per settings,
    keyed by each image's bytes, written atomically after the batch), so a second call on the
    same images, or on a subset, reads nothing again (two processes writing the same file at
    once: the last one wins, and the other's new reads are simply redone next time). About
    0.08 s an image on 2 idle cores.
    """
    settings = settings or OcrSettings(upscale=upscale)
    x = check_images(images, name="images", batch_only=True)
    path = ocr_cache_path(settings, cache_folder)
    reads = _load_reads(path) if cache else {}
    keys = [image_key(img) for img in x]
    todo = [i for i, k in enumerate(keys) if k not in reads]
    for i in bar(todo, progress, desc="OCR"):
        reads[keys[i]] = sign_text(ocr_image(x[i], settings), settings.min_letters)
    if cache and todo:
        atomic_write_text(path, json.dumps({"format": "mmkit.ocr", "settings": asdict(settings),
                                            "reads": reads}, sort_keys=True) + "\n")
    return [reads[k] for k in keys]


def time_ocr(images: np.ndarray, settings: OcrSettings = OcrSettings()) -> float:
    """Seconds per image of uncached OCR over ``images`` (for the notebook's measurement)."""
    x = check_images(images, name="images", batch_only=True)
    t0 = time.perf_counter()
    for img in x:
        ocr_image(img, settings)
    return (time.perf_counter() - t0) / max(1, len(x))


def word_query(reads: Sequence[str], truth: Sequence[str], word: str) -> tuple[float, float]:
    """Retrieve images by the word they show: the images whose OCR read (``reads``) equals
    ``word`` against those whose sign truly says it (``truth``, "" = no sign). Returns
    (precision, recall); precision is 0 when nothing is retrieved, recall 0 when no image
    truly shows ``word``."""
    if len(reads) != len(truth):
        raise InputError(f"reads ({len(reads)}) and truth ({len(truth)}) differ in length")
    got = np.array([r == word for r in reads])
    true = np.array([t == word for t in truth])
    hits = int((got & true).sum())
    return (hits / int(got.sum()) if got.any() else 0.0,
            hits / int(true.sum()) if true.any() else 0.0)



__all__ = ["OcrSettings", "OcrBox", "ocr_image", "sign_text", "read_sign_words",
           "ocr_cache_path", "image_key", "time_ocr", "word_query"]
