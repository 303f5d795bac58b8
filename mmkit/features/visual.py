"""Handcrafted visual features: colour histograms, LBP texture and HOG (scikit-image).

These are the classic baseline descriptors: colour says *what colour*, local binary patterns
say *what texture*, HOG (histograms of oriented gradients) says *what shape*. None of them
knows anything about words.
"""
from __future__ import annotations

import numpy as np
from skimage.color import rgb2hsv
from skimage.feature import hog, local_binary_pattern
from tqdm.auto import tqdm


def _as_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [N, H, W, 3] RGB, got shape {images.shape}")
    return images


def colour_histogram(images: np.ndarray, bins: tuple[int, int, int] = (12, 4, 4)) -> np.ndarray:
    """Joint HSV colour histogram per image, L1-normalised: float32 [N, prod(bins)].

    Args:
        images: uint8 or float [N, H, W, 3] RGB (a single [H, W, 3] image is accepted).
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


def _l2(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
