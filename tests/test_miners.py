"""mmkit.miners against naive loops and pytorch-metric-learning (PML)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning import distances as pml_d
from pytorch_metric_learning import miners as pml_m
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from mmkit.errors import InputError
from mmkit.losses import CosineSimilarity, LpDistance
from mmkit.miners import (BatchAllMiner, BatchHardMiner, DistanceWeightedMiner,
                          TripletMarginMiner, negative_weights)


def batch(seed: int, n: int = 24, d: int = 8, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64),
            torch.randint(0, classes, (n,), generator=g))


def as_set(tup):
    return set(zip(*(t.tolist() for t in tup)))


@pytest.mark.parametrize("seed", range(3))
def test_batch_all_is_every_valid_triplet(seed):
    emb, labels = batch(seed)
    got = BatchAllMiner()(emb, labels)
    lab = labels.tolist()
    naive = {(a, p, n) for a in range(len(lab)) for p in range(len(lab)) for n in range(len(lab))
             if a != p and lab[a] == lab[p] and lab[n] != lab[a]}
    assert as_set(got) == naive and len(got[0]) == len(naive)
    for ours, ref in zip(got, lmu.get_all_triplets_indices(labels)):
        assert torch.equal(ours, ref)


@pytest.mark.parametrize("kind", ["euclidean", "cosine"])
@pytest.mark.parametrize("type_", ["all", "hard", "semihard", "easy"])
@pytest.mark.parametrize("seed", range(3))
def test_triplet_margin_miner_matches_pml(kind, type_, seed):
    emb, labels = batch(seed)
    ours = LpDistance() if kind == "euclidean" else CosineSimilarity()
    theirs = pml_d.LpDistance() if kind == "euclidean" else pml_d.CosineSimilarity()
    got = TripletMarginMiner(0.2, type_, distance=ours)(emb, labels)
    ref = pml_m.TripletMarginMiner(margin=0.2, type_of_triplets=type_, distance=theirs)(emb, labels)
    for g, r in zip(got, ref):
        assert torch.equal(g, r)
    if type_ == "all":
        assert as_set(BatchAllMiner(margin=0.2, distance=ours)(emb, labels)) == as_set(got)


def test_semihard_naive_loop():
    emb, labels = batch(7)
    e = torch.nn.functional.normalize(emb, dim=1).numpy()
    lab = labels.tolist()
    naive = set()
    for a in range(len(lab)):
        for p in range(len(lab)):
            for n in range(len(lab)):
                if a != p and lab[a] == lab[p] and lab[n] != lab[a]:
                    m = np.linalg.norm(e[a] - e[n]) - np.linalg.norm(e[a] - e[p])
                    if 0 < m <= 0.2:
                        naive.add((a, p, n))
    assert as_set(TripletMarginMiner(0.2, "semihard")(emb, labels)) == naive


@pytest.mark.parametrize("kind", ["euclidean", "cosine"])
@pytest.mark.parametrize("seed", range(4))
def test_batch_hard_matches_naive_and_pml(kind, seed):
    emb, labels = batch(seed, n=20, classes=5)
    dist = LpDistance() if kind == "euclidean" else CosineSimilarity()
    theirs = pml_d.LpDistance() if kind == "euclidean" else pml_d.CosineSimilarity()
    a, p, n = BatchHardMiner(dist)(emb, labels)
    ra, rp, rn = pml_m.BatchHardMiner(distance=theirs)(emb, labels)
    assert torch.equal(a, ra) and torch.equal(p, rp) and torch.equal(n, rn)
    mat = dist(emb).numpy()
    lab = labels.tolist()
    sign = -1 if kind == "cosine" else 1       # distance-like score
    for i, ai in enumerate(a.tolist()):
        pos = [j for j in range(len(lab)) if j != ai and lab[j] == lab[ai]]
        neg = [j for j in range(len(lab)) if lab[j] != lab[ai]]
        assert p[i] == max(pos, key=lambda j: sign * mat[ai, j])
        assert n[i] == min(neg, key=lambda j: sign * mat[ai, j])


def test_batch_hard_skips_anchors_without_positive():
    emb, _ = batch(1, n=5)
    labels = torch.tensor([0, 0, 1, 2, 2])
    a, _, _ = BatchHardMiner()(emb, labels)
    assert a.tolist() == [0, 1, 3, 4]


MINERS = [BatchAllMiner, BatchHardMiner, lambda: TripletMarginMiner(type_of_triplets="semihard"),
          DistanceWeightedMiner]


@pytest.mark.parametrize("make", MINERS)
def test_degenerate_batches_give_no_triplets(make):
    emb = torch.randn(6, 4)
    for labels in (torch.zeros(6, dtype=torch.long), torch.arange(6)):
        tup = make()(emb, labels)
        assert len(tup) == 3 and all(len(t) == 0 and t.dtype == torch.long for t in tup)
    assert all(len(t) == 0 for t in make()(emb[:1], torch.tensor([0])))


def naive_weights(emb: np.ndarray, labels, cutoff=0.5, hi=1.4):
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    n, d = e.shape
    w = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if labels[i] == labels[j]:
                continue
            dist = max(cutoff, float(np.linalg.norm(e[i] - e[j])))
            if dist >= hi:
                continue
            w[i, j] = dist ** (2 - d) * (1 - dist ** 2 / 4) ** ((3 - d) / 2)
        if w[i].sum() > 0:
            w[i] /= w[i].sum()
    return w


def test_distance_weighted_weights_match_the_formula_and_pml():
    emb, labels = batch(2, n=16, d=4)
    w = negative_weights(emb, labels).numpy()
    assert np.allclose(w, naive_weights(emb.numpy(), labels.tolist()), atol=1e-9)
    # PML's weights (the same formula, computed inside its mine()): rebuild them from its code
    mat = pml_d.LpDistance()(emb).clamp(min=0.5)
    d = float(emb.shape[1])
    log_w = (2.0 - d) * torch.log(mat) - ((d - 3) / 2) * torch.log(1.0 - 0.25 * mat ** 2)
    mask = (labels[:, None] != labels[None, :]).double()
    ref = torch.exp(log_w * mask - (log_w * mask).max()) * mask * (mat < 1.4).double()
    ref = ref / ref.sum(1, keepdim=True)
    rows = torch.isfinite(ref).all(1)
    assert np.allclose(w[rows.numpy()], ref[rows].numpy(), atol=1e-9)


def test_distance_weighted_sampling_frequencies_follow_the_weights():
    emb, labels = batch(3, n=12, d=3, classes=3)
    w = negative_weights(emb, labels).numpy()
    miner = DistanceWeightedMiner(generator=torch.Generator().manual_seed(0))
    counts = np.zeros_like(w)
    draws = 3000
    for _ in range(draws):
        a, p, n = miner(emb, labels)
        np.add.at(counts, (a.numpy(), n.numpy()), 1)
    lab = labels.numpy()
    n_pos = np.array([(lab == lab[i]).sum() - 1 for i in range(len(lab))])
    for i in range(len(lab)):
        if n_pos[i] == 0 or w[i].sum() == 0:
            assert counts[i].sum() == 0
            continue
        total = counts[i].sum()
        assert total == draws * n_pos[i]
        freq = counts[i] / total
        # binomial standard error; 5 sigma
        se = np.sqrt(w[i] * (1 - w[i]) / total)
        assert np.all(np.abs(freq - w[i]) <= 5 * se + 1e-12)
        assert np.all(counts[i][w[i] == 0] == 0)     # never a positive, never beyond 1.4
    a, p, n = miner(emb, labels)
    assert torch.all(labels[a] == labels[p]) and torch.all(a != p)
    assert torch.all(labels[a] != labels[n])


def test_distance_weighted_is_reproducible_with_a_generator():
    emb, labels = batch(4)
    one = DistanceWeightedMiner(generator=torch.Generator().manual_seed(5))(emb, labels)
    two = DistanceWeightedMiner(generator=torch.Generator().manual_seed(5))(emb, labels)
    assert all(torch.equal(x, y) for x, y in zip(one, two))


def test_distance_weighted_prefers_closer_negatives_than_uniform():
    """In high dimension random negatives crowd around sqrt(2); weighting by 1/q(d) moves the
    chosen negatives towards the (rarer, more informative) closer ones."""
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(64, 32, generator=g, dtype=torch.float64)
    labels = torch.arange(64) % 8
    a, _, n = DistanceWeightedMiner(generator=g)(emb, labels)
    e = torch.nn.functional.normalize(emb, dim=1)
    chosen = (e[a] - e[n]).norm(dim=1)
    neg = labels[:, None] != labels[None, :]
    uniform = torch.cdist(e, e)[neg]
    assert chosen.mean() < uniform.mean() - 0.05
    assert chosen.max() < 1.4


def test_bad_input():
    with pytest.raises(InputError, match="type_of_triplets"):
        TripletMarginMiner(type_of_triplets="medium")
    with pytest.raises(InputError, match="cutoff"):
        DistanceWeightedMiner(cutoff=2.0)
    with pytest.raises(InputError, match="one label per embedding"):
        BatchHardMiner()(torch.randn(4, 3), torch.zeros(3, dtype=torch.long))
    assert math.isfinite(0.0)
