"""Exercises of notebook 01 (visual features)."""
from __future__ import annotations

import numpy as np
from skimage.color import rgb2hsv

from mmkit.exercises import Feedback, close, not_answered
from mmkit.features.visual import spatial_pyramid, to_rgb_uint8
from mmkit.metrics import average_precision
from mmkit.validate import is_integer


def check_cell_histogram(image: np.ndarray, level: int, row: int, col: int, answer,
                         bins: tuple[int, int, int] = (8, 3, 3)) -> Feedback:
    """Exercise 1: the colour histogram of cell (``row``, ``col``) of level ``level`` of the
    spatial pyramid of ``image`` (uint8 [H, W, 3]): an array [prod(bins)] summing to 1."""

    if answer is None:
        return not_answered()
    img = to_rgb_uint8(image)
    n_bins = int(np.prod(bins))
    try:
        got = np.asarray(answer, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return Feedback(False, f"answer with an array of {n_bins} numbers, got {type(answer).__name__}")
    if got.shape != (n_bins,):
        return Feedback(False, f"the histogram has {n_bins} bins (hue x saturation x value = "
                               f"{' x '.join(map(str, bins))}), your answer has {got.size}")
    feats = spatial_pyramid(img, levels=(level,), bins=bins)[0]
    cell = row * level + col
    expected = feats[cell * n_bins:(cell + 1) * n_bins].astype(np.float64)
    if np.allclose(got, expected, atol=1e-6):
        return Feedback(True, f"cell ({row}, {col}) of the {level} x {level} grid: "
                              f"{int((expected > 0).sum())} of {n_bins} bins are used")
    if not np.isclose(got.sum(), 1.0, atol=1e-4):
        return Feedback(False, f"your histogram sums to {got.sum():.4g}: divide the counts by "
                               "the number of pixels in the cell (L1 normalisation)")
    h, w = img.shape[1:3]
    return Feedback(False, f"the cell covers rows {row * h // level}:{(row + 1) * h // level} and "
                           f"columns {col * w // level}:{(col + 1) * w // level}; bin = "
                           "(h_bin * S + s_bin) * V + v_bin with HSV values in [0, 1]")


def check_se_parameters(channels: int, reduction: int, answer) -> Feedback:
    """Exercise 2: how many trainable parameters has a squeeze-and-excitation block on
    ``channels`` channels with bottleneck ``channels // reduction`` (both layers with
    biases)?"""
    if answer is None:
        return not_answered()
    if not is_integer(answer):
        return Feedback(False, f"answer with a whole number of parameters, got {answer!r}")
    hidden = max(1, channels // reduction)
    expected = channels * hidden + hidden + hidden * channels + channels
    if int(answer) == expected:
        return Feedback(True, f"{expected} parameters: two small linear layers "
                              f"({channels} -> {hidden} -> {channels}); the block costs little "
                              "next to a 3x3 convolution on the same channels "
                              f"({9 * channels * channels})")
    if int(answer) == 2 * channels * hidden:
        return Feedback(False, "you counted the weights; add the biases of both layers")
    return Feedback(False, f"squeeze: Linear({channels}, {hidden}); excite: Linear({hidden}, "
                           f"{channels}); count weights and biases")


def check_style_map(scores: np.ndarray, positives: np.ndarray, styles: np.ndarray, style: int,
                    answer) -> Feedback:
    """Exercise 3: the image -> image mAP of the queries of one style (``styles[q] == style``),
    from a score matrix [Q, G] (the query itself scored ``-inf``) and positives bool [Q, G]."""

    if answer is None:
        return not_answered()
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return Feedback(False, f"answer with one number (a mean over queries), got {answer!r}")
    rows = np.asarray(styles) == style
    if not rows.any():
        return Feedback(False, f"no query has style {style}")
    ap = average_precision(np.asarray(scores)[rows], np.asarray(positives)[rows])
    expected = float(ap.mean())
    overall = float(average_precision(scores, positives).mean())
    if close(value, expected, 1e-4):
        return Feedback(True, f"mAP {expected:.4f} over {int(rows.sum())} queries of that style "
                              f"(all queries: {overall:.4f})")
    if close(value, overall, 1e-4):
        return Feedback(False, "that is the mAP over all queries; keep only the rows of "
                               "queries of this style")
    return Feedback(False, "average the per-query average precision "
                           "(mmkit.metrics.average_precision) over the rows of this style")


# ------------------------------------------------------------------ worked solutions
def solution_cell_histogram(image: np.ndarray, level: int = 2, row: int = 1, col: int = 0,
                            bins: tuple[int, int, int] = (8, 3, 3)) -> np.ndarray:
    """Exercise 1. Call with ``images[k]`` (the defaults are the bottom-left cell of the
    2 x 2 level). Cut the cell, convert it to HSV in [0, 1], give every pixel its bin
    (h_bin * S + s_bin) * V + v_bin and count with np.bincount, then divide by the pixels."""
    h, w = image.shape[:2]
    cell = image[row * h // level:(row + 1) * h // level, col * w // level:(col + 1) * w // level]
    hsv = rgb2hsv(cell)                                            # [h, w, 3] in [0, 1]
    H, S, V = bins
    h_bin = np.minimum((hsv[..., 0] * H).astype(int), H - 1)      # 1.0 goes to the last bin
    s_bin = np.minimum((hsv[..., 1] * S).astype(int), S - 1)
    v_bin = np.minimum((hsv[..., 2] * V).astype(int), V - 1)
    counts = np.bincount(((h_bin * S + s_bin) * V + v_bin).ravel(), minlength=H * S * V)
    return counts / counts.sum()


def solution_se_parameters(channels: int = 96, reduction: int = 8) -> int:
    """Exercise 2. Squeeze: Linear(C, C // r); excite: Linear(C // r, C); each has a weight
    matrix and a bias vector. (Check: ``sum(p.numel() for p in VC.SqueezeExcite(96,
    8).parameters())``; a 3 x 3 convolution 96 -> 96 has 9 * 96 * 96 = 82,944 weights.)"""
    hidden = channels // reduction
    squeeze = channels * hidden + hidden
    excite = hidden * channels + channels
    return squeeze + excite


def solution_style_map(scores: np.ndarray, positives: np.ndarray, styles: np.ndarray,
                       style: int) -> float:
    """Exercise 3. Call with ``retrieval_scores(handcrafted["baseline: colour + LBP + pooled
    HOG"]), positives, styles, STYLES.index("sketch")``: keep the rows of the sketch queries,
    average precision per query, then the mean."""
    rows = np.asarray(styles) == style
    return float(average_precision(scores[rows], positives[rows]).mean())


SOLUTIONS = {1: solution_cell_histogram, 2: solution_se_parameters, 3: solution_style_map}
