"""Compact bilinear pooling (Tensor Sketch): the FFT product against the explicit sketch of
the outer product, count sketch against a loop, unbiased inner products, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmkit.encoders.bilinear import (CompactBilinearPooling, count_sketch,
                                     explicit_outer_sketch, tensor_sketch)
from mmkit.errors import InputError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def inputs(seed: int, b: int = 4, da: int = 3, db: int = 5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, da, generator=g, dtype=dtype),
            torch.randn(b, db, generator=g, dtype=dtype))


@pytest.mark.parametrize("seed", range(3))
def test_count_sketch_matches_loop(seed):
    x, _ = inputs(seed, da=9)
    rng = np.random.default_rng(seed)
    h = torch.from_numpy(rng.integers(0, 4, 9))
    s = torch.from_numpy(rng.choice([-1.0, 1.0], 9))
    ref = np.zeros((len(x), 4))
    for b in range(len(x)):
        for i in range(9):
            ref[b, int(h[i])] += float(s[i]) * float(x[b, i])
    assert np.allclose(count_sketch(x, h, s, 4).numpy(), ref, atol=1e-12)


def test_explicit_outer_sketch_matches_loop():
    a, b = inputs(7, b=2, da=3, db=4)
    rng = np.random.default_rng(1)
    h_a, h_b = rng.integers(0, 5, 3), rng.integers(0, 5, 4)
    s_a, s_b = rng.choice([-1.0, 1.0], 3), rng.choice([-1.0, 1.0], 4)
    ref = np.zeros((2, 5))
    for r in range(2):
        for i in range(3):
            for j in range(4):
                ref[r, (h_a[i] + h_b[j]) % 5] += s_a[i] * s_b[j] * float(a[r, i] * b[r, j])
    got = explicit_outer_sketch(a, b, torch.from_numpy(h_a), torch.from_numpy(s_a),
                                torch.from_numpy(h_b), torch.from_numpy(s_b), 5)
    assert np.allclose(got.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("dims", [(3, 5, 7), (4, 4, 16), (6, 2, 5), (1, 3, 1), (8, 8, 64)])
@pytest.mark.parametrize("seed", range(3))
def test_fft_equals_explicit_outer_product_sketch(dims, seed):
    da, db, out = dims
    a, b = inputs(seed, da=da, db=db)
    pool = CompactBilinearPooling(da, db, out, seed=seed, signed_sqrt=False, l2=False)
    got = pool(a, b)
    ref = explicit_outer_sketch(a, b, pool.h_a, pool.s_a, pool.h_b, pool.s_b, out)
    assert got.shape == (len(a), out) and got.dtype == torch.float64
    assert torch.allclose(got, ref, atol=1e-12, rtol=0)
    assert torch.allclose(tensor_sketch(a, b, pool.h_a, pool.s_a, pool.h_b, pool.s_b, out),
                          ref, atol=1e-12, rtol=0)


def test_sketch_is_bilinear():
    a, b = inputs(3)
    a2, _ = inputs(4)
    pool = CompactBilinearPooling(3, 5, 11, signed_sqrt=False, l2=False)
    assert torch.allclose(pool(2 * a + a2, b), 2 * pool(a, b) + pool(a2, b), atol=1e-12)
    assert torch.allclose(pool(a, -3 * b), -3 * pool(a, b), atol=1e-12)


def test_inner_products_are_preserved_in_expectation():
    """<Psi(a, b), Psi(a', b')> over many seeds (hashes, signs) averages to <a, a'><b, b'>
    (Pham & Pagh 2013), within a few standard errors; a' = a, b' = b gives the norms."""
    g = torch.Generator().manual_seed(0)
    a, a2 = torch.randn(2, 6, generator=g, dtype=torch.float64)
    b, b2 = torch.randn(2, 5, generator=g, dtype=torch.float64)
    a2 = a2 + 0.7 * a                      # correlated, so the target is far from 0
    b2 = b2 + 0.7 * b
    lhs, rhs = torch.stack([a, a]), torch.stack([b, b])       # rows: (a, b) and (a, b)
    lhs2, rhs2 = torch.stack([a2, a]), torch.stack([b2, b])   # rows: (a', b') and (a, b)
    est = []
    for seed in range(3000):
        pool = CompactBilinearPooling(6, 5, 8, seed=seed, signed_sqrt=False, l2=False)
        est.append((pool(lhs, rhs) * pool(lhs2, rhs2)).sum(1))
    est = torch.stack(est)                                                   # [seeds, 2]
    truth = torch.stack([(a @ a2) * (b @ b2), (a @ a) * (b @ b)])
    mean, se = est.mean(0), est.std(0) / np.sqrt(len(est))
    assert (est.std(0) > 0).all()          # a real estimate, not exact for one seed
    assert ((mean - truth).abs() < 4 * se).all(), (mean, truth, se)
    # a single sketch of this size is a noisy estimate; the average is what is unbiased
    assert (se < 0.1 * truth.abs()).all()


def test_determinism_and_state_dict():
    a, b = inputs(5, da=7, db=9)
    p1 = CompactBilinearPooling(7, 9, 32, seed=3)
    p2 = CompactBilinearPooling(7, 9, 32, seed=3)
    p3 = CompactBilinearPooling(7, 9, 32, seed=4)
    assert torch.equal(p1(a, b), p2(a, b))
    for name in ("h_a", "s_a", "h_b", "s_b"):
        assert torch.equal(getattr(p1, name), getattr(p2, name))
    assert not torch.equal(p1.h_a, p3.h_a) or not torch.equal(p1.h_b, p3.h_b)
    assert set(p1.state_dict()) == {"h_a", "s_a", "h_b", "s_b"}
    assert list(p1.parameters()) == []
    assert set(p1.s_a.unique().tolist()) <= {-1.0, 1.0}
    assert int(p1.h_a.min()) >= 0 and int(p1.h_b.max()) < 32
    # the two inputs get different hashes (drawn one after the other)
    square = CompactBilinearPooling(16, 16, 64, seed=0)
    assert not torch.equal(square.h_a, square.h_b)


def test_post_processing_signed_sqrt_and_l2():
    a, b = inputs(6, b=5, da=4, db=6)
    raw = CompactBilinearPooling(4, 6, 20, seed=1, signed_sqrt=False, l2=False)(a, b)
    out = CompactBilinearPooling(4, 6, 20, seed=1)(a, b)
    assert torch.allclose(out.norm(dim=1), torch.ones(5, dtype=out.dtype))
    assert torch.equal(torch.sign(out), torch.sign(raw))
    # out^2 is proportional to |raw| within each row (that is what sqrt then L2 means);
    # empty buckets (24 outer-product entries into 20) hold only FFT round-off: skip them
    ratio = out ** 2 / raw.abs()
    norms = (raw.abs().sum(1, keepdim=True) / out.pow(2).sum(1, keepdim=True))
    full = raw.abs() > 1e-9
    assert (~full).any() and full.sum() > 60
    assert torch.allclose(ratio[full], (1 / norms).expand_as(ratio)[full], rtol=1e-6)
    only_l2 = CompactBilinearPooling(4, 6, 20, seed=1, signed_sqrt=False)(a, b)
    assert torch.allclose(only_l2, raw / raw.norm(dim=1, keepdim=True))


def test_gradients_flow():
    a, b = inputs(8, da=3, db=4)
    a.requires_grad_(True)
    b.requires_grad_(True)
    raw = CompactBilinearPooling(3, 4, 6, seed=2, signed_sqrt=False, l2=False)
    assert torch.autograd.gradcheck(raw, (a, b))
    pool = CompactBilinearPooling(3, 4, 6, seed=2)
    w = torch.randn(len(a), 6, generator=torch.Generator().manual_seed(0), dtype=a.dtype)
    (pool(a, b) * w).sum().backward()
    for g in (a.grad, b.grad):
        assert torch.isfinite(g).all() and float(g.abs().sum()) > 0
    # float32 and a zero row: finite gradients (the eps under the signed square root)
    z = torch.zeros(2, 3, requires_grad=True)
    y = torch.randn(2, 4, requires_grad=True)
    CompactBilinearPooling(3, 4, 6)(z, y).sum().backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(y.grad).all()


def test_bad_input_is_one_line_input_error():
    pool = CompactBilinearPooling(3, 4, 8)
    a, b = torch.randn(2, 3), torch.randn(2, 4)
    cases = [((torch.randn(2, 5), b), "3 features"),
             ((a, torch.randn(2, 3)), "4 features"),
             ((a, torch.randn(3, 4)), "same batch size"),
             ((torch.randn(3), b), "2-D"),
             ((a.numpy(), b), "torch.Tensor"),
             ((torch.ones(2, 3, dtype=torch.long), b), "floating point")]
    for args, match in cases:
        with pytest.raises(InputError, match=match) as err:
            pool(*args)
        assert "\n" not in str(err.value)
    for kw in ({"in_dim_a": 0}, {"out_dim": 0}, {"in_dim_b": 2.5}):
        with pytest.raises(InputError, match="positive int"):
            CompactBilinearPooling(**{"in_dim_a": 3, "in_dim_b": 4, "out_dim": 8, **kw})
    with pytest.raises(InputError, match=r"\[0, 4\)"):
        count_sketch(a, torch.tensor([0, 1, 4]), torch.ones(3), 4)
    with pytest.raises(InputError, match="shape \\(3,\\)"):
        count_sketch(a, torch.tensor([0, 1]), torch.ones(2), 4)
    with pytest.raises(InputError, match="integers"):
        count_sketch(a, torch.tensor([0.0, 1.0, 2.0]), torch.ones(3), 4)
