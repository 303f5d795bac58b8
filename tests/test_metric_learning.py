"""mmkit.encoders.metric_learning (trainer, checkpoints, retrieval and few-shot scores) and the
exercises of notebook 05."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from mmkit import checkpoints
from mmkit.encoders import metric_learning as M
from mmkit.errors import InputError
from mmkit.exercises import nb05


def clustered(seed: int, n_classes: int = 5, per: int = 7, d: int = 6, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, d))
    labels = np.repeat(np.arange(n_classes), per)
    return (centres[labels] + noise * rng.normal(size=(len(labels), d))).astype(np.float32), labels


@pytest.mark.parametrize("seed", range(3))
def test_retrieval_scores_agree_with_pml_accuracy_calculator(seed):
    feats, labels = clustered(seed)
    calc = AccuracyCalculator(include=("mean_average_precision_at_r", "precision_at_1",
                                       "r_precision"), k="max_bin_count")
    f = torch.nn.functional.normalize(torch.from_numpy(feats), dim=1)
    ref = calc.get_accuracy(f, torch.from_numpy(labels), f, torch.from_numpy(labels),
                            ref_includes_query=True)
    got = M.retrieval_scores(feats, labels)
    assert abs(got["map_at_r"] - ref["mean_average_precision_at_r"]) < 1e-6
    assert abs(got["p_at_1"] - ref["precision_at_1"]) < 1e-6
    assert abs(got["r_precision"] - ref["r_precision"]) < 1e-6


def naive_map_at_r(feats, labels):
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    out = []
    for q in range(len(labels)):
        others = [j for j in range(len(labels)) if j != q]
        order = sorted(others, key=lambda j: -float(f[q] @ f[j]))
        r = sum(labels[j] == labels[q] for j in others)
        hits, total = 0, 0.0
        for i, j in enumerate(order[:r], 1):
            if labels[j] == labels[q]:
                hits += 1
                total += hits / i
        out.append(total / r)
    return float(np.mean(out))


def test_map_at_r_naive_loop_and_score_averaging():
    feats, labels = clustered(4)
    assert abs(M.retrieval_scores(feats, labels)["map_at_r"] - naive_map_at_r(feats, labels)) < 1e-9
    other, _ = clustered(5)
    # concatenating L2-normalised embeddings = averaging their cosine similarities
    cat = np.hstack([feats / np.linalg.norm(feats, axis=1, keepdims=True),
                     other / np.linalg.norm(other, axis=1, keepdims=True)])
    avg = (M.cosine_similarity(feats) + M.cosine_similarity(other)) / 2
    a, b = M.retrieval_scores(cat, labels), M.similarity_scores(avg, labels)
    assert all(abs(a[k] - b[k]) < 1e-9 for k in a)
    with pytest.raises(InputError, match=r"\[N, N\]"):
        M.similarity_scores(avg[:3], labels)


def test_few_shot_accuracy_matches_a_naive_loop():
    feats, labels = clustered(1, per=8, noise=1.5)
    for shots in (1, 3):
        for method in ("prototype", "nn"):
            got = M.few_shot_accuracy(feats, labels, shots, trials=3, seed=2, method=method)
            rng = np.random.default_rng(2)
            f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
            accs = []
            for _ in range(3):
                sup = {c: rng.choice(np.flatnonzero(labels == c), shots, replace=False)
                       for c in np.unique(labels)}
                all_sup = set(np.concatenate(list(sup.values())).tolist())
                right = total = 0
                for q in range(len(labels)):
                    if q in all_sup:
                        continue
                    if method == "prototype":
                        sims = {c: float(f[q] @ f[idx].mean(0)) for c, idx in sup.items()}
                    else:
                        sims = {c: max(float(f[q] @ f[i]) for i in idx) for c, idx in sup.items()}
                    right += max(sims, key=sims.get) == labels[q]
                    total += 1
                accs.append(right / total)
            assert abs(got - np.mean(accs)) < 1e-9
    with pytest.raises(InputError, match="more than 8"):
        M.few_shot_accuracy(feats, labels, 8)


def test_m_per_class_batches():
    labels = np.repeat(np.arange(6), [10, 10, 10, 10, 3, 10])
    batches = M.m_per_class_batches(labels, 4, 3, torch.Generator().manual_seed(0))
    assert len(batches) == len(labels) // 12
    for b in batches:
        assert len(b) == 12
        counts = np.bincount(labels[b], minlength=6)
        assert sorted(counts[counts > 0].tolist()) == [4, 4, 4]


def test_seen_classes_mask_excludes_the_evaluation_worlds_unseen_classes():
    from mmkit.data import World

    unseen = World(n=30, seed=0, progress=False).unseen_classes
    labels = np.arange(64)
    mask = M.seen_classes_mask(labels, 0)
    assert mask.sum() == 64 - len(unseen) and not mask[unseen].any()


def test_digits_are_the_real_sklearn_images():
    from sklearn.datasets import load_digits

    images, labels = M.digits_images()
    d = load_digits()
    assert images.shape == (1797, 8, 8, 3) and images.dtype == np.uint8
    assert np.array_equal(labels, d.target)
    assert np.array_equal(images[..., 0], np.round(d.images * 255 / 16).astype(np.uint8))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["metric_world_cnn", "metric_digits_cnn"])
def test_checkpoint_trains_saves_and_reads_back(name, tmp_path):
    spec = checkpoints.get_spec(name)
    small = {"epochs": 3, "lr": 3e-3}
    if name == "metric_world_cnn":
        small.update(n_train=300, n_val=200, n_eval=200, width=8, embed_dim=16, m=4,
                     classes_per_batch=8)
    config = {**spec.config, **small}
    torch.manual_seed(0)
    trained = spec.train(config, False)
    data = trained.data
    assert data["epochs"] == 3 and len(data["curve"]["epoch_loss"]) == 3
    assert trained.metrics["loss_last_epoch"] < trained.metrics["loss_first_epoch"]
    assert 0 <= trained.metrics["unseen_map_at_r"] <= 1
    checkpoints.save(trained, spec, config, tmp_path, 1.0, 0)
    model, manifest = checkpoints.read(spec, tmp_path, config)
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key])
    assert manifest["metrics"] == trained.metrics


@pytest.mark.slow
def test_world_trainer_never_sees_unseen_classes(monkeypatch):
    seen_labels = []
    real = M.train_metric

    def spy(model, x, y, *args, **kwargs):
        seen_labels.append(np.unique(y))
        kwargs["epochs"] = 1
        return real(model, x, y, *args, **kwargs)

    monkeypatch.setattr(M, "train_metric", spy)
    from mmkit.data import World

    config = {**M.CHECKPOINTS["metric_world_cnn"].config, "n_train": 200, "n_val": 100,
              "n_eval": 150, "width": 8, "embed_dim": 8, "m": 2, "classes_per_batch": 8}
    M._train_world(config, False)
    unseen = World(n=10, seed=0, progress=False).unseen_classes
    assert not np.isin(seen_labels[0], unseen).any()
    assert config["world_seed"] >= 1400


def test_make_loss_and_miner_reject_unknown_names():
    with pytest.raises(InputError, match="unknown loss"):
        M.make_loss("hinge")
    with pytest.raises(InputError, match="unknown miner"):
        M.make_miner("hardest")
    with pytest.raises(InputError, match="distance"):
        M.make_loss("triplet", distance="manhattan")
    assert M.make_miner("none") is None


# ----------------------------------------------------------------------------- exercises
def test_exercise_active_fraction():
    emb, labels = clustered(0, n_classes=3, per=4, d=3)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    active = total = 0
    for a in range(len(labels)):
        for p in range(len(labels)):
            for n in range(len(labels)):
                if a != p and labels[a] == labels[p] and labels[n] != labels[a]:
                    total += 1
                    active += np.linalg.norm(e[a] - e[p]) - np.linalg.norm(e[a] - e[n]) + 0.2 > 0
    assert nb05.check_active_fraction(emb, labels, 0.2, None).correct is False
    assert nb05.check_active_fraction(emb, labels, 0.2, active / total)
    wrong = nb05.check_active_fraction(emb, labels, 0.2, float(active))
    assert not wrong and "count" in wrong.message
    assert not nb05.check_active_fraction(emb, labels, 0.2, active / total + 0.1)


def test_exercise_semihard_count():
    emb, labels = clustered(3, n_classes=3, per=4, d=3)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    count = 0
    for a in range(len(labels)):
        for p in range(len(labels)):
            for n in range(len(labels)):
                if a != p and labels[a] == labels[p] and labels[n] != labels[a]:
                    m = np.linalg.norm(e[a] - e[n]) - np.linalg.norm(e[a] - e[p])
                    count += 0 < m <= 0.3
    assert nb05.check_semihard_count(emb, labels, 0.3, count)
    assert not nb05.check_semihard_count(emb, labels, 0.3, count + 1)
    assert "integer" in nb05.check_semihard_count(emb, labels, 0.3, "many").message
    assert "no answer" in nb05.check_semihard_count(emb, labels, 0.3, None).message


def test_exercise_map_at_r():
    feats, labels = clustered(6)
    calc = AccuracyCalculator(include=("mean_average_precision_at_r", "r_precision"),
                              k="max_bin_count")
    f = torch.nn.functional.normalize(torch.from_numpy(feats), dim=1)
    t = torch.from_numpy(labels)
    ref = calc.get_accuracy(f, t, f, t, ref_includes_query=True)
    assert nb05.check_map_at_r(feats, labels, ref["mean_average_precision_at_r"])
    wrong = nb05.check_map_at_r(feats, labels, ref["r_precision"])
    assert not wrong and "r precision" in wrong.message
    assert not nb05.check_map_at_r(feats, labels, 0.0)
