"""Image input conversion (to_rgb_uint8), spatial pyramids and the nb01 exercise checkers,
against naive references and scikit-image."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest
from skimage.color import rgba2rgb

from mmkit.errors import InputError
from mmkit.exercises import nb01
from mmkit.features.visual import (colour_histogram, handcrafted_visual, hellinger_l2,
                                   spatial_pyramid, to_rgb_uint8)

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)


# ------------------------------------------------------------------ to_rgb_uint8
def test_uint8_rgb_batch_passes_through_uncopied():
    assert to_rgb_uint8(RGB) is RGB
    one = to_rgb_uint8(RGB[0])
    assert one.shape == (1, 6, 5, 3) and np.array_equal(one[0], RGB[0])


def test_grey_images_become_rgb():
    grey = RGB[..., 0]
    for given in (grey[0], grey[0][..., None], grey[..., None]):
        out = to_rgb_uint8(given)
        assert out.dtype == np.uint8 and out.shape[-1] == 3
        assert all(np.array_equal(out[..., c], out[..., 0]) for c in range(3))
    assert np.array_equal(to_rgb_uint8(grey[..., None])[..., 1], grey)


def test_rgba_is_composited_over_white_like_skimage():
    rgba = RNG.integers(0, 256, (3, 7, 4, 4), dtype=np.uint8)
    got = to_rgb_uint8(rgba).astype(int)
    for n in range(3):
        ref = rgba2rgb(rgba[n], background=(1, 1, 1))  # float [0, 1]
        assert np.abs(got[n] - ref * 255).max() <= 0.51
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert np.array_equal(to_rgb_uint8(opaque), rgba[..., :3])


def test_uint16_bool_and_float_scaling():
    x16 = RNG.integers(0, 65536, (2, 4, 4, 3)).astype(np.uint16)
    x16[0, 0, 0] = (0, 65535, 257 * 7 + 129)
    got = to_rgb_uint8(x16)
    assert np.array_equal(got, np.floor(x16 / 257.0 + 0.5).astype(np.uint8))
    assert tuple(got[0, 0, 0]) == (0, 255, 8)
    assert np.array_equal(to_rgb_uint8(np.eye(3, dtype=bool))[0, ..., 0],
                          np.eye(3, dtype=np.uint8) * 255)
    f = RGB / 255.0
    assert np.array_equal(to_rgb_uint8(f), RGB)
    assert np.array_equal(to_rgb_uint8(f.astype(np.float32)), RGB)
    assert np.array_equal(to_rgb_uint8(RGB.astype(np.int64)), RGB)


@pytest.mark.parametrize("bad, message", [
    (RGB.astype(np.float32), r"float images must lie in \[0, 1\].*divide"),
    (np.full((2, 2, 3), np.nan), "NaN"),
    (np.full((2, 2, 3), -3, np.int32), r"0\.\.255"),
    (np.zeros((2, 8, 8)), r"\[N, H, W, 3\].*\[N, H, W, 1\]"),
    (np.zeros((2, 3, 8, 8), np.uint8), "channels-first"),
    (np.zeros((2, 8, 8, 2), np.uint8), r"\[N, H, W, 3\]"),
    (np.zeros((1, 2, 8, 8, 3), np.uint8), r"got shape \(1, 2, 8, 8, 3\)"),
    (np.zeros(5, np.uint8), "got shape"),
    (np.zeros((0, 8, 8, 3), np.uint8), "empty"),
    ([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)], "different shapes"),
    ([], "empty list"),
    (np.array([["a"]], dtype=object), "numeric"),
    (np.zeros((2, 2, 3), np.complex64), "complex"),
])
def test_bad_images_give_one_clear_error(bad, message):
    with pytest.raises(InputError, match=message) as info:
        to_rgb_uint8(bad)
    assert "\n" not in str(info.value)


def test_every_handcrafted_entry_point_converts_the_same_way():
    grey = RGB[..., :1]
    assert np.array_equal(colour_histogram(grey), colour_histogram(np.repeat(grey, 3, -1)))
    assert np.array_equal(spatial_pyramid((RGB / 255.0), levels=(1, 2)),
                          spatial_pyramid(RGB, levels=(1, 2)))
    big = RNG.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    img16 = big.astype(np.uint16) * 257
    assert np.array_equal(handcrafted_visual(img16, progress=False),
                          handcrafted_visual(big, progress=False))
    with pytest.raises(InputError, match="float images"):
        handcrafted_visual(big * 1.0)


# ------------------------------------------------------------------ spatial pyramid
def _naive_cell_histogram(img: np.ndarray, bins) -> np.ndarray:
    """Per-pixel colorsys HSV binning of one uint8 [h, w, 3] cell, L1-normalised."""
    hist = np.zeros(int(np.prod(bins)))
    for px in img.reshape(-1, 3) / 255.0:
        idx = 0
        for value, b in zip(colorsys.rgb_to_hsv(*px), bins):
            idx = idx * b + min(int(value * b), b - 1)
        hist[idx] += 1
    return hist / hist.sum()


def test_spatial_pyramid_matches_naive_cells():
    imgs = RNG.integers(0, 256, (2, 9, 7, 3), dtype=np.uint8)
    bins, levels = (4, 2, 2), (1, 2, 3)
    got = spatial_pyramid(imgs, levels, bins)
    assert got.shape == (2, 16 * (1 + 4 + 9)) and got.dtype == np.float32
    for n in range(2):
        expect = []
        for g in levels:
            for r in range(g):
                for c in range(g):
                    rows = slice(r * 9 // g, (r + 1) * 9 // g)
                    cols = slice(c * 7 // g, (c + 1) * 7 // g)
                    expect.append(_naive_cell_histogram(imgs[n, rows, cols], bins))
        assert np.allclose(got[n], np.concatenate(expect), atol=1e-6)


def test_spatial_pyramid_sees_where_colours_are():
    left = np.zeros((1, 8, 8, 3), np.uint8)
    left[:, :, :4] = (255, 0, 0)
    right = left[:, :, ::-1].copy()
    assert np.array_equal(spatial_pyramid(left, (1,)), spatial_pyramid(right, (1,)))
    assert not np.array_equal(spatial_pyramid(left, (2,)), spatial_pyramid(right, (2,)))
    for bad in ((), (0,), (9,)):
        with pytest.raises(InputError, match="levels"):
            spatial_pyramid(left, bad)


def test_hellinger_l2():
    x = RNG.random((4, 6)).astype(np.float32)
    got = hellinger_l2(x)
    naive = np.array([np.sqrt(r) / np.sqrt(r.sum()) for r in x])
    assert np.allclose(got, naive, atol=1e-6)


# ------------------------------------------------------------------ exercise checkers
def test_check_cell_histogram_against_naive_answer():
    img = RNG.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    right = _naive_cell_histogram(img[6:12, 0:6], (8, 3, 3))
    assert nb01.check_cell_histogram(img, 2, 1, 0, None).correct is False
    assert nb01.check_cell_histogram(img, 2, 1, 0, right)
    wrong_cell = _naive_cell_histogram(img[0:6, 6:12], (8, 3, 3))
    fb = nb01.check_cell_histogram(img, 2, 1, 0, wrong_cell)
    assert not fb and "rows 6:12" in fb.message
    fb = nb01.check_cell_histogram(img, 2, 1, 0, right * 36)
    assert not fb and "L1" in fb.message
    assert "72 bins" in nb01.check_cell_histogram(img, 2, 1, 0, right[:10]).message


def test_check_se_parameters_against_module_count():
    from mmkit.features.visual_cnn import SqueezeExcite

    for c, r in ((96, 8), (64, 4), (10, 16)):
        n = sum(p.numel() for p in SqueezeExcite(c, r).parameters())
        assert nb01.check_se_parameters(c, r, n)
        assert not nb01.check_se_parameters(c, r, n + 1)
    hidden = 96 // 8
    assert "biases" in nb01.check_se_parameters(96, 8, 2 * 96 * hidden).message
    assert "whole number" in nb01.check_se_parameters(96, 8, 3.5).message
    assert not nb01.check_se_parameters(96, 8, None)


def _naive_ap(scores_row: np.ndarray, pos_row: np.ndarray) -> float:
    order = sorted(range(len(scores_row)), key=lambda j: (-scores_row[j], j))
    hits, total = 0, 0.0
    for rank, j in enumerate(order, start=1):
        if pos_row[j]:
            hits += 1
            total += hits / rank
    return total / max(1, pos_row.sum())


def test_check_style_map_against_naive_loop():
    labels = RNG.integers(0, 4, 30)
    styles = RNG.integers(0, 3, 30)
    scores = RNG.random((30, 30)).astype(np.float32)
    np.fill_diagonal(scores, -np.inf)
    pos = labels[:, None] == labels[None, :]
    np.fill_diagonal(pos, False)
    sketch = [_naive_ap(scores[q], pos[q]) for q in range(30) if styles[q] == 1]
    overall = [_naive_ap(scores[q], pos[q]) for q in range(30)]
    assert nb01.check_style_map(scores, pos, styles, 1, float(np.mean(sketch)))
    fb = nb01.check_style_map(scores, pos, styles, 1, float(np.mean(overall)))
    assert not fb and "all queries" in fb.message
    assert not nb01.check_style_map(scores, pos, styles, 1, float(np.mean(sketch)) + 0.01)
    assert "one number" in nb01.check_style_map(scores, pos, styles, 1, "x").message
    assert not nb01.check_style_map(scores, pos, styles, 1, None)
