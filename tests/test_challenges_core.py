"""The challenges' shared parts: styled re-rendering, the augmentation, the class-retrieval
score (against a naive loop and scikit-learn), the config checks, the samplers and the loss."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from mmkit.challenges.data import render_styled, scene_set, style_augment, style_index
from mmkit.challenges.evaluate import class_retrieval, per_class
from mmkit.challenges.model import CLASS_ATTRIBUTES, N_ATTRIBUTES, N_CLASSES, ChallengeNet
from mmkit.challenges.training import (ChallengeConfig, build_challenge, challenge_spec,
                                       class_prior, sample_batches, step_loss)
from mmkit.data import World, WorldConfig
from mmkit.errors import InputError


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldConfig(n=60, seed=3))


def test_restyled_scene_equals_the_worlds_own_rendering(world):
    idx = np.arange(30)
    for s in range(3):
        imgs = render_styled(world, idx, s)
        own = world.styles[idx] == s
        assert own.any()
        np.testing.assert_array_equal(imgs[own], world.images[idx][own])
        assert not np.array_equal(imgs[~own], world.images[idx][~own])


def test_restyling_keeps_the_scene_and_changes_the_pixels(world):
    photo = render_styled(world, [5], "photo")[0].astype(float)
    sketch = render_styled(world, [5], "sketch")[0].astype(float)
    assert np.abs(photo - sketch).mean() > 20          # a different drawing ...
    sset = scene_set(world, [5, 6], "painting")
    assert sset.labels.tolist() == world.labels[[5, 6]].tolist()   # ... of the same scene
    assert sset.styles.tolist() == [2, 2]


@pytest.mark.parametrize("bad", ["cartoon", 3, -1, 1.5, True])
def test_unknown_style_is_one_line(world, bad):
    with pytest.raises(InputError, match="style"):
        style_index(bad)
    if not isinstance(bad, str):
        with pytest.raises(InputError, match="style"):
            world.render(0, style=bad)


def test_style_augment_is_deterministic_and_changes_about_p_of_the_images(world):
    imgs = world.images[:40]
    a = style_augment(imgs, np.random.default_rng(7), p=0.5)
    b = style_augment(imgs, np.random.default_rng(7), p=0.5)
    np.testing.assert_array_equal(a, b)
    changed = (a != imgs).reshape(40, -1).any(1).mean()
    assert 0.25 < changed < 0.75
    np.testing.assert_array_equal(style_augment(imgs, np.random.default_rng(0), p=0.0), imgs)
    with pytest.raises(InputError, match="uint8"):
        style_augment(imgs.astype(np.float32), np.random.default_rng(0))


def _naive(q, ql, g, gl, qs=None, gs=None):
    aps, hits = [], []
    for i in range(len(q)):
        keep = np.ones(len(g), bool) if qs is None else gs != qs[i]
        s = g[keep] @ q[i]
        rel = gl[keep] == ql[i]
        if not rel.any():
            continue
        order = np.argsort(-s, kind="stable")
        hits.append(float(rel[order[0]]))
        aps.append(average_precision_score(rel, s))
    return np.array(aps), np.array(hits)


def test_class_retrieval_matches_a_naive_loop_and_sklearn():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(40, 8)).astype(np.float32)
    g = rng.normal(size=(50, 8)).astype(np.float32)
    ql, gl = rng.integers(5, size=40), rng.integers(5, size=50)
    qs, gs = rng.integers(30, size=40), rng.integers(30, size=50)
    run = class_retrieval(q, ql, g, gl, qs, gs)
    aps, hits = _naive(q, ql, g, gl, qs, gs)
    np.testing.assert_allclose(run.ap, aps, atol=1e-6)
    np.testing.assert_array_equal(run.hit1, hits)
    run2 = class_retrieval(q, ql, g, gl)
    aps2, _ = _naive(q, ql, g, gl)
    np.testing.assert_allclose(run2.ap, aps2, atol=1e-6)
    pc = per_class(run, 6)
    assert np.isnan(pc[5])
    np.testing.assert_allclose(pc[0], run.ap[run.labels == 0].mean())


def test_class_retrieval_leaves_out_the_queries_own_scene():
    x = np.eye(3, dtype=np.float32)
    # query 0's only same-class item is its own scene: it is dropped, not counted as a hit
    run = class_retrieval(x, np.array([0, 1, 1]), x, np.array([0, 1, 1]),
                          np.arange(3), np.arange(3))
    assert run.labels.tolist() == [1, 1]
    with pytest.raises(InputError, match="both"):
        class_retrieval(x, np.zeros(3), x, np.zeros(3), np.arange(3), None)
    with pytest.raises(InputError, match="share D"):
        class_retrieval(x, np.zeros(3), x[:, :2], np.zeros(3))


@pytest.mark.parametrize("change, message", [
    ({"retrieval": "arcface"}, "retrieval must be one of"),
    ({"sampler": "random"}, "sampler must be one of"),
    ({"style_probs": [0.5, 0.5, 0.5]}, "style_probs"),
    ({"style_adversary": 1.0}, "needs target_styles"),
    ({"world": {"n": 100, "seed": 0}}, "evaluation world"),
    ({"imbalance": 0.5}, "imbalance"),
    ({"reweight": -1}, "reweight"),
])
def test_config_problems_are_one_line(change, message):
    with pytest.raises(InputError, match=message) as info:
        ChallengeConfig.from_dict({**ChallengeConfig().to_dict(), **change})
    assert "\n" not in str(info.value)


def test_config_round_trips_and_specs_validate_at_definition():
    cfg = ChallengeConfig(imbalance=10, target_styles=(0, 0.5, 0.5), style_adversary=0.3)
    assert ChallengeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError):
        challenge_spec("x", "bad", sampler="nope")


def test_samplers():
    labels = np.repeat(np.arange(4), [100, 30, 10, 2])
    rng = np.random.default_rng(0)
    uni = sample_batches(labels, 16, 20, "uniform", rng)
    seen = np.concatenate(uni)
    assert len(seen) == 320 and np.bincount(seen[:142], minlength=142).max() == 1  # an epoch
    bal = np.concatenate(sample_batches(labels, 64, 50, "balanced", np.random.default_rng(1)))
    counts = np.bincount(labels[bal], minlength=4)
    assert counts.min() > 0.85 * counts.mean()          # flat over classes, not over scenes
    prior = class_prior(labels)
    assert prior.shape == (N_CLASSES,) and abs(prior.sum() - 1) < 1e-12
    assert prior[0] / prior[3] == pytest.approx(50)


def test_logit_adjusted_loss_is_cross_entropy_of_shifted_logits():
    torch.manual_seed(0)
    cfg = ChallengeConfig(logit_adjust=1.5, width=4, dim=8)
    model = build_challenge(cfg).eval()
    x = torch.randn(6, 3, 64, 64)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    prior = torch.softmax(torch.randn(N_CLASSES), 0)
    ones = torch.ones(6)
    attrs = torch.zeros(6, N_ATTRIBUTES)
    loss, parts = step_loss(model, cfg, x, y, attrs, ones, prior.log(), None,
                            torch.zeros(6, dtype=torch.long), 0.0)
    with torch.no_grad():
        z = torch.nn.functional.normalize(model.project(model.features(x)), dim=1)
        p = torch.nn.functional.normalize(model.proxies, dim=1)
        logits = z @ p.T / cfg.temperature + 1.5 * prior.log()
        expect = torch.nn.functional.cross_entropy(logits, y)
    assert float(loss.detach()) == pytest.approx(float(expect), rel=1e-5)
    assert set(parts) == {"retrieval"}


def test_model_shapes_and_attribute_embedding():
    imgs = np.zeros((3, 64, 64, 3), np.uint8)
    plain = ChallengeNet(width=4, dim=8)
    z = plain.embed_images(imgs)
    assert z.shape == (3, 8) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    aware = ChallengeNet(width=4, dim=8, embed_attributes=1.0)
    assert CLASS_ATTRIBUTES == 22
    assert aware.embed_images(imgs).shape == (3, 8 + CLASS_ATTRIBUTES)
    assert plain.predict(imgs, "style").shape == (3, 3)
    assert plain.predict(imgs, "proxy").shape == (3, N_CLASSES)
    with pytest.raises(InputError):
        plain.embed_images(np.zeros((3, 64, 64), np.uint8))
