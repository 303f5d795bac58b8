"""mmkit.miners against naive loops and pytorch-metric-learning (PML).

The PML comparisons run in float16, bfloat16, float32 and float64: the embeddings are rounded
to the dtype and PML mines the same rounded values in float64 (it cannot compute its
LpDistance in bfloat16); mmkit mines 16-bit embeddings in float32.
"""
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

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tiny tensors


def batch(seed: int, n: int = 24, d: int = 8, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64),
            torch.randint(0, classes, (n,), generator=g))


def as_set(tup):
    return set(zip(*(t.tolist() for t in tup)))


DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def rounded(emb: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``emb`` in ``dtype``, and exactly those values in float64 (for the references)."""
    low = emb.to(dtype)
    return low, low.double()


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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["euclidean", "cosine"])
@pytest.mark.parametrize("type_", ["all", "hard", "semihard", "easy"])
@pytest.mark.parametrize("seed", range(3))
def test_triplet_margin_miner_matches_pml(kind, type_, seed, dtype):
    emb, labels = batch(seed)
    emb, ref_emb = rounded(emb, dtype)
    ours = LpDistance() if kind == "euclidean" else CosineSimilarity()
    theirs = pml_d.LpDistance() if kind == "euclidean" else pml_d.CosineSimilarity()
    got = TripletMarginMiner(0.2, type_, distance=ours)(emb, labels)
    ref = pml_m.TripletMarginMiner(margin=0.2, type_of_triplets=type_,
                                   distance=theirs)(ref_emb, labels)
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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["euclidean", "cosine"])
@pytest.mark.parametrize("seed", range(4))
def test_batch_hard_matches_naive_and_pml(kind, seed, dtype):
    emb, labels = batch(seed, n=20, classes=5)
    emb, ref_emb = rounded(emb, dtype)
    dist = LpDistance() if kind == "euclidean" else CosineSimilarity()
    theirs = pml_d.LpDistance() if kind == "euclidean" else pml_d.CosineSimilarity()
    a, p, n = BatchHardMiner(dist)(emb, labels)
    ra, rp, rn = pml_m.BatchHardMiner(distance=theirs)(ref_emb, labels)
    assert torch.equal(a, ra) and torch.equal(p, rp) and torch.equal(n, rn)
    mat = dist(ref_emb).numpy()
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


@pytest.mark.parametrize("dtype", DTYPES)
def test_distance_weighted_weights_match_the_formula_and_pml(dtype):
    emb, labels = batch(2, n=16, d=4)
    low, emb = rounded(emb, dtype)
    w = negative_weights(low, labels)
    assert w.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    atol = 1e-9 if dtype == torch.float64 else 1e-5       # float32 weights
    w = w.double().numpy()
    assert np.allclose(w, naive_weights(emb.numpy(), labels.tolist()), atol=atol)
    # PML's weights (the same formula, computed inside its mine()): rebuild them from its code
    mat = pml_d.LpDistance()(emb).clamp(min=0.5)
    d = float(emb.shape[1])
    log_w = (2.0 - d) * torch.log(mat) - ((d - 3) / 2) * torch.log(1.0 - 0.25 * mat ** 2)
    mask = (labels[:, None] != labels[None, :]).double()
    ref = torch.exp(log_w * mask - (log_w * mask).max()) * mask * (mat < 1.4).double()
    ref = ref / ref.sum(1, keepdim=True)
    rows = torch.isfinite(ref).all(1)
    assert np.allclose(w[rows.numpy()], ref[rows].numpy(), atol=atol)


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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_distance_weighted_16_bit_never_a_positive_or_beyond_the_cutoff(dtype):
    """16-bit weights made ``torch.multinomial`` return now and then a "negative" with the
    anchor's own label or farther than ``nonzero_loss_cutoff``; the weights are float32."""
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        emb = torch.randn(32, 8, generator=g).to(dtype)
        labels = torch.randint(0, 4, (32,), generator=g)
        a, p, n = DistanceWeightedMiner(generator=g)(emb, labels)
        assert len(a) > 0
        assert torch.all(labels[a] == labels[p]) and torch.all(a != p)
        assert torch.all(labels[a] != labels[n]), seed
        e = torch.nn.functional.normalize(emb.double(), dim=1)
        assert float((e[a] - e[n]).norm(dim=1).max()) < 1.4, seed


@pytest.mark.parametrize("make", MINERS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_embeddings_mine_as_their_float32_upcast(make, dtype):
    emb, labels = batch(6, n=40)
    low = emb.to(dtype)
    if make is DistanceWeightedMiner:
        got = DistanceWeightedMiner(generator=torch.Generator().manual_seed(3))(low, labels)
        ref = DistanceWeightedMiner(generator=torch.Generator().manual_seed(3))(low.float(),
                                                                                labels)
    else:
        got, ref = make()(low, labels), make()(low.float(), labels)
    assert all(torch.equal(x, y) for x, y in zip(got, ref))


@pytest.mark.parametrize("make", MINERS)
def test_missing_labels_is_a_one_line_input_error(make):
    with pytest.raises(InputError, match="labels are missing") as err:
        make()(torch.randn(6, 4), None)
    assert "\n" not in str(err.value)


def test_distance_weighted_refuses_nonzero_loss_cutoff_not_above_cutoff_unlike_pml():
    """The documented difference: PML accepts ``nonzero_loss_cutoff <= cutoff`` and then
    mines nothing (every distance is clamped up to the cutoff); mmkit refuses it."""
    emb, labels = batch(8)
    for cutoff, hi in ((1.0, 0.5), (0.8, 0.8)):
        mined = pml_m.DistanceWeightedMiner(cutoff=cutoff, nonzero_loss_cutoff=hi)(emb, labels)
        assert all(len(t) == 0 for t in mined)
        with pytest.raises(InputError, match="cutoff < nonzero_loss_cutoff") as err:
            DistanceWeightedMiner(cutoff=cutoff, nonzero_loss_cutoff=hi)
        assert "\n" not in str(err.value)
    assert "PML accepts it" in DistanceWeightedMiner.__doc__

