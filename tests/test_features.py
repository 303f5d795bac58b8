"""Handcrafted features, TF-IDF and CCA against naive references and scikit-learn."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest

from mmkit.encoders import CCA
from mmkit.features.audio import clip_features
from mmkit.features.text import TfidfEncoder
from mmkit.features.visual import (colour_histogram, handcrafted_visual, hog_features,
                                   lbp_histogram, orientation_histogram)


def test_colour_histogram_matches_naive_loop():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)
    bins = (6, 3, 2)
    got = colour_histogram(imgs, bins)
    for n, img in enumerate(imgs):
        expect = np.zeros(np.prod(bins))
        for px in img.reshape(-1, 3) / 255.0:
            hsv = colorsys.rgb_to_hsv(*px)
            idx = 0
            for value, b in zip(hsv, bins):
                idx = idx * b + min(int(value * b), b - 1)
            expect[idx] += 1
        assert np.allclose(got[n], expect / expect.sum(), atol=1e-6)


def test_visual_features_shapes_and_errors(small_world):
    imgs = small_world.images[:4]
    assert hog_features(imgs).shape == (4, 1764)
    assert np.allclose(lbp_histogram(imgs).sum(1), 2.0)
    v = handcrafted_visual(imgs)
    assert v.shape == (4, 192 + 28 + 24) and np.isfinite(v).all()
    assert np.allclose(np.linalg.norm(v, axis=1), np.sqrt(3), atol=1e-4)
    assert np.array_equal(handcrafted_visual(imgs[0]), v[:1])
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        handcrafted_visual(np.zeros((2, 8, 8)))


def test_orientation_histogram_follows_edges():
    img = np.zeros((1, 32, 32, 3), np.uint8)
    img[:, :, 16:] = 255                      # one vertical edge
    h = orientation_histogram(img, orientations=4, cells=(8,))[0]
    assert h.argmax() == 0 and h[0] > 3 * h[1:].max()   # horizontal gradient = bin 0


def test_audio_features(small_world):
    f = clip_features(small_world.audio[:5], 16000)
    assert f.shape == (5, 60) and np.isfinite(f).all()
    assert np.allclose(clip_features(small_world.audio[2], 16000), f[2:3], atol=1e-5)
    with pytest.raises(ValueError, match=r"\[N, T\]"):
        clip_features(np.zeros((2, 2, 100)), 16000)


def test_tfidf_encoder():
    enc = TfidfEncoder(min_df=1).fit(["a red circle", "a blue square", "red square"])
    x = enc.transform(["red circle", "zebra"])
    assert x.shape == (2, len(enc.vocabulary))
    assert np.isclose(np.linalg.norm(x[0]), 1.0) and not x[1].any()
    with pytest.raises(ValueError, match="no texts"):
        TfidfEncoder().fit([])


def _paired_views(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3)) * np.array([3.0, 2.0, 1.0])
    x = z @ rng.normal(size=(3, 12)) + 0.5 * rng.normal(size=(n, 12))
    y = z @ rng.normal(size=(3, 9)) + 0.5 * rng.normal(size=(n, 9))
    return x, y


def test_cca_closed_form_agrees_with_sklearn():
    x, y = _paired_views()
    ours = CCA(n_components=3, pca_dims=64, reg=0.0).fit(x, y)
    theirs = CCA(n_components=3, pca_dims=64, solver="sklearn").fit(x, y)
    assert np.allclose(ours.correlations_, theirs.correlations_, atol=2e-3)
    assert (np.diff(ours.correlations_) <= 1e-12).all()
    # the projections span the same subspace (principal angles ~ 0)
    from scipy.linalg import subspace_angles

    po = ours.pca_x_.transform(x) @ ours.a_
    pt = theirs.pca_x_.transform(x) @ theirs.a_
    assert np.cos(subspace_angles(po, pt)).min() > 0.999


def test_cca_embeds_pairs_close_together():
    x, y = _paired_views(seed=1)
    cca = CCA(n_components=3).fit(x[:1500], y[:1500])
    zx, zy = cca.transform_x(x[1500:]), cca.transform_y(y[1500:])
    assert np.allclose(np.linalg.norm(zx, axis=1), 1, atol=1e-5)
    sims = zx @ zy.T
    assert np.mean(sims.argmax(1) == np.arange(len(sims))) > 0.05  # far above chance (0.002)
    assert np.mean(np.diag(sims)) > np.mean(sims) + 0.5


def test_cca_bad_input():
    with pytest.raises(ValueError, match="paired"):
        CCA().fit(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="solver"):
        CCA(solver="magic")
