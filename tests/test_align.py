"""mmkit.align: gradient reversal, the lambda schedule, the ACMR aligner, the cGAN, the probe,
and notebook 06's exercise checkers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmkit.align import (ACMRAligner, ACMR_CONFIG, GradientReversal, STABLE, UNSTABLE,
                         centroid_gap, grad_reverse, grl_lambda, modality_probe, spread,
                         train_aligner, train_cgan)
from mmkit.align.acmr import heldout_diagnostics
from mmkit.align.features import ModalityFeatures
from mmkit.errors import InputError


# ------------------------------------------------------------------ gradient reversal
def test_grl_forward_is_identity_and_backward_flips_and_scales():
    torch.manual_seed(0)
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(5, 3)
    y = grad_reverse(x, 0.7)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.7 * w)
    # the same through the module, against the gradient without the layer
    x2 = x.detach().clone().requires_grad_(True)
    x3 = x.detach().clone().requires_grad_(True)
    layer = GradientReversal(2.5)
    (layer(x2) ** 3).sum().backward()
    (x3 ** 3).sum().backward()
    assert torch.allclose(x2.grad, -2.5 * x3.grad)


def test_grl_zero_lambda_blocks_gradient_and_bad_lambda_is_refused():
    x = torch.ones(3, requires_grad=True)
    grad_reverse(x, 0.0).sum().backward()
    assert torch.equal(x.grad, torch.zeros(3))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="lambda"):
            grad_reverse(x, bad)


def test_grl_gradcheck():
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    # autograd's numerical check cannot see the reversal (forward is the identity), so compare
    # the analytical Jacobian with minus the identity's
    jac = torch.autograd.functional.jacobian(lambda t: grad_reverse(t, 1.3), x)
    assert torch.allclose(jac.reshape(8, 8), -1.3 * torch.eye(8, dtype=torch.float64))


def test_schedule_values():
    assert grl_lambda(0.0) == 0.0
    for p in (0.1, 0.25, 0.5, 1.0):
        assert math.isclose(grl_lambda(p), 2 / (1 + math.exp(-10 * p)) - 1, rel_tol=1e-12)
    assert math.isclose(grl_lambda(0.5), 0.98661429815, rel_tol=1e-9)   # tanh(2.5)
    vals = [grl_lambda(p) for p in np.linspace(0, 1, 11)]
    assert all(b > a for a, b in zip(vals, vals[1:])) and vals[-1] < 1
    assert math.isclose(grl_lambda(0.3, gamma=4), math.tanh(0.6), rel_tol=1e-12)
    with pytest.raises(InputError, match="progress"):
        grl_lambda(1.5)


# ------------------------------------------------------------------ probe
def test_probe_separable_vs_identical():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    assert modality_probe(a, a + np.r_[6.0, np.zeros(7)]) > 0.95   # Bayes: Phi(3) = 0.9987
    b = rng.normal(size=(200, 8))
    assert abs(modality_probe(a, b) - 0.5) < 0.12
    # the gap of L2-normalised rows (mmkit.scoring.modality_gap): scale-free, sqrt(2) between
    # two orthogonal directions
    assert centroid_gap(a, 3.0 * a) == pytest.approx(0.0, abs=1e-12)
    e = np.eye(8)
    assert math.isclose(centroid_gap(np.tile(e[0], (5, 1)), np.tile(2 * e[1], (3, 1))),
                        math.sqrt(2), rel_tol=1e-12)
    with pytest.raises(InputError):
        modality_probe(a, rng.normal(size=(10, 3)))
    with pytest.raises(InputError):
        centroid_gap(a, np.full((3, 8), np.nan))


def test_probe_matches_sklearn_by_hand():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(60, 4)), rng.normal(0.5, 1, size=(60, 4))
    x, y = np.concatenate([a, b]), np.repeat([0, 1], 60)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.5, random_state=3, stratify=y)
    sc = StandardScaler().fit(xtr)
    want = LogisticRegression(max_iter=2000).fit(sc.transform(xtr), ytr).score(sc.transform(xte),
                                                                              yte)
    assert modality_probe(a, b, seed=3) == pytest.approx(want)


# ------------------------------------------------------------------ a tiny world's features
@pytest.fixture(scope="module")
def tiny():
    """Synthetic frozen features with the world's layout: 1,000 scenes of 8 classes, image and
    audio features from the class plus noise, 5 captions each from the class (another
    linear view of it) plus an offset (a built-in modality gap)."""
    rng = np.random.default_rng(0)
    n, per, d = 1000, 5, 128
    labels = rng.integers(8, size=n)
    protos = rng.normal(size=(8, d))
    image = protos[labels] + 0.5 * rng.normal(size=(n, d))
    text = 2.0 * np.repeat(protos[labels], per, 0) @ rng.normal(size=(d, d)) / math.sqrt(d) \
        + 0.5 * rng.normal(size=(n * per, d)) + 3.0
    audio = protos[labels] @ rng.normal(size=(d, d)) / math.sqrt(d) + 0.5 * rng.normal(size=(n, d))
    return ModalityFeatures(image.astype(np.float32), text.astype(np.float32),
                            audio.astype(np.float32), labels.astype(np.int64),
                            np.repeat(np.arange(n), per))


SMALL = {"epochs": 10, "batch_size": 64, "hidden": 64, "dim": 16, "disc_hidden": 32,
         "n_classes": 8, "probe_every": 100}


def test_discriminator_sees_every_modality(tiny):
    """The trainer's discriminator input is exactly the stacked projections of the image, the
    caption and the sound of each scene of the batch, with targets 0, 1, 2 per block."""
    from mmkit.align.acmr import discriminator_batch

    model = ACMRAligner({**ACMR_CONFIG, **SMALL})
    proj_out, disc_in = {}, []
    for m in model.modalities:
        model.proj[m].register_forward_hook(
            lambda mod, i, o, m=m: proj_out.setdefault(m, []).append(o.detach()))
    model.discriminator.register_forward_hook(lambda mod, i, o: disc_in.append(i[0].detach()))
    import mmkit.align.acmr as acmr

    orig = acmr.ACMRAligner
    acmr.ACMRAligner = lambda cfg: model   # observe the trainer's own model
    try:
        train_aligner(tiny, np.arange(128), {**SMALL, "epochs": 1})
    finally:
        acmr.ACMRAligner = orig
    assert len(disc_in) == 2                                   # 128 scenes / batch 64
    for step, x in enumerate(disc_in):
        want = torch.cat([torch.nn.functional.normalize(proj_out[m][step], dim=-1)
                          for m in ("image", "text", "audio")])
        assert x.shape == (3 * 64, SMALL["dim"]) and torch.allclose(x, want)
    z = {m: torch.full((4, 2), float(k)) for k, m in enumerate(("image", "text", "audio"))}
    zall, target = discriminator_batch(z, ("image", "text", "audio"))
    assert torch.equal(zall[:, 0], target.float())             # row k came from modality k
    assert torch.bincount(target).tolist() == [4, 4, 4]
    with pytest.raises(InputError, match="same batch size"):
        discriminator_batch({"image": torch.zeros(3, 2), "text": torch.zeros(2, 2)},
                            ("image", "text"))


def test_learning_rate_is_annealed_as_in_dann(tiny):
    cfg = {**SMALL, "epochs": 3}
    run = train_aligner(tiny, np.arange(128), cfg)
    lr = ACMR_CONFIG["lr"]
    # the last step has progress 1: lr / (1 + 10) ** 0.75
    assert run.history[-1]["lr"] == pytest.approx(lr / 11 ** 0.75)
    assert [h["lr"] for h in run.history] == sorted((h["lr"] for h in run.history), reverse=True)
    flat = train_aligner(tiny, np.arange(128), {**cfg, "lr_decay": False})
    assert all(h["lr"] == lr for h in flat.history)


@pytest.mark.slow
def test_adversary_lowers_probe_accuracy(tiny):
    train, held = np.arange(800), np.arange(800, 1000)
    plain = train_aligner(tiny, train, {**SMALL, "adv_weight": 0.0}, heldout=held)
    adv = train_aligner(tiny, train, {**SMALL, "adv_weight": 1.0}, heldout=held)
    # lambda follows the schedule only with the adversary
    assert plain.history[-1]["lambda"] == 0.0
    assert adv.history[-1]["lambda"] == pytest.approx(grl_lambda(1.0))
    # every loss term is logged; the embedding losses fall
    for key in ("sim", "triplet", "label", "adv", "disc_acc"):
        assert all(np.isfinite(h[key]) for h in adv.history)
    assert adv.history[-1]["sim"] < adv.history[0]["sim"]

    def gap(run):
        zi = run.model.embed("image", tiny.image[held])
        zt = run.model.embed("text", tiny.text[held * 5])
        return modality_probe(zi, zt), centroid_gap(zi, zt)

    (p0, g0), (p1, g1) = gap(plain), gap(adv)
    assert p1 < p0 - 0.15 and g1 < 0.7 * g0
    diag = heldout_diagnostics(adv.model, tiny, held)
    assert 0 <= diag["val_t2i_r1"] <= 1 and diag["probe_acc"] == adv.history[-1]["probe_acc"]
    assert "probe_acc" in adv.history[-1] and "probe_acc" not in adv.history[0]


def test_aligner_is_deterministic_and_refuses_bad_input(tiny):
    a = train_aligner(tiny, np.arange(100), {**SMALL, "epochs": 2})
    b = train_aligner(tiny, np.arange(100), {**SMALL, "epochs": 2})
    assert np.array_equal(a.model.embed("text", tiny.text[:20]),
                          b.model.embed("text", tiny.text[:20]))
    with pytest.raises(InputError, match="unknown config"):
        train_aligner(tiny, np.arange(100), {"nope": 1})
    with pytest.raises(InputError, match="scenes"):
        train_aligner(tiny, np.array([0]), SMALL)
    with pytest.raises(InputError, match=r"\[N, 128\]"):
        a.model.embed("image", np.zeros((3, 5)))
    with pytest.raises(InputError, match="not 'speech'"):
        a.model.project("speech", torch.zeros(1, 128))


# ------------------------------------------------------------------ conditional GAN
GAN_SMALL = {"epochs": 6, "batch_size": 64, "hidden": 64, "noise_dim": 4}


@pytest.mark.slow
def test_cgan_learns_the_pairing_and_logs(tiny):
    caps = np.arange(1000)
    cond, target = tiny.text[caps], tiny.image[tiny.caption_image[caps]]
    held = np.arange(200, 240)
    hc = tiny.text[held * 5]
    run = train_cgan(cond, target, GAN_SMALL, heldout=(hc, tiny.image[held], np.arange(40)))
    assert not run.diverged and len(run.history) == GAN_SMALL["epochs"]
    for key in ("d_loss", "g_loss", "recon", "d_real_acc", "d_fake_acc", "spread", "val_r10"):
        assert np.isfinite(run.history[-1][key])
    assert run.history[-1]["recon"] < run.history[0]["recon"]
    # imagined queries find their own scene's image far more often than chance (10 / 40)
    assert run.history[-1]["val_r10"] > 0.5
    out = run.model.generate(hc[:3], samples=5)
    assert out.shape == (3, 5, 128)
    assert out[:, 0].std() > 0                         # the noise is used
    im = run.model.imagine(hc[:3])
    assert np.allclose(np.linalg.norm(im, axis=1), 1, atol=1e-5)
    # spectral norm on every discriminator layer in the stable recipe, none in the unstable
    assert all(hasattr(m, "parametrizations") for m in run.model.discriminator
               if isinstance(m, torch.nn.Linear))
    bad = train_cgan(cond[:200], target[:200], {**UNSTABLE, **GAN_SMALL, "epochs": 1})
    assert not any(hasattr(m, "parametrizations") for m in bad.model.discriminator
                   if isinstance(m, torch.nn.Linear))
    assert np.array_equal(bad.model.generate(hc[:2], 2)[:, 0], bad.model.generate(hc[:2], 2)[:, 1])


def test_cgan_bad_input():
    with pytest.raises(InputError, match="same N"):
        train_cgan(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(InputError, match="unknown config"):
        train_cgan(np.zeros((5, 3)), np.zeros((5, 3)), {"lr": 1})
    run = train_cgan(np.random.default_rng(0).normal(size=(8, 3)),
                     np.random.default_rng(1).normal(size=(8, 2)), {**GAN_SMALL, "epochs": 1})
    with pytest.raises(InputError, match="conditions"):
        run.model.generate(np.zeros((2, 4)))
    with pytest.raises(InputError, match="NaN"):
        run.model.target_space(np.full((2, 2), np.nan))


def test_spread_against_numpy():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(50, 6))
    assert spread(real, real) == pytest.approx(1.0)
    assert spread(np.tile(real[:1], (50, 1)), real) == pytest.approx(0.0, abs=1e-12)
    assert spread(0.5 * real, real) == pytest.approx(0.5)


# ------------------------------------------------------------------ protocol and feature keys
def test_retrieval_table_maps_ids_and_fraction_of_ceiling(small_world):
    from mmkit.align import protocol

    w = small_world
    images = w.indices("test")
    n = len(w.labels)
    eye = np.eye(n, dtype=np.float32)
    # perfect vectors: every caption and sound is its own scene's one-hot
    vec = {"image": eye, "text": eye[w.caption_image], "audio": eye}
    table = protocol.retrieval_table(w, images, vec, ("text->image", "image->text"))
    assert table["text->image"]["R@1"] == 1.0 and table["image->text"]["R@1"] == 1.0
    # shuffled captions: R@1 falls to about chance
    rng = np.random.default_rng(0)
    bad = protocol.retrieval_table(w, images, {**vec, "text": eye[rng.permutation(
        w.caption_image)]}, ("text->image",))
    assert bad["text->image"]["R@1"] < 0.5
    ceiling = {"text->image": {k: 0.5 for k in protocol.METRICS}}
    md = protocol.format_table({"perfect": {"text->image": table["text->image"]}}, ceiling)
    assert "| perfect | text->image | 1.000 (2.00) |" in md and "| ceiling |" in md
    with pytest.raises(InputError, match="'audio' vectors"):
        protocol.retrieval_table(w, images, {"image": eye, "audio": eye[:3]}, ("audio->image",))
    with pytest.raises(InputError, match="needs 'text'"):
        protocol.retrieval_table(w, images, {"image": eye}, ("text->image",))


def test_scene_key_renders_nothing_and_follows_the_scenes():
    from mmkit.align.features import scene_key
    from mmkit.data import World

    a, b, c = World(n=12, seed=7), World(n=12, seed=7), World(n=12, seed=8)
    ka = scene_key(a, "image")
    assert "images" not in a.__dict__ and "audio" not in a.__dict__   # nothing rendered
    assert ka == scene_key(b, "image") != scene_key(c, "image")
    assert scene_key(a, "audio") != ka
    b.tint[0, 0, 0] += 0.5                      # a rendering parameter changes the key
    assert scene_key(b, "image") != ka
    with pytest.raises(InputError, match="modality"):
        scene_key(a, "text")
