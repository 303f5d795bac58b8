"""Notebook 10, section 4: multi-task vs retrieval alone (mmkit.challenges.multitask)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmkit import checkpoints
from mmkit.challenges import multitask as mt
from mmkit.challenges.data import eval_scenes
from mmkit.challenges.training import ChallengeConfig, build_challenge, step_loss
from mmkit.errors import InputError
from mmkit.exercises.nb10 import multitask as ex
from mmkit.scoring import EVAL_SPLIT, eval_world


def _naive_r1(emb: np.ndarray, labels: np.ndarray) -> float:
    hits = []
    for q in range(len(emb)):
        best, best_s = -1, -np.inf
        for g in range(len(emb)):
            if g != q and float(emb[q] @ emb[g]) > best_s:
                best, best_s = g, float(emb[q] @ emb[g])
        hits.append(labels[best] == labels[q])
    return float(np.mean(hits))


def _naive_ndcg10(emb: np.ndarray, rel: np.ndarray) -> float:
    values = []
    for q in range(len(emb)):
        others = [g for g in range(len(emb)) if g != q]
        s = emb[others] @ emb[q]
        order = np.argsort(-s, kind="stable")[:10]
        r = rel[q, others]
        dcg = sum(r[g] / np.log2(i + 2) for i, g in enumerate(order))
        ideal = sum(v / np.log2(i + 2) for i, v in enumerate(sorted(r, reverse=True)[:10]))
        values.append(dcg / ideal if ideal > 0 else 0.0)
    return float(np.mean(values))


def test_attribute_columns_cover_the_world_attributes():
    world = eval_world()
    idx = world.indices(EVAL_SPLIT)[:50]
    a = world.attributes[idx]
    for group in mt.ATTRIBUTE_GROUPS:
        block = a[:, mt.attribute_columns(group)]
        assert np.allclose(block.sum(1), 1.0)
    names = [world.attribute_names[i] for i in range(mt.attribute_columns("colour").start,
                                                       mt.attribute_columns("colour").stop)]
    assert any("red" in n for n in names)
    with pytest.raises(InputError):
        mt.attribute_columns("weight")
    with pytest.raises(InputError):
        mt.attribute_labels(np.zeros((3, 5)), "shape")


def test_attribute_accuracy_against_a_loop():
    rng = np.random.default_rng(0)
    attrs = eval_scenes().attributes[:40]
    logits = rng.normal(size=attrs.shape)
    got = mt.attribute_accuracy(logits, attrs)
    for group in mt.ATTRIBUTE_GROUPS:
        cols = mt.attribute_columns(group)
        right = sum(int(np.argmax(logits[i, cols]) == np.argmax(attrs[i, cols]))
                    for i in range(len(attrs)))
        assert got[group] == pytest.approx(right / len(attrs))
    assert got["mean"] == pytest.approx(np.mean([got[g] for g in mt.ATTRIBUTE_GROUPS]))
    with pytest.raises(InputError):
        mt.attribute_accuracy(logits[:, :5], attrs)


@pytest.mark.parametrize("name", ["challenge_mt_scarce_single", "challenge_mt_scarce_multi"])
def test_hand_written_loss_equals_the_trainer(name):
    torch.manual_seed(0)
    cfg = ChallengeConfig.from_dict(mt.CHECKPOINTS[name].config)
    model = build_challenge(cfg).eval()
    scenes = eval_scenes()                       # only a batch to compute a loss on
    rows = np.arange(48)
    batch = scenes.take(rows)
    x = model.to_tensor(batch.images)
    y, a = torch.as_tensor(batch.labels), torch.as_tensor(batch.attributes)
    hand = mt.multitask_loss(model, x, y, a, cfg.class_head, cfg.attribute_head,
                             cfg.temperature)
    ref, parts = step_loss(model, cfg, x, y, a, torch.ones(len(rows)), torch.zeros(64), None,
                           torch.as_tensor(batch.styles), 0.0)
    assert float(hand.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    assert float(mt.package_loss(model, name, batch).detach()) == pytest.approx(
        float(ref.detach()), rel=1e-5)
    assert set(parts) == ({"retrieval"} if cfg.class_head == 0 else
                          {"retrieval", "class", "attribute"})


def test_checkpoints_load_with_their_configs():
    for name, (regime, objective) in mt.MODELS.items():
        model, manifest = checkpoints.load(name, progress=False)
        cfg = ChallengeConfig.from_dict(manifest["config"])
        assert cfg.retrieval == "supcon"
        assert cfg.world.n == (400 if regime == "scarce" else 4000)
        assert (cfg.attribute_head > 0) == (objective == "multi")
        assert (cfg.steps, cfg.batch) == (600, 128)
        emb = model.embed_images(eval_scenes().images[:8])
        assert emb.shape == (8, 128)
        assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_table_cells_against_naive_computations():
    name = "challenge_mt_scarce_multi"
    table = mt.multitask_table([name], train_size=64)
    assert list(table[name]) == list(mt.COLUMNS)
    model, _ = checkpoints.load(name, progress=False)
    scenes = eval_scenes()
    emb = model.embed_images(scenes.images)
    assert table[name]["R@1"] == pytest.approx(_naive_r1(emb, scenes.labels), abs=6e-5)
    world = eval_world()
    idx = world.indices(EVAL_SPLIT)
    obj = world.objects[idx, 0, :3]
    rel = (obj[:, None, :] == obj[None, :, :]).sum(2).astype(float)
    assert table[name]["NDCG@10"] == pytest.approx(_naive_ndcg10(emb, rel), abs=6e-5)
    logits = model.predict(scenes.images, "attribute")
    acc = np.mean([(logits[:, mt.attribute_columns(g)].argmax(1)
                    == scenes.attributes[:, mt.attribute_columns(g)].argmax(1)).mean()
                   for g in mt.ATTRIBUTE_GROUPS])
    assert table[name]["attribute acc"] == pytest.approx(acc, abs=6e-5)
    assert table[name]["gap"] == pytest.approx(table[name]["held-out loss"]
                                               - table[name]["train loss"], abs=2e-4)


def test_single_task_rows_have_no_attribute_accuracy():
    table = mt.multitask_table(["challenge_mt_scarce_single"], train_size=32)
    assert np.isnan(table["challenge_mt_scarce_single"]["attribute acc"])


def test_probe_is_deterministic_and_matches_sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train, test = mt.probe_split(441)
    again = mt.probe_split(441)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 441
    emb, _ = mt.eval_outputs("challenge_mt_scarce_single")
    y = mt.attribute_labels(eval_scenes().attributes, "colour")
    a = mt.linear_probe(emb, y, train, test)
    assert a == mt.linear_probe(emb, y, train, test)
    scaler = StandardScaler().fit(emb[train])
    clf = LogisticRegression(C=0.1, max_iter=5000).fit(scaler.transform(emb[train]), y[train])
    assert a == pytest.approx(clf.score(scaler.transform(emb[test]), y[test]))
    shuffled = np.random.default_rng(0).permutation(y)
    assert mt.linear_probe(emb, shuffled, train, test) < a
    with pytest.raises(InputError):
        mt.linear_probe(emb, y[:10], train, test)


def test_unknown_model_is_one_line_error():
    with pytest.raises(InputError, match="unknown multi-task model"):
        mt.eval_outputs("challenge_nope")


def test_exercise_checker():
    assert "no answer yet" in str(ex.check_head_accuracy(None))
    scenes = eval_scenes()
    model, _ = checkpoints.load(ex.HEAD_MODEL, progress=False)
    answer = ex.solution_head_accuracy(model, scenes.images, scenes.attributes)
    assert ex.check_head_accuracy(answer)
    assert not ex.check_head_accuracy(answer + 0.05)
    assert not ex.check_head_accuracy("high")
    assert not ex.check_head_accuracy(1.5)
    logits = model.predict(scenes.images, "attribute")
    mean = mt.attribute_accuracy(logits, scenes.attributes)["mean"]
    if abs(mean - answer) > 0.01:
        fb = ex.check_head_accuracy(mean)
        assert not fb and "mean over the five" in fb.message
    wrong_group = ex.solution_head_accuracy(model, scenes.images, scenes.attributes, "size")
    if abs(wrong_group - answer) > 0.01:
        assert not ex.check_head_accuracy(wrong_group)


@pytest.mark.slow
def test_training_scenes_are_the_trainers_scenes():
    from mmkit.challenges.data import train_scenes

    part = mt.training_scenes("challenge_mt_scarce_single", size=40, seed=3)
    full = train_scenes(400, 1, progress=False)
    pos = np.searchsorted(full.scenes, part.scenes)
    assert np.array_equal(full.scenes[pos], part.scenes)
    assert np.array_equal(full.images[pos], part.images)
    assert np.array_equal(full.labels[pos], part.labels)
    assert np.array_equal(full.attributes[pos], part.attributes)
    assert len(mt.training_scenes("challenge_mt_scarce_single", size=10_000)) == len(full)
    with pytest.raises(InputError):
        mt.training_scenes("challenge_mt_scarce_single", size=0)
