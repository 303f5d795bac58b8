"""Class imbalance (notebook 10, section 2): the training world's counts, the head / middle /
tail grouping, the shared trainer's samplers and imbalance losses, the checkpoints and the
post-hoc logit adjustment exercise."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import balanced_accuracy_score
from torch.nn import functional as F

from mmkit import checkpoints
from mmkit.challenges import imbalance as I
from mmkit.challenges.data import SceneSet, scene_set
from mmkit.challenges.evaluate import class_retrieval, per_class
from mmkit.challenges.model import N_ATTRIBUTES, ChallengeNet
from mmkit.challenges.training import (ChallengeConfig, class_prior, sample_batches,
                                       step_loss)
from mmkit.data import World, WorldConfig
from mmkit.data.world import class_frequencies
from mmkit.errors import InputError
from mmkit.exercises.nb10 import imbalance as ex


# ------------------------------------------------------------------ the training world
@pytest.mark.parametrize("imbalance", [1.0, 10.0, 100.0])
def test_training_labels_match_the_world(imbalance):
    world = World(WorldConfig(n=300, seed=1, imbalance=imbalance), progress=False)
    seen = np.sort(np.concatenate([world.indices(s) for s in ("train", "val", "test")]))
    want = np.bincount(world.labels[seen], minlength=64)
    np.testing.assert_array_equal(I.training_counts(imbalance, n=300, seed=1), want)
    np.testing.assert_allclose(I.training_prior(imbalance, n=300, seed=1),
                               class_prior(world.labels[seen].astype(np.int64)))


def test_training_counts_follow_the_designed_profile():
    counts = I.training_counts(100.0)
    freq = class_frequencies(64, 100.0, I.TRAIN_SEED)
    seen = counts > 0
    # the frequencies' profile spans a factor 100; the counts follow it
    assert freq.max() / freq.min() == pytest.approx(100.0)
    assert stats.spearmanr(counts[seen], freq[seen]).statistic > 0.95
    assert I.training_counts(1.0).max() < 2 * I.training_counts(1.0)[seen].min()


# ------------------------------------------------------------------------- grouping
def test_frequency_groups_against_a_naive_ranking():
    rng = np.random.default_rng(0)
    classes = np.sort(rng.choice(64, 50, replace=False))
    groups = I.frequency_groups(100.0, 1, classes)
    freq = class_frequencies(64, 100.0, 1)
    ranked = sorted(classes.tolist(), key=lambda c: -freq[c])
    sizes = [17, 17, 16]
    start = 0
    for g, size in enumerate(sizes):
        for c in ranked[start:start + size]:
            assert groups[c] == g
        start += size
    assert all(groups[c] == -1 for c in range(64) if c not in classes)
    # every head class is more frequent than every tail class
    assert freq[groups == 0].min() > freq[groups == 1].max() > 0
    assert freq[groups == 1].min() > freq[groups == 2].max()
    # the order depends on the seed only
    np.testing.assert_array_equal(I.frequency_groups(10.0, 1, classes), groups)


def test_group_means_and_per_class_mean_against_loops():
    rng = np.random.default_rng(1)
    values = rng.random(64)
    values[[3, 9]] = np.nan
    groups = rng.integers(-1, 3, 64)
    got = I.group_means(values, groups)
    for g in range(3):
        sel = [values[c] for c in range(64) if groups[c] == g and not np.isnan(values[c])]
        assert got[g] == pytest.approx(sum(sel) / len(sel))
    q = rng.random(200)
    labels = rng.integers(0, 10, 200)
    pc = I.per_class_mean(q, labels, 12)
    for c in range(10):
        assert pc[c] == pytest.approx(q[labels == c].mean())
    assert np.isnan(pc[10]) and np.isnan(pc[11])


def test_balanced_accuracy_matches_sklearn():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 8, 300)
    logits = rng.normal(size=(300, 8)) + 2 * np.eye(8)[labels] * (rng.random(300) < 0.5)[:, None]
    assert I.balanced_accuracy(logits, labels) == pytest.approx(
        balanced_accuracy_score(labels, logits.argmax(1)))


def test_bad_input_is_one_line():
    with pytest.raises(InputError, match="balanced world"):
        I.frequency_groups(1.0)
    with pytest.raises(InputError, match="must match"):
        I.group_means(np.zeros(3), np.zeros(4))
    with pytest.raises(InputError, match="imbalance"):
        I.training_labels(0.5)
    with pytest.raises(InputError, match="logits"):
        I.balanced_accuracy(np.zeros(5), np.zeros(5))


# --------------------------------------------------------- the shared trainer's remedies
def test_balanced_sampler_has_a_flat_class_histogram():
    labels = I.training_labels(100.0)
    present = np.unique(labels)
    batches = sample_batches(labels, 128, 200, "balanced", np.random.default_rng(0))
    drawn = labels[np.concatenate(batches)]
    hist = np.bincount(drawn, minlength=64)[present]
    # chi-square goodness of fit against the uniform over present classes
    assert stats.chisquare(hist).pvalue > 1e-3
    # uniform sampling walks epochs: its histogram follows the training counts instead
    uni = labels[np.concatenate(sample_batches(labels, 128, 200, "uniform",
                                               np.random.default_rng(0)))]
    assert stats.chisquare(np.bincount(uni, minlength=64)[present]).pvalue < 1e-12
    epochs = len(uni) // len(labels)
    assert (np.bincount(uni, minlength=64) >= epochs * np.bincount(labels, minlength=64)).all()


def _tiny_batch(n: int = 12):
    torch.manual_seed(0)
    model = ChallengeNet(width=8, dim=16).eval()
    rng = np.random.default_rng(0)
    images = model.to_tensor(rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8))
    labels = torch.as_tensor(rng.integers(0, 64, n))
    attributes = torch.zeros(n, N_ATTRIBUTES)
    return model, images, labels, attributes


def _hand_logits(model, images, temperature):
    with torch.no_grad():
        z = F.normalize(model.project(model.features(images)), dim=1)
        return (z @ F.normalize(model.proxies, dim=1).T / temperature).numpy().astype(np.float64)


def _hand_ce(logits, labels):
    m = logits.max(1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(1, keepdims=True)))[:, 0]
    return lse - logits[np.arange(len(labels)), labels]


def test_logit_adjusted_loss_matches_a_hand_formula():
    model, images, labels, attributes = _tiny_batch()
    prior = I.training_prior(100.0)
    log_prior = torch.tensor(np.log(prior), dtype=torch.float32)
    cfg = ChallengeConfig(imbalance=100.0, logit_adjust=1.5)
    with torch.no_grad():
        loss, parts = step_loss(model, cfg, images, labels, attributes, torch.ones(len(labels)),
                                log_prior, None, torch.zeros(len(labels), dtype=torch.long), 0.0)
    logits = _hand_logits(model, images, cfg.temperature)
    want = _hand_ce(logits + 1.5 * np.log(prior), labels.numpy()).mean()
    assert float(loss) == pytest.approx(want, rel=1e-5)
    assert parts["retrieval"] == pytest.approx(want, rel=1e-5)
    mine = I.logit_adjusted_ce(torch.tensor(logits, dtype=torch.float32), labels, log_prior, 1.5)
    assert float(mine) == pytest.approx(want, rel=1e-5)
    # tau 0 is the plain cross entropy, and the adjustment changes the loss
    plain = _hand_ce(logits, labels.numpy()).mean()
    assert float(I.logit_adjusted_ce(torch.tensor(logits, dtype=torch.float32), labels,
                                     log_prior, 0.0)) == pytest.approx(plain, rel=1e-5)
    assert abs(plain - want) > 1e-3


def test_reweighted_loss_uses_normalised_inverse_frequency():
    model, images, labels, attributes = _tiny_batch()
    train = I.training_labels(100.0)
    prior = class_prior(train)
    # the trainer's weights: (1 / frequency) ** reweight, normalised to mean 1 over the set
    w_all = 1.0 / prior[train]
    w_all = w_all / w_all.mean()
    ratio = w_all.max() / w_all.min()
    assert ratio == pytest.approx(prior[np.unique(train)].max() / prior[np.unique(train)].min())
    weights = torch.tensor(1.0 / prior[labels.numpy()] / (1.0 / prior[train]).mean(),
                           dtype=torch.float32)
    cfg = ChallengeConfig(imbalance=100.0, reweight=1.0)
    log_prior = torch.tensor(np.log(prior), dtype=torch.float32)
    with torch.no_grad():
        loss, _ = step_loss(model, cfg, images, labels, attributes, weights, log_prior, None,
                            torch.zeros(len(labels), dtype=torch.long), 0.0)
    per = _hand_ce(_hand_logits(model, images, cfg.temperature), labels.numpy())
    assert float(loss) == pytest.approx((per * weights.numpy()).mean(), rel=1e-5)


# ------------------------------------------------------------ the table and checkpoints
def _small_scenes() -> SceneSet:
    world = World(WorldConfig(n=240, seed=7), progress=False)
    return scene_set(world, np.sort(np.concatenate([world.indices(s)
                                                    for s in ("train", "val", "test")])))


def test_head_tail_table_against_the_shared_scorer():
    scenes = _small_scenes()
    torch.manual_seed(0)
    models = {"a": ChallengeNet(width=8, dim=16).eval(), "b": ChallengeNet(width=8, dim=16).eval()}
    res = I.head_tail_table(models, 100.0, scenes=scenes)
    tracked = I.tracked_classes(scenes.labels)
    assert set(np.flatnonzero(res.groups >= 0)) == set(tracked)
    for name, model in models.items():
        emb = model.embed_images(scenes.images)
        run = class_retrieval(emb, scenes.labels, emb, scenes.labels, scenes.scenes,
                              scenes.scenes)
        ap = per_class(run, 64)
        np.testing.assert_allclose(res.ap[name], ap)
        assert res.table[name]["mAP"] == pytest.approx(np.nanmean(ap[tracked]), abs=1e-4)
        for g, group in enumerate(I.GROUPS):
            cls = [c for c in tracked if res.groups[c] == g and not np.isnan(ap[c])]
            assert res.table[name][f"mAP {group}"] == pytest.approx(
                np.mean([ap[c] for c in cls]), abs=1e-4)
        pred = (model.predict(scenes.images, "proxy")).argmax(1)
        acc = [np.mean(pred[scenes.labels == c] == c) for c in tracked]
        assert res.table[name]["acc"] == pytest.approx(np.mean(acc), abs=1e-4)
    assert "tail" in res.format("R@1")
    with pytest.raises(InputError):
        res.format("nDCG")


def test_checkpoint_specs_share_one_budget():
    configs = {n: s.config for n, s in I.CHECKPOINTS.items()}
    assert set(I.REMEDIES.values()) | set(I.WORLD_MODELS.values()) == set(configs)
    for cfg in configs.values():
        assert (cfg["steps"], cfg["batch"], cfg["world"]) == (
            I.STEPS, 128, {"n": I.TRAIN_N, "seed": I.TRAIN_SEED})
    for imbalance, name in I.WORLD_MODELS.items():
        assert configs[name]["imbalance"] == imbalance
    assert configs["challenge_lt100_balanced"]["sampler"] == "balanced"
    assert configs["challenge_lt100_reweight"]["reweight"] == 1.0
    assert configs["challenge_lt100_logit_adjust"]["logit_adjust"] == 1.0


@pytest.mark.parametrize("name", sorted(I.CHECKPOINTS))
def test_committed_checkpoints_load(name):
    spec = I.CHECKPOINTS[name]
    model, manifest = checkpoints.read(spec, checkpoints.PACKAGE_DIR, spec.config)
    assert isinstance(model, ChallengeNet)
    assert manifest["config"] == spec.config
    assert manifest["training_data"]["world"]["imbalance"] == spec.config["imbalance"]


# --------------------------------------------------------------------------- exercise
def test_checker_without_an_answer_and_with_bad_shapes():
    assert not ex.check_posthoc_tau(None)
    assert "no answer" in str(ex.check_posthoc_tau(None))
    assert not ex.check_posthoc_tau(0.5)
    assert not ex.check_posthoc_tau(("a", 0.3))
    assert "one of" in str(ex.check_posthoc_tau((0.7, 0.3)))


@pytest.mark.slow
def test_posthoc_solution_passes_and_wrong_answers_fail():
    tau, acc = ex.solution_posthoc_tau()
    assert tau in ex.TAUS and 0 <= acc <= 1
    assert ex.check_posthoc_tau((tau, acc))
    assert ex.check_posthoc_tau([tau, round(acc, 3)])
    assert not ex.check_posthoc_tau((tau, acc + 0.05))
    accs = ex.posthoc_accuracies()
    worse = [t for t in ex.TAUS if accs[t] < acc]
    if worse:
        assert not ex.check_posthoc_tau((worse[0], accs[worse[0]]))
