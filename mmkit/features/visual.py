"""Handcrafted visual features: colour histograms, LBP texture, HOG and spatial pyramids
(scikit-image). Their image input goes through :func:`mmkit.data.images.check_images`, the
one pixel check every image entry point of mmkit uses (:func:`to_rgb_uint8` is its older name,
re-exported here).

These are the classic baseline descriptors: colour says *what colour*, local binary patterns
say *what texture*, HOG (histograms of oriented gradients) says *what shape*, and a spatial
pyramid says *where*. None of them knows anything about words.

Image input, everywhere (:func:`~mmkit.data.images.check_images`, alias :func:`to_rgb_uint8`):

- shapes: one image ``[H, W]`` (grey) or ``[H, W, C]``, or a batch ``[N, H, W, C]``, with
  ``C`` in 1 (grey), 3 (RGB), 4 (RGBA); a list of equal-shaped images is stacked. A 3-D
  array is one image ``[H, W, C]``; a batch of grey images must be ``[N, H, W, 1]``
  (``[N, H, W]`` is ambiguous and refused). Channels-first ``[N, C, H, W]`` is refused with
  a hint.
- grey is repeated to RGB; RGBA is composited over a white background (as
  ``skimage.color.rgba2rgb`` does).
- dtypes: ``uint8`` as is; ``uint16`` is scaled to 0..255 (``round(x / 257)``: 65535 -> 255);
  ``bool`` -> 0 / 255; other integer types must already lie in 0..255; **floats must lie in
  [0, 1]** (scikit-image's convention) and are scaled by 255 and rounded. A float image in
  [0, 255] is refused rather than guessed at (divide it by 255, or cast it to uint8).
- anything else (NaN, empty batch, mixed sizes, other channel counts) raises one
  :class:`mmkit.errors.InputError` naming the problem.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.color import rgb2hsv
from skimage.feature import hog, local_binary_pattern
from tqdm.auto import tqdm

from mmkit.data.images import CHANNELS, check_images, to_rgb_uint8  # noqa: F401 - re-export
from mmkit.errors import InputError


def _as_batch(images: np.ndarray) -> np.ndarray:
    return check_images(images, name="images")


def colour_histogram(images: np.ndarray, bins: tuple[int, int, int] = (12, 4, 4)) -> np.ndarray:
    """Joint HSV colour histogram per image, L1-normalised: float32 [N, prod(bins)].

    Args:
        images: uint8 [N, H, W, 3] RGB, or anything :func:`to_rgb_uint8` converts.
        bins: number of hue, saturation and value bins.
    """
    images = _as_batch(images)
    hsv = rgb2hsv(images)  # works on the whole batch, values in [0, 1]
    idx = np.zeros(hsv.shape[:3], np.int64)
    for c, b in enumerate(bins):
        idx = idx * b + np.minimum((hsv[..., c] * b).astype(np.int64), b - 1)
    n_bins = int(np.prod(bins))
    flat = idx.reshape(len(images), -1) + (np.arange(len(images)) * n_bins)[:, None]
    hist = np.bincount(flat.ravel(), minlength=len(images) * n_bins).reshape(len(images), n_bins)
    return (hist / hist.sum(1, keepdims=True)).astype(np.float32)


def hog_features(images: np.ndarray, pixels_per_cell: int = 8, orientations: int = 9,
                 progress: bool = True) -> np.ndarray:
    """HOG descriptor of each (grey) image: float32 [N, D].

    ``D`` = (H/ppc - 1) * (W/ppc - 1) * 4 * orientations with 2x2-cell blocks (1,764 for 64 px).
    """
    images = _as_batch(images)
    grey = images.astype(np.float32).mean(-1)
    feats = [hog(g, orientations=orientations, pixels_per_cell=(pixels_per_cell,) * 2,
                 cells_per_block=(2, 2), block_norm="L2-Hys", feature_vector=True)
             for g in tqdm(grey, desc="HOG", leave=False, disable=not progress or len(grey) < 500)]
    return np.asarray(feats, dtype=np.float32)


def lbp_histogram(images: np.ndarray, scales: tuple[tuple[int, int], ...] = ((8, 1), (16, 2))
                  ) -> np.ndarray:
    """Texture: histograms of uniform local binary patterns (LBP) of the grey image, one per
    (points, radius) scale, each L1-normalised: float32 [N, sum(P + 2)] (28 by default)."""
    images = _as_batch(images)
    out = []
    for g in np.rint(images.astype(np.float32).mean(-1)).astype(np.uint8):  # LBP wants integers
        parts = []
        for p, r in scales:
            codes = local_binary_pattern(g, p, r, method="uniform").astype(np.int64)
            hist = np.bincount(codes.ravel(), minlength=p + 2)
            parts.append(hist / hist.sum())
        out.append(np.concatenate(parts))
    return np.asarray(out, dtype=np.float32)


def orientation_histogram(images: np.ndarray, orientations: int = 12,
                          cells: tuple[int, ...] = (4, 8)) -> np.ndarray:
    """Shape: HOG cell histograms averaged over the whole image (position-invariant), at
    several cell sizes: float32 [N, orientations * len(cells)]."""
    images = _as_batch(images)
    out = []
    for g in images.astype(np.float32).mean(-1):
        parts = [hog(g, orientations=orientations, pixels_per_cell=(c, c), cells_per_block=(1, 1),
                     feature_vector=False).reshape(-1, orientations).mean(0) for c in cells]
        out.append(np.concatenate(parts))
    return np.asarray(out, dtype=np.float32)


def handcrafted_visual(images: np.ndarray, progress: bool = True) -> np.ndarray:
    """The baseline's image descriptor: colour histogram (square-rooted, "Hellinger"), LBP
    texture histogram (square-rooted) and pooled HOG orientations, each block L2-normalised:
    float32 [N, 192 + 28 + 24].

    All three blocks ignore *where* things are, as the world's classes do. (The grid HOG of
    :func:`hog_features` is position-specific: fine for aligned objects, poor here.)
    """
    images = _as_batch(images)
    blocks = []
    for start in tqdm(range(0, len(images), 256), desc="visual features", leave=False,
                      disable=not progress or len(images) < 512):
        chunk = images[start:start + 256]
        blocks.append(np.concatenate(
            [_l2(np.sqrt(colour_histogram(chunk))), _l2(np.sqrt(lbp_histogram(chunk))),
             _l2(orientation_histogram(chunk))], axis=1))
    return np.concatenate(blocks).astype(np.float32)


def spatial_pyramid(images: np.ndarray, levels: Sequence[int] = (1, 2, 4),
                    bins: tuple[int, int, int] = (8, 3, 3)) -> np.ndarray:
    """Layout: colour histograms of the cells of a spatial pyramid: float32
    [N, prod(bins) * sum(g * g for g in levels)] (1,512 by default).

    Level ``g`` cuts the image into a ``g x g`` grid; cell ``(r, c)`` covers rows
    ``r * H // g : (r + 1) * H // g`` and columns ``c * W // g : (c + 1) * W // g``. Each cell
    gets its own L1-normalised :func:`colour_histogram` (so a cell counts the same whatever its
    size). Blocks are ordered level by level, cells row-major within a level. Level 1 alone is
    the global colour histogram; finer levels say *where* each colour is (Lazebnik et al.,
    2006, with colour instead of visual words).
    """
    images = _as_batch(images)
    n, h, w, _ = images.shape
    levels = [int(g) for g in levels]
    if not levels or min(levels) < 1 or max(levels) > min(h, w):
        raise InputError(f"spatial_pyramid: levels must be integers in 1..{min(h, w)}, got "
                         f"{list(levels)}")
    parts = []
    for g in levels:
        for r in range(g):
            for c in range(g):
                cell = images[:, r * h // g:(r + 1) * h // g, c * w // g:(c + 1) * w // g]
                parts.append(colour_histogram(cell, bins))
    return np.concatenate(parts, axis=1).astype(np.float32)


def hellinger_l2(x: np.ndarray) -> np.ndarray:
    """Square root (the Hellinger map for histograms), then L2-normalise each row:
    float32 [N, D] -> float32 [N, D]. Inner products of the results are cosine
    similarities of the square-rooted histograms."""
    return _l2(np.sqrt(np.maximum(np.asarray(x, dtype=np.float32), 0)))


def _l2(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
