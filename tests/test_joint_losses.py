"""Joint-embedding losses (VSE / VSE++ hinge, CLIP's symmetric InfoNCE) against naive loops
over pairs, torch's cross_entropy and pytorch-metric-learning's NTXentLoss."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_l

from mmkit.errors import InputError
from mmkit.losses import SymmetricInfoNCE, VSEHingeLoss

IDS = {"distinct": None,
       "duplicates": torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 5, 5]),
       "shuffled_dups": torch.tensor([7, 3, 7, 1, 3, 9, 9, 9, 2, 4])}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pair_batch(seed: int, b: int = 10, d: int = 6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(b, d, generator=g, dtype=dtype)
    txt = img + 0.8 * torch.randn(b, d, generator=g, dtype=dtype)   # correlated pairs
    return img, txt


def cos_matrix(img: torch.Tensor, txt: torch.Tensor) -> list[list[float]]:
    """s(i, c) by a plain loop over pairs."""
    a, b = img.detach().numpy(), txt.detach().numpy()
    return [[float(a[i] @ b[c] / (np.linalg.norm(a[i]) * np.linalg.norm(b[c])))
             for c in range(len(b))] for i in range(len(a))]


def id_list(ids, b: int) -> list[int]:
    return list(range(b)) if ids is None else [int(x) for x in ids]


def naive_vse(img, txt, ids, margin, max_violation, reduction="mean") -> float:
    s, lab, n = cos_matrix(img, txt), id_list(ids, len(img)), len(img)
    total = 0.0
    for q in range(n):
        negs = [k for k in range(n) if lab[k] != lab[q]]
        if not negs:
            continue
        if max_violation:      # the hinge at the most similar negative, in each direction
            hard_c = max(negs, key=lambda c: s[q][c])
            hard_i = max(negs, key=lambda i: s[i][q])
            total += max(0.0, margin - s[q][q] + s[q][hard_c])
            total += max(0.0, margin - s[q][q] + s[hard_i][q])
        else:
            total += sum(max(0.0, margin - s[q][q] + s[q][c]) for c in negs)
            total += sum(max(0.0, margin - s[q][q] + s[i][q]) for i in negs)
    return total / n if reduction == "mean" else total


def naive_infonce(img, txt, ids, scale) -> float:
    """Each row's positive is its own pair; other same-id columns are left out."""
    s, lab, n = cos_matrix(img, txt), id_list(ids, len(img)), len(img)
    rows, cols = [], []
    for q in range(n):
        keep = [k for k in range(n) if k == q or lab[k] != lab[q]]
        rows.append(-scale * s[q][q] + math.log(sum(math.exp(scale * s[q][c]) for c in keep)))
        cols.append(-scale * s[q][q] + math.log(sum(math.exp(scale * s[i][q]) for i in keep)))
    return (sum(rows) / n + sum(cols) / n) / 2


# ---------------------------------------------------------------- VSE / VSE++ hinge


@pytest.mark.parametrize("ids_name", IDS)
@pytest.mark.parametrize("max_violation", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_vse_matches_naive_loop(ids_name, max_violation, seed):
    img, txt = pair_batch(seed)
    ids = IDS[ids_name]
    for margin in (0.05, 0.2, 0.6):
        for reduction in ("mean", "sum"):
            got = VSEHingeLoss(margin, max_violation, reduction)(img, txt, ids)
            ref = naive_vse(img, txt, ids, margin, max_violation, reduction)
            assert abs(got.item() - ref) < 1e-9, (margin, reduction)


def test_vse_inputs_need_not_be_normalised():
    img, txt = pair_batch(4)
    loss = VSEHingeLoss(0.2)
    a = loss(img, txt)
    b = loss(3.0 * F.normalize(img, dim=1), 0.5 * F.normalize(txt, dim=1))
    assert abs(float(a) - float(b)) < 1e-12


def test_vse_duplicates_are_never_negatives():
    """Two captions of one image, both very close to it: with ids they cost nothing; treated
    as distinct (ids=None) the second caption is a false negative and costs a lot."""
    base = torch.eye(4, dtype=torch.float64)
    img = torch.stack([base[0], base[0], base[1], base[2]])     # rows 0 and 1: one image
    txt = torch.stack([base[0], base[0] + 0.01 * base[3], base[1], base[2]])
    ids = torch.tensor([5, 5, 6, 7])
    for mv in (False, True):
        assert float(VSEHingeLoss(0.2, mv)(img, txt, ids)) == 0.0
        # ids=None: 4 false-negative hinges of about the margin each, over 4 pairs
        assert float(VSEHingeLoss(0.2, mv)(img, txt)) > 0.15
    # one scene only: no negative at all -> 0 (with a gradient path)
    e = img.clone().requires_grad_(True)
    value = VSEHingeLoss(0.2)(e, txt, torch.zeros(4, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0 and float(e.grad.abs().sum()) == 0.0


def nonzero_rows(grad: torch.Tensor) -> set[int]:
    return {int(i) for i in torch.where(grad.abs().sum(1) > 1e-12)[0]}


@pytest.mark.parametrize("ids_name", ["distinct", "duplicates"])
@pytest.mark.parametrize("seed", range(3))
def test_vse_pp_gradient_touches_only_the_hardest_negative(ids_name, seed):
    img0, txt0 = pair_batch(seed, d=5)
    ids = IDS[ids_name]
    s, lab, n = cos_matrix(img0, txt0), id_list(ids, len(img0)), len(img0)
    margin = 0.5
    checked = 0
    for q in range(n):
        negs = [k for k in range(n) if lab[k] != lab[q]]
        hard_c = max(negs, key=lambda c: s[q][c])
        if margin - s[q][q] + s[q][hard_c] <= 0:
            continue
        active = [c for c in negs if margin - s[q][q] + s[q][c] > 0]
        for mv, expect_txt in ((True, {q, hard_c}), (False, {q, *active})):
            img, txt = img0.clone().requires_grad_(True), txt0.clone().requires_grad_(True)
            i2t, _ = VSEHingeLoss(margin, mv).per_pair(img, txt, ids)
            i2t[q].backward()                       # image q querying the captions
            assert nonzero_rows(txt.grad) == expect_txt
            assert nonzero_rows(img.grad) == {q}
        checked += 1
    assert checked >= 3
    # the whole VSE++ loss: the rows with a gradient are the queries with an active hinge
    # and their hardest negatives, nothing else
    img, txt = img0.clone().requires_grad_(True), txt0.clone().requires_grad_(True)
    VSEHingeLoss(margin, True)(img, txt, ids).backward()
    want_img, want_txt = set(), set()
    for q in range(n):
        negs = [k for k in range(n) if lab[k] != lab[q]]
        hard_c = max(negs, key=lambda c: s[q][c])
        hard_i = max(negs, key=lambda i: s[i][q])
        if margin - s[q][q] + s[q][hard_c] > 0:
            want_img.add(q)
            want_txt |= {q, hard_c}
        if margin - s[q][q] + s[hard_i][q] > 0:
            want_txt.add(q)
            want_img |= {q, hard_i}
    assert nonzero_rows(img.grad) == want_img
    assert nonzero_rows(txt.grad) == want_txt


def test_vse_stats_count_active_hinges():
    img, txt = pair_batch(1)
    loss = VSEHingeLoss(0.2)
    loss(img, txt, IDS["duplicates"])
    ids = IDS["duplicates"]
    n_neg = int((ids[:, None] != ids[None, :]).sum())
    assert loss.stats["terms"] == 2 * n_neg
    assert 0 < loss.stats["active"] <= loss.stats["terms"]
    assert 0.0 < loss.active_fraction <= 1.0
    hard = VSEHingeLoss(0.2, max_violation=True)
    hard(img, txt)
    assert hard.stats["terms"] == 2 * len(img)


# ---------------------------------------------------------------- symmetric InfoNCE


@pytest.mark.parametrize("ids_name", IDS)
@pytest.mark.parametrize("seed", range(3))
def test_infonce_matches_naive_loop(ids_name, seed):
    img, txt = pair_batch(seed)
    ids = IDS[ids_name]
    for t in (0.07, 0.5):
        for learnable in (True, False):
            loss = SymmetricInfoNCE(temperature=t, learnable=learnable)
            got = loss(img, txt, ids)
            assert abs(got.item() - naive_infonce(img, txt, ids, 1 / t)) < 1e-5
            assert abs(loss.temperature - t) < 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_infonce_fixed_matches_torch_cross_entropy(seed):
    img, txt = pair_batch(seed, b=12)
    t = 0.1
    logits = F.normalize(img, dim=1) @ F.normalize(txt, dim=1).T / t     # explicit [B, B]
    target = torch.arange(12)
    ref = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    loss = SymmetricInfoNCE(temperature=t, learnable=False)
    assert abs(float(loss(img, txt)) - float(ref)) < 1e-9
    assert list(loss.parameters()) == [] and "log_scale" in dict(loss.named_buffers())


@pytest.mark.parametrize("ids_name", IDS)
@pytest.mark.parametrize("seed", range(3))
def test_infonce_matches_pml_ntxent_with_cross_modal_negatives(ids_name, seed):
    """PML's NTXentLoss on the stacked batch [img; txt] coincides with ours when its pairs
    are restricted to ours: positives (img_b, txt_b) and (txt_b, img_b) only, negatives the
    CROSS-modal pairs of different scenes. With PML's default (all pairs), the formulations
    differ: it also uses image-image and text-text negatives (a larger denominator, so a
    larger loss) and, with duplicate ids, makes same-scene pairs extra positives."""
    img, txt = pair_batch(seed)
    b = len(img)
    ids = torch.arange(b) if IDS[ids_name] is None else IDS[ids_name]
    t = 0.2
    emb, labels = torch.cat([img, txt]), torch.cat([ids, ids])
    ar = torch.arange(b)
    ii, cc = torch.where(ids[:, None] != ids[None, :])
    tup = (torch.cat([ar, ar + b]), torch.cat([ar + b, ar]),
           torch.cat([ii, cc + b]), torch.cat([cc + b, ii]))
    ref = pml_l.NTXentLoss(temperature=t)(emb, labels, tup)
    ours = SymmetricInfoNCE(temperature=t, learnable=False)(img, txt, IDS[ids_name])
    assert abs(float(ours) - float(ref)) < 1e-9
    if IDS[ids_name] is None:
        default = pml_l.NTXentLoss(temperature=t)(emb, labels)
        assert float(default) > float(ours) + 1e-3


def test_infonce_gradients_reach_embeddings_and_log_scale():
    img, txt = pair_batch(2)
    img.requires_grad_(True)
    txt.requires_grad_(True)
    loss = SymmetricInfoNCE(0.07, learnable=True)
    assert [n for n, _ in loss.named_parameters()] == ["log_scale"]
    loss(img, txt, IDS["duplicates"]).backward()
    for g in (img.grad, txt.grad, loss.log_scale.grad):
        assert g is not None and torch.isfinite(g).all() and float(g.abs().sum()) > 0
    # d loss / d log_scale by a central difference of the naive loop
    h, s0 = 1e-5, math.log(1 / 0.07)
    num = (naive_infonce(img, txt, IDS["duplicates"], math.exp(s0 + h))
           - naive_infonce(img, txt, IDS["duplicates"], math.exp(s0 - h))) / (2 * h)
    assert abs(loss.log_scale.grad.item() - num) < 1e-4 * max(1.0, abs(num))


def test_infonce_gradient_accumulation_over_two_forwards():
    """The in-place clamp at each forward must not break a graph built by an earlier one."""
    img, txt = pair_batch(3)
    loss = SymmetricInfoNCE(0.07)
    total = loss(img, txt) + loss(txt, img)
    total.backward()
    assert torch.isfinite(loss.log_scale.grad)


def test_infonce_logit_scale_is_clamped_and_never_stuck():
    img, txt = pair_batch(5, b=8)
    cap = 25.0
    loss = SymmetricInfoNCE(temperature=1 / 20, learnable=True, max_logit_scale=cap)
    opt = torch.optim.SGD(loss.parameters(), lr=5.0)
    aligned = F.normalize(img, dim=1)
    for _ in range(20):     # identical pairs: a larger scale always lowers the loss
        opt.zero_grad()
        loss(aligned, aligned).backward()
        opt.step()
    assert loss.log_scale.item() > math.log(cap)          # the last step overshot ...
    assert loss.logit_scale == cap and abs(loss.temperature - 1 / cap) < 1e-12
    value = loss(img, txt)                                # ... and the forward clamps it
    assert loss.log_scale.item() == pytest.approx(math.log(cap), abs=1e-6)
    assert abs(value.item() - naive_infonce(img, txt, None, cap)) < 1e-4
    # at the cap the gradient still flows: misaligned pairs pull the scale back down
    wrong = torch.roll(aligned, 1, dims=0)
    opt.zero_grad()
    loss(aligned, wrong).backward()
    assert loss.log_scale.grad.item() > 0
    opt.step()
    assert loss.logit_scale < cap
    # no cap: no clamp
    free = SymmetricInfoNCE(temperature=1 / 20, max_logit_scale=None)
    with torch.no_grad():
        free.log_scale.fill_(math.log(500.0))
    free(img, txt)
    assert loss.max_logit_scale == cap and free.logit_scale == pytest.approx(500.0)


def test_infonce_one_scene_is_zero_and_duplicates_leave_softmax():
    img, txt = pair_batch(6, b=5)
    assert SymmetricInfoNCE(0.1)(img, txt, torch.zeros(5, dtype=torch.long)).item() == 0.0
    # a same-scene caption identical to the image would dominate the softmax if it counted
    base = torch.eye(3, dtype=torch.float64)
    im = torch.stack([base[0], base[0], base[1]])
    tx = torch.stack([base[0] + 0.3 * base[2], base[0], base[1]])
    with_ids = SymmetricInfoNCE(0.1, learnable=False)(im, tx, torch.tensor([0, 0, 1]))
    without = SymmetricInfoNCE(0.1, learnable=False)(im, tx)
    assert with_ids.item() < 0.01 < without.item()


# ---------------------------------------------------------------- both losses


def recall_at_1(f, g, x, y) -> float:
    with torch.no_grad():
        s = F.normalize(f(x), dim=1) @ F.normalize(g(y), dim=1).T
    return float((s.argmax(1) == torch.arange(len(x))).float().mean())


@pytest.mark.parametrize("make", [lambda: VSEHingeLoss(0.2),
                                  lambda: VSEHingeLoss(0.2, max_violation=True),
                                  lambda: SymmetricInfoNCE(0.07)],
                         ids=["vse", "vse++", "infonce"])
def test_tiny_optimisation_raises_in_batch_recall(make):
    g = torch.Generator().manual_seed(0)
    lat = torch.randn(640, 4, generator=g)
    a_map, b_map = torch.randn(4, 16, generator=g), torch.randn(4, 12, generator=g)
    x = lat @ a_map + 0.3 * torch.randn(640, 16, generator=g)
    y = lat @ b_map + 0.3 * torch.randn(640, 12, generator=g)
    torch.manual_seed(0)
    f, h = torch.nn.Linear(16, 8), torch.nn.Linear(12, 8)
    loss = make()
    opt = torch.optim.Adam([*f.parameters(), *h.parameters(), *loss.parameters()], lr=1e-2)
    test_x, test_y = x[512:], y[512:]                  # a held-out batch of 128 pairs
    before = recall_at_1(f, h, test_x, test_y)
    for step in range(150):
        idx = torch.randint(0, 512, (64,), generator=g)
        ids = idx                                      # repeated draws are duplicates
        opt.zero_grad()
        loss(f(x[idx]), h(y[idx]), ids).backward()
        opt.step()
    after = recall_at_1(f, h, test_x, test_y)
    assert after > before + 0.2 and after > 10 / 128, (before, after)


@pytest.mark.parametrize("cls", [VSEHingeLoss, SymmetricInfoNCE])
def test_bad_input_is_one_line_input_error(cls):
    loss = cls()
    img = torch.randn(4, 3)
    cases = [((img, torch.randn(4, 5)), "same shape"),
             ((img, torch.randn(5, 3)), "same shape"),
             ((img[:1], img[:1]), "at least 2"),
             ((img, img, torch.tensor([0, 1, 2])), "one id per pair"),
             ((img, img, torch.zeros(4, 1, dtype=torch.long)), "one id per pair"),
             ((img, img, torch.zeros(4)), "integers"),
             ((img, img, ["a", "b", "c", "d"]), "image_ids"),
             ((img.numpy(), img), "torch.Tensor"),
             ((torch.randn(4), torch.randn(4)), "2-D"),
             ((torch.ones(4, 3, dtype=torch.long), img), "floating point"),
             ((img, img.double()), "dtype")]
    for args, match in cases:
        with pytest.raises(InputError, match=match) as err:
            loss(*args)
        assert "\n" not in str(err.value)
    # ids as a list or numpy array are accepted
    ref = loss(img, img, torch.tensor([0, 0, 1, 2])).item()
    assert loss(img, img, [0, 0, 1, 2]).item() == pytest.approx(ref)
    assert loss(img, img, np.array([0, 0, 1, 2])).item() == pytest.approx(ref)


def test_bad_options_are_input_errors():
    with pytest.raises(InputError, match="reduction"):
        VSEHingeLoss(reduction="max")
    with pytest.raises(InputError, match="temperature must be > 0"):
        SymmetricInfoNCE(temperature=0.0)
    with pytest.raises(InputError, match="exceeds max_logit_scale"):
        SymmetricInfoNCE(temperature=0.001, max_logit_scale=100.0)
