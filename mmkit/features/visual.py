"""Handcrafted visual features: colour histograms and HOG (scikit-image).

These are the classic baseline descriptors: colour says *what colour*, HOG (histograms of
oriented gradients) says *what shape and texture*. Neither knows anything about words.
"""
from __future__ import annotations

import numpy as np
from skimage.color import rgb2hsv
from skimage.feature import hog
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


def handcrafted_visual(images: np.ndarray, progress: bool = True) -> np.ndarray:
    """Colour histogram (square-rooted, "Hellinger") next to HOG, each block L2-normalised:
    float32 [N, 192 + D_hog]."""
    colour = np.sqrt(colour_histogram(images))
    shape = hog_features(images, progress=progress)
    blocks = [b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-12) for b in (colour, shape)]
    return np.concatenate(blocks, axis=1).astype(np.float32)
