"""mmkit.losses against naive loops and pytorch-metric-learning (PML), to 1e-6."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning import distances as pml_d
from pytorch_metric_learning import losses as pml_l
from pytorch_metric_learning import miners as pml_m
from pytorch_metric_learning.reducers import MeanReducer

from mmkit.errors import InputError
from mmkit.losses import (ContrastiveLoss, CosineSimilarity, LpDistance, MarginRankingLoss,
                          NTXentLoss, TripletMarginLoss, all_pairs, all_triplets)

DISTS = {"euclidean": (LpDistance, pml_d.LpDistance), "cosine": (CosineSimilarity,
                                                                 pml_d.CosineSimilarity)}


def batch(seed: int, n: int = 24, d: int = 8, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    return emb, labels


def dist_np(e: np.ndarray, kind: str) -> np.ndarray:
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    n = len(e)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = e[i] @ e[j] if kind == "cosine" else math.sqrt(((e[i] - e[j]) ** 2).sum())
    return out


def naive_triplet(e, labels, margin, kind, reduce="nonzero"):
    d, lab = dist_np(e.numpy(), kind), labels.numpy()
    terms = []
    for a in range(len(lab)):
        for p in range(len(lab)):
            for n in range(len(lab)):
                if a != p and lab[a] == lab[p] and lab[n] != lab[a]:
                    gap = d[a, p] - d[a, n] if kind == "euclidean" else d[a, n] - d[a, p]
                    terms.append(max(0.0, gap + margin))
    terms = np.array(terms)
    if reduce == "mean":
        return terms.mean() if len(terms) else 0.0
    nz = terms[terms > 0]
    return nz.mean() if len(nz) else 0.0


@pytest.mark.parametrize("kind", DISTS)
@pytest.mark.parametrize("seed", range(4))
def test_triplet_matches_naive_and_pml(kind, seed):
    emb, labels = batch(seed)
    ours, theirs = DISTS[kind]
    for margin in (0.05, 0.3):
        got = TripletMarginLoss(margin, distance=ours())(emb, labels)
        ref = pml_l.TripletMarginLoss(margin=margin, distance=theirs())(emb, labels)
        assert abs(float(got) - float(ref)) < 1e-6
        assert abs(float(got) - naive_triplet(emb, labels, margin, kind)) < 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_triplet_with_mined_tuples_matches_pml(seed):
    emb, labels = batch(seed)
    trip = pml_m.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")(emb, labels)
    pairs = pml_m.BatchEasyHardMiner()(emb, labels)  # a pair tuple (a1, p, a2, n)
    for tup in (trip, pairs):
        got = TripletMarginLoss(0.1)(emb, labels, tup)
        ref = pml_l.TripletMarginLoss(margin=0.1)(emb, labels, tup)
        assert abs(float(got) - float(ref)) < 1e-6


def naive_contrastive(e, labels, pos_m, neg_m, kind):
    d, lab = dist_np(e.numpy(), kind), labels.numpy()
    pos, neg = [], []
    for i in range(len(lab)):
        for j in range(len(lab)):
            if i == j:
                continue
            if lab[i] == lab[j]:
                pos.append(max(0.0, d[i, j] - pos_m) if kind == "euclidean" else max(0.0, pos_m - d[i, j]))
            else:
                neg.append(max(0.0, neg_m - d[i, j]) if kind == "euclidean" else max(0.0, d[i, j] - neg_m))
    out = 0.0
    for t in (np.array(pos), np.array(neg)):
        nz = t[t > 0]
        out += nz.mean() if len(nz) else 0.0
    return out


@pytest.mark.parametrize("kind,margins", [("euclidean", (0.0, 1.0)), ("euclidean", (0.3, 1.2)),
                                          ("cosine", (1.0, 0.0)), ("cosine", (0.8, 0.3))])
@pytest.mark.parametrize("seed", range(3))
def test_contrastive_matches_naive_and_pml(kind, margins, seed):
    emb, labels = batch(seed)
    ours, theirs = DISTS[kind]
    got = ContrastiveLoss(*margins, distance=ours())(emb, labels)
    ref = pml_l.ContrastiveLoss(pos_margin=margins[0], neg_margin=margins[1],
                                distance=theirs())(emb, labels)
    assert abs(float(got) - float(ref)) < 1e-6
    assert abs(float(got) - naive_contrastive(emb, labels, *margins, kind)) < 1e-6
    trip = pml_m.TripletMarginMiner(margin=0.5)(emb, labels)
    got = ContrastiveLoss(*margins, distance=ours())(emb, labels, trip)
    ref = pml_l.ContrastiveLoss(pos_margin=margins[0], neg_margin=margins[1],
                                distance=theirs())(emb, labels, trip)
    assert abs(float(got) - float(ref)) < 1e-6


def test_contrastive_single_pair_counts_unlike_pml():
    """The documented difference: one positive + one negative pair still give a loss."""
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    tup = (torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), torch.tensor([2]))
    d_ap, d_an = math.dist([1, 0], [0.6, 0.8]), math.dist([1, 0], [0, 1])
    expected = d_ap + max(0.0, 1.0 - d_an)
    assert abs(float(ContrastiveLoss()(emb, labels, tup)) - expected) < 1e-9
    assert float(pml_l.ContrastiveLoss()(emb, labels, tup)) == 0.0


@pytest.mark.parametrize("kind", DISTS)
@pytest.mark.parametrize("seed", range(3))
def test_ntxent_matches_naive_and_pml(kind, seed):
    emb, labels = batch(seed, n=16)
    ours, theirs = DISTS[kind]
    for t in (0.07, 0.5):
        got = NTXentLoss(t, distance=ours())(emb, labels)
        ref = pml_l.NTXentLoss(temperature=t, distance=theirs())(emb, labels)
        assert abs(float(got) - float(ref)) < 1e-6
    # naive loop, T = 0.5
    d, lab = dist_np(emb.numpy(), kind), labels.numpy()
    s = d if kind == "cosine" else -d
    terms = []
    for a in range(len(lab)):
        negs = [s[a, n] for n in range(len(lab)) if lab[n] != lab[a]]
        for p in range(len(lab)):
            if p != a and lab[p] == lab[a] and negs:
                den = math.exp(s[a, p] / 0.5) + sum(math.exp(v / 0.5) for v in negs)
                terms.append(-math.log(math.exp(s[a, p] / 0.5) / den))
    assert abs(float(NTXentLoss(0.5, distance=ours())(emb, labels)) - np.mean(terms)) < 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_margin_ranking_matches_torch_and_pml_mean_reducer(seed):
    emb, labels = batch(seed)
    a, p, n = all_triplets(labels)
    e = torch.nn.functional.normalize(emb, dim=1)
    s_ap, s_an = (e[a] * e[p]).sum(1), (e[a] * e[n]).sum(1)
    ref = torch.nn.MarginRankingLoss(margin=0.1)(s_ap, s_an, torch.ones_like(s_ap))
    got = MarginRankingLoss(0.1)(emb, labels)
    assert abs(float(got) - float(ref)) < 1e-6
    pml = pml_l.TripletMarginLoss(margin=0.1, distance=pml_d.CosineSimilarity(),
                                  reducer=MeanReducer())(emb, labels)
    assert abs(float(got) - float(pml)) < 1e-6
    assert abs(float(got) - naive_triplet(emb, labels, 0.1, "cosine", "mean")) < 1e-6


def test_all_pairs_and_triplets_match_pml_order():
    from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

    _, labels = batch(0, n=15)
    for ours, ref in zip(all_pairs(labels), lmu.get_all_pairs_indices(labels)):
        assert torch.equal(ours, ref)
    for ours, ref in zip(all_triplets(labels), lmu.get_all_triplets_indices(labels)):
        assert torch.equal(ours, ref)


LOSSES = [TripletMarginLoss, ContrastiveLoss, NTXentLoss, MarginRankingLoss]


@pytest.mark.parametrize("cls", LOSSES)
def test_degenerate_batches_give_zero_with_gradient(cls):
    emb = torch.randn(6, 4, requires_grad=True)
    for labels in (torch.zeros(6, dtype=torch.long),            # one class: no negative
                   torch.arange(6)):                            # all distinct: no positive
        value = cls()(emb, labels)
        if cls is ContrastiveLoss and len(labels.unique()) == 1:
            continue  # positive pairs alone still give a contrastive loss
        if cls is ContrastiveLoss:
            ref = pml_l.ContrastiveLoss()(emb, labels)
            assert abs(value.item() - ref.item()) < 1e-6
            continue
        assert value.item() == 0.0
        value.backward()
        assert emb.grad is not None and float(emb.grad.abs().sum()) == 0.0
        emb.grad = None
    single = cls()(emb[:1], torch.tensor([3]))
    assert single.item() == 0.0 and single.requires_grad


def test_contrastive_one_class_matches_pml():
    emb = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.zeros(6, dtype=torch.long)
    assert abs(float(ContrastiveLoss()(emb, labels)) -
               float(pml_l.ContrastiveLoss()(emb, labels))) < 1e-6


def test_loss_is_zero_when_every_triplet_meets_the_margin():
    # two tight clusters far apart: every triplet satisfies the margin
    emb = torch.tensor([[1, 0], [0.99, 0.01], [0, 1], [0.01, 0.99]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    loss = TripletMarginLoss(0.2)
    assert float(loss(emb, labels)) == 0.0
    assert loss.stats["terms"] == 8 and loss.stats["active"] == 0
    assert loss.active_fraction == 0.0
    big = TripletMarginLoss(2.0)        # a margin they cannot all meet: active again
    assert float(big(emb, labels)) > 0 and big.active_fraction == 1.0


def test_gradients_match_pml():
    emb, labels = batch(5)
    e1 = emb.clone().requires_grad_(True)
    e2 = emb.clone().requires_grad_(True)
    TripletMarginLoss(0.2)(e1, labels).backward()
    pml_l.TripletMarginLoss(margin=0.2)(e2, labels).backward()
    assert torch.allclose(e1.grad, e2.grad, atol=1e-9)


def test_bad_input_is_one_line_input_error():
    loss = TripletMarginLoss()
    with pytest.raises(InputError, match="2-D"):
        loss(torch.randn(4), torch.zeros(4))
    with pytest.raises(InputError, match="one label per embedding"):
        loss(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(InputError, match="integers"):
        loss(torch.randn(4, 3), torch.zeros(4))
    with pytest.raises(InputError, match="torch.Tensor"):
        loss(np.zeros((4, 3)), torch.zeros(4, dtype=torch.long))
    with pytest.raises(InputError, match="3 \\(triplets\\) or 4"):
        loss(torch.randn(4, 3), torch.tensor([0, 0, 1, 1]), (torch.tensor([0]),) * 2)


def test_ntxent_with_repeated_and_mined_pairs_matches_pml():
    """Repeated (anchor, negative) pairs count as often as they occur (as in PML), and
    anchors without any negative contribute 0."""
    emb, labels = batch(9, n=16)
    trip = pml_m.TripletMarginMiner(margin=0.3)(emb, labels)
    got = NTXentLoss(0.2)(emb, labels, trip)
    ref = pml_l.NTXentLoss(temperature=0.2)(emb, labels, trip)
    assert abs(float(got) - float(ref)) < 1e-6
    tup = (torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0]), torch.tensor([0, 0, 0]),
           torch.tensor([2, 2, 3]))
    e = emb.clone().requires_grad_(True)
    got = NTXentLoss(0.2)(e, torch.tensor([0, 0, 1, 1] + [2] * 12), tup)
    ref = pml_l.NTXentLoss(temperature=0.2)(emb, torch.tensor([0, 0, 1, 1] + [2] * 12), tup)
    assert abs(got.item() - ref.item()) < 1e-6
    got.backward()
    assert torch.isfinite(e.grad).all()
