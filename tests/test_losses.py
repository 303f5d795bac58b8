"""mmkit.losses against naive loops and pytorch-metric-learning (PML), to 1e-6 in float64.

The comparisons run in float16, bfloat16, float32 and float64: the embeddings are rounded to
the dtype, and the reference is PML (and the naive loop) in float64 on those same rounded
values (PML cannot compute its LpDistance in bfloat16, and in float16 it is itself only
accurate to ~1e-2). Tolerances as PML's own tests: rtol 1e-2 for 16 bits, 1e-5 for float32.
"""
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

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tiny tensors

DISTS = {"euclidean": (LpDistance, pml_d.LpDistance), "cosine": (CosineSimilarity,
                                                                 pml_d.CosineSimilarity)}
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
RTOL = {torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float32: 1e-5, torch.float64: 1e-9}


def rounded(emb: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``emb`` in ``dtype``, and exactly those values in float64 (for the references)."""
    low = emb.to(dtype)
    return low, low.double()


def assert_close(got: torch.Tensor, ref, dtype: torch.dtype) -> None:
    """A loss in ``dtype`` (as PML returns it) within the dtype's tolerance of ``ref``."""
    assert got.dtype == dtype and got.ndim == 0
    ref = float(ref)
    assert abs(float(got.detach()) - ref) <= 1e-6 + RTOL[dtype] * abs(ref), (float(got), ref)


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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", DISTS)
@pytest.mark.parametrize("seed", range(4))
def test_triplet_matches_naive_and_pml(kind, seed, dtype):
    emb, ref_emb = rounded(batch(seed)[0], dtype)
    labels = batch(seed)[1]
    ours, theirs = DISTS[kind]
    for margin in (0.05, 0.3):
        got = TripletMarginLoss(margin, distance=ours())(emb, labels)
        ref = pml_l.TripletMarginLoss(margin=margin, distance=theirs())(ref_emb, labels)
        assert_close(got, ref, dtype)
        assert_close(got, naive_triplet(ref_emb, labels, margin, kind), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(3))
def test_triplet_with_mined_tuples_matches_pml(seed, dtype):
    emb, ref_emb = rounded(batch(seed)[0], dtype)
    labels = batch(seed)[1]
    trip = pml_m.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")(ref_emb, labels)
    pairs = pml_m.BatchEasyHardMiner()(ref_emb, labels)  # a pair tuple (a1, p, a2, n)
    for tup in (trip, pairs):
        got = TripletMarginLoss(0.1)(emb, labels, tup)
        ref = pml_l.TripletMarginLoss(margin=0.1)(ref_emb, labels, tup)
        assert_close(got, ref, dtype)


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
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(3))
def test_contrastive_matches_naive_and_pml(kind, margins, seed, dtype):
    emb, ref_emb = rounded(batch(seed)[0], dtype)
    labels = batch(seed)[1]
    ours, theirs = DISTS[kind]
    got = ContrastiveLoss(*margins, distance=ours())(emb, labels)
    ref = pml_l.ContrastiveLoss(pos_margin=margins[0], neg_margin=margins[1],
                                distance=theirs())(ref_emb, labels)
    assert_close(got, ref, dtype)
    assert_close(got, naive_contrastive(ref_emb, labels, *margins, kind), dtype)
    trip = pml_m.TripletMarginMiner(margin=0.5)(ref_emb, labels)
    got = ContrastiveLoss(*margins, distance=ours())(emb, labels, trip)
    ref = pml_l.ContrastiveLoss(pos_margin=margins[0], neg_margin=margins[1],
                                distance=theirs())(ref_emb, labels, trip)
    assert_close(got, ref, dtype)


def test_contrastive_single_pair_counts_unlike_pml():
    """The documented difference: one positive + one negative pair still give a loss."""
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    tup = (torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), torch.tensor([2]))
    d_ap, d_an = math.dist([1, 0], [0.6, 0.8]), math.dist([1, 0], [0, 1])
    expected = d_ap + max(0.0, 1.0 - d_an)
    assert abs(float(ContrastiveLoss()(emb, labels, tup)) - expected) < 1e-9
    assert float(pml_l.ContrastiveLoss()(emb, labels, tup)) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", DISTS)
@pytest.mark.parametrize("seed", range(3))
def test_ntxent_matches_naive_and_pml(kind, seed, dtype):
    emb, labels = batch(seed, n=16)
    emb, ref_emb = rounded(emb, dtype)
    ours, theirs = DISTS[kind]
    for t in (0.07, 0.5):
        got = NTXentLoss(t, distance=ours())(emb, labels)
        ref = pml_l.NTXentLoss(temperature=t, distance=theirs())(ref_emb, labels)
        assert_close(got, ref, dtype)
    # naive loop, T = 0.5
    d, lab = dist_np(ref_emb.numpy(), kind), labels.numpy()
    s = d if kind == "cosine" else -d
    terms = []
    for a in range(len(lab)):
        negs = [s[a, n] for n in range(len(lab)) if lab[n] != lab[a]]
        for p in range(len(lab)):
            if p != a and lab[p] == lab[a] and negs:
                den = math.exp(s[a, p] / 0.5) + sum(math.exp(v / 0.5) for v in negs)
                terms.append(-math.log(math.exp(s[a, p] / 0.5) / den))
    assert_close(NTXentLoss(0.5, distance=ours())(emb, labels), np.mean(terms), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(3))
def test_margin_ranking_matches_torch_and_pml_mean_reducer(seed, dtype):
    emb, ref_emb = rounded(batch(seed)[0], dtype)
    labels = batch(seed)[1]
    a, p, n = all_triplets(labels)
    e = torch.nn.functional.normalize(ref_emb, dim=1)
    s_ap, s_an = (e[a] * e[p]).sum(1), (e[a] * e[n]).sum(1)
    ref = torch.nn.MarginRankingLoss(margin=0.1)(s_ap, s_an, torch.ones_like(s_ap))
    got = MarginRankingLoss(0.1)(emb, labels)
    assert_close(got, ref, dtype)
    pml = pml_l.TripletMarginLoss(margin=0.1, distance=pml_d.CosineSimilarity(),
                                  reducer=MeanReducer())(ref_emb, labels)
    assert_close(got, pml, dtype)
    assert_close(got, naive_triplet(ref_emb, labels, 0.1, "cosine", "mean"), dtype)


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


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_pml(dtype):
    emb, labels = batch(5)
    emb, ref_emb = rounded(emb, dtype)
    e1 = emb.clone().requires_grad_(True)
    e2 = ref_emb.clone().requires_grad_(True)
    TripletMarginLoss(0.2)(e1, labels).backward()
    pml_l.TripletMarginLoss(margin=0.2)(e2, labels).backward()
    assert e1.grad.dtype == dtype                      # the gradient in the input dtype
    if dtype == torch.float64:
        assert torch.allclose(e1.grad, e2.grad, atol=1e-9)
    else:
        scale = float(e2.grad.abs().max())
        assert torch.allclose(e1.grad.double(), e2.grad, rtol=RTOL[dtype],
                              atol=RTOL[dtype] * scale)


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


@pytest.mark.parametrize("dtype", DTYPES)
def test_ntxent_with_repeated_and_mined_pairs_matches_pml(dtype):
    """Repeated (anchor, negative) pairs count as often as they occur (as in PML), and
    anchors without any negative contribute 0."""
    emb, labels = batch(9, n=16)
    emb, ref_emb = rounded(emb, dtype)
    trip = pml_m.TripletMarginMiner(margin=0.3)(ref_emb, labels)
    got = NTXentLoss(0.2)(emb, labels, trip)
    ref = pml_l.NTXentLoss(temperature=0.2)(ref_emb, labels, trip)
    assert_close(got, ref, dtype)
    tup = (torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0]), torch.tensor([0, 0, 0]),
           torch.tensor([2, 2, 3]))
    e = emb.clone().requires_grad_(True)
    got = NTXentLoss(0.2)(e, torch.tensor([0, 0, 1, 1] + [2] * 12), tup)
    ref = pml_l.NTXentLoss(temperature=0.2)(ref_emb, torch.tensor([0, 0, 1, 1] + [2] * 12), tup)
    assert_close(got, ref, dtype)
    got.backward()
    assert torch.isfinite(e.grad).all()


# --- 16-bit embeddings: the failures they used to give ------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_small_16_bit_batch_runs_and_matches_pml_in_float64(dtype):
    """``torch.cdist`` has no 16-bit CPU kernel: a small batch used to raise
    NotImplementedError. Now it is computed in float32 and returned in the input dtype."""
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(8, 16, generator=g).to(dtype).requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    for ours, theirs in ((TripletMarginLoss(), pml_l.TripletMarginLoss()),
                         (ContrastiveLoss(), pml_l.ContrastiveLoss()),
                         (NTXentLoss(), pml_l.NTXentLoss())):
        got = ours(emb, labels)
        assert_close(got, theirs(emb.detach().double(), labels), dtype)
        got.backward()
        assert emb.grad.dtype == dtype and torch.isfinite(emb.grad).all()
        emb.grad = None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [8, 64])     # cdist: direct kernel below 25 rows, matmul above
def test_lp_distance_diagonal_is_exactly_zero_and_rows_accurate(dtype, n):
    emb = torch.randn(n, 16, generator=torch.Generator().manual_seed(n)).to(dtype)
    mat = LpDistance()(emb)
    assert mat.dtype == dtype and mat.shape == (n, n)
    assert torch.equal(mat.diagonal(), torch.zeros(n, dtype=dtype))
    e = torch.nn.functional.normalize(emb.double(), dim=1)
    ref = (e[:, None, :] - e[None, :, :]).norm(dim=2)      # naive, float64
    # float32 inputs keep cdist's own (matmul-path) accuracy; 16 bits: output rounding only
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(dtype, 1e-5)
    assert (mat.double() - ref).abs().max() <= tol


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_loss_equals_the_float32_loss_rounded(dtype):
    """16-bit embeddings are computed exactly as their float32 upcast would be."""
    emb, labels = batch(3, n=40)
    low = emb.to(dtype)
    for loss in (TripletMarginLoss(0.1), ContrastiveLoss(), NTXentLoss(0.1),
                 MarginRankingLoss()):
        assert torch.equal(loss(low, labels), loss(low.float(), labels).to(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_joint_losses_in_every_dtype(dtype):
    """VSE / VSE++ / CLIP's InfoNCE: 16-bit batches are computed in float32."""
    from mmkit.losses import SymmetricInfoNCE, VSEHingeLoss

    g = torch.Generator().manual_seed(1)
    img = torch.randn(10, 6, generator=g, dtype=torch.float64)
    txt = img + 0.8 * torch.randn(10, 6, generator=g, dtype=torch.float64)
    img, img64 = rounded(img, dtype)
    txt, txt64 = rounded(txt, dtype)
    for loss in (VSEHingeLoss(0.2), VSEHingeLoss(0.2, max_violation=True),
                 SymmetricInfoNCE(learnable=False)):
        assert_close(loss(img, txt), loss(img64, txt64), dtype)


# --- labels and index tuples --------------------------------------------------------------

@pytest.mark.parametrize("ours, theirs", [(TripletMarginLoss, pml_l.TripletMarginLoss),
                                          (ContrastiveLoss, pml_l.ContrastiveLoss),
                                          (NTXentLoss, pml_l.NTXentLoss),
                                          (MarginRankingLoss, None)])
def test_labels_may_be_none_with_an_index_tuple_as_in_pml(ours, theirs):
    emb, labels = batch(4)
    for tup in (pml_m.TripletMarginMiner(margin=0.3)(emb, labels),
                pml_m.BatchEasyHardMiner()(emb, labels)):
        got = ours()(emb, None, tup)
        assert float(got) == float(ours()(emb, labels, tup))
        if theirs is not None:
            assert abs(float(got) - float(theirs()(emb, None, tup))) < 1e-9


@pytest.mark.parametrize("cls", LOSSES)
def test_missing_labels_is_a_one_line_input_error(cls):
    emb, labels = batch(4)
    with pytest.raises(ValueError, match="cannot both be None"):
        pml_l.TripletMarginLoss()(emb, None)       # PML refuses it too
    for call in (lambda: cls()(emb, None), lambda: cls()(emb)):
        with pytest.raises(InputError, match="labels are missing") as err:
            call()
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("tup, message", [
    ((torch.tensor([0]), torch.tensor([1]), torch.tensor([24])), "index 24, outside"),
    ((torch.tensor([-1]), torch.tensor([1]), torch.tensor([2])), "index -1, outside"),
    ((torch.tensor([0, 1]), torch.tensor([1]), torch.tensor([2])), "equal lengths"),
    ((torch.tensor([0]), torch.tensor([1]), torch.tensor([0, 1]), torch.tensor([2])),
     "equal lengths"),
    ((None, None, None), "integer index vectors"),
    ((torch.tensor([0.0]), torch.tensor([1]), torch.tensor([2])), "1-D integer"),
    ((torch.tensor([[0]]), torch.tensor([[1]]), torch.tensor([[2]])), "1-D integer"),
    ("abc", "3 \\(triplets\\) or 4"),
])
def test_bad_index_tuples_are_one_line_input_errors(tup, message):
    emb, labels = batch(0)
    for loss in (TripletMarginLoss(), ContrastiveLoss(), NTXentLoss()):
        for lab in (labels, None):
            with pytest.raises(InputError, match=message) as err:
                loss(emb, lab, tup)
            assert "\n" not in str(err.value)


# --- the documented differences from PML ---------------------------------------------------

@pytest.mark.parametrize("tup", [
    (torch.tensor([0]), torch.tensor([1]), torch.tensor([2])),                    # one triplet
    (torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), torch.tensor([2])),  # two pairs
])
def test_ntxent_single_entry_tuple_counts_unlike_pml(tup):
    """PML returns 0 when every index vector has at most one entry; mmkit computes the
    term: ``-log(e^(s_ap/T) / (e^(s_ap/T) + e^(s_an/T)))`` (documented in NTXentLoss)."""
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    t = 0.5
    s_ap, s_an = 0.6, 0.0                                   # cosines of (0, 1) and (0, 2)
    expected = -math.log(math.exp(s_ap / t) / (math.exp(s_ap / t) + math.exp(s_an / t)))
    assert abs(float(NTXentLoss(t)(emb, labels, tup)) - expected) < 1e-12
    assert float(pml_l.NTXentLoss(temperature=t)(emb, labels, tup)) == 0.0
    assert "PML returns 0" in NTXentLoss.__doc__

