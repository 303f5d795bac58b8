"""mmkit.metrics.significance against scipy.stats (bootstrap, permutation_test, ttest_rel).

Two kinds of cross-check:

- same random stream or exact enumeration on both sides: the numbers must agree to 1e-12;
- independent random streams: the numbers must agree within 5 Monte Carlo standard errors
  of their difference, each error computed from the data and the number of resamples (see
  the helpers), so a failure means a wrong convention, not bad luck (a 5-sigma miss has
  probability below 1e-6, and every seed here is fixed, so the tests are deterministic).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import mmkit.metrics as mm
import mmkit.metrics.significance as sig
from mmkit.errors import InputError

EXACT = 1e-12


def ap_like(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    """Per-query scores in [0, 1] with many zeros and ones, like per-query AP."""
    rng = np.random.default_rng(seed)
    x = np.clip(rng.beta(0.8, 2.0, n) + shift, 0.0, 1.0)
    x[rng.random(n) < 0.15] = 0.0
    return x


def paired(seed: int, n: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated 'systems' on the same queries; a is better by ``effect`` on average
    (differences ~ N(effect, 0.15^2): with 200 queries the mean has sd about 0.011)."""
    rng = np.random.default_rng(seed)
    b = ap_like(seed, n)
    return b + effect + rng.normal(0.0, 0.15, n), b


def mean_stat(*samples, axis=-1):
    return np.mean(samples[0], axis=axis)


def diff_stat(x, y, axis=-1):
    return np.mean(x - y, axis=axis)


# --------------------------------------------------------------------- bootstrap
@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_bootstrap_ci_equals_scipy_with_the_same_stream(seed, confidence):
    x = ap_like(seed, 150)
    mean, low, high = mm.bootstrap_ci(x, n_resamples=2000, confidence=confidence, seed=seed)
    ref = scipy.stats.bootstrap((x,), mean_stat, n_resamples=2000, confidence_level=confidence,
                                method="percentile", vectorized=True,
                                rng=np.random.default_rng(seed))
    assert mean == pytest.approx(x.mean(), abs=EXACT)
    assert low == pytest.approx(ref.confidence_interval.low, abs=EXACT)
    assert high == pytest.approx(ref.confidence_interval.high, abs=EXACT)
    dist = mm.bootstrap_distribution(x, 2000, seed)
    np.testing.assert_allclose(dist, ref.bootstrap_distribution, rtol=0, atol=EXACT)


def quantile_mc_se(x: np.ndarray, p: float, n_resamples: int) -> float:
    """Monte Carlo standard error of the p-quantile of B bootstrap means.

    The sample p-quantile of B draws has standard error sqrt(p (1 - p) / B) / f(q_p), f the
    density at the quantile. The bootstrap distribution of a mean of Q values is close to
    normal with sd = std(x) / sqrt(Q), so f(q_p) = phi(z_p) / sd.
    """
    sd = x.std() / np.sqrt(x.size)
    return float(np.sqrt(p * (1 - p) / n_resamples) / scipy.stats.norm.pdf(
        scipy.stats.norm.ppf(p)) * sd)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bootstrap_ci_matches_scipy_within_monte_carlo_error(seed):
    x = ap_like(seed, 300)
    b = 10000
    mean, low, high = mm.bootstrap_ci(x, n_resamples=b, seed=seed)
    ref = scipy.stats.bootstrap((x,), mean_stat, n_resamples=b, method="percentile",
                                vectorized=True, rng=np.random.default_rng(1000 + seed))
    tol = 5 * np.sqrt(2) * quantile_mc_se(x, 0.025, b)  # two independent estimates
    assert abs(low - ref.confidence_interval.low) < tol
    assert abs(high - ref.confidence_interval.high) < tol
    assert low < mean < high
    # the interval is about +-1.96 standard errors wide (normal theory), to 10%
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert (high - low) == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_bootstrap_degenerate_inputs():
    assert mm.bootstrap_ci([0.25]) == (0.25, 0.25, 0.25)
    assert mm.bootstrap_ci(np.full(40, 0.5), n_resamples=50) == (0.5, 0.5, 0.5)
    mean, low, high = mm.bootstrap_ci(np.arange(2), n_resamples=1)
    assert mean == 0.5 and low == high


# ----------------------------------------------------------- permutation (sign flip)
def scipy_paired_permutation(a, b, n_resamples, rng=None):
    return scipy.stats.permutation_test((a, b), diff_stat, permutation_type="samples",
                                        vectorized=True, n_resamples=n_resamples,
                                        alternative="two-sided", rng=rng)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [2, 5, 11])
def test_exact_permutation_test_equals_scipy(seed, n):
    a, b = paired(seed, n, effect=0.1)
    mean_diff, p = mm.paired_permutation_test(a, b, n_resamples=5000)
    ref = scipy_paired_permutation(a, b, n_resamples=5000)  # 2**n <= 5000: both enumerate
    assert ref.null_distribution.size == 2**n
    assert mean_diff == pytest.approx(ref.statistic, abs=EXACT)
    assert p == pytest.approx(ref.pvalue, abs=EXACT)
    null = mm.sign_flip_distribution(a - b, n_resamples=5000)
    np.testing.assert_allclose(np.sort(null), np.sort(ref.null_distribution), rtol=0, atol=EXACT)


def test_exact_permutation_test_with_tied_values_equals_scipy():
    """Discrete scores (0, 1/2, 1) make many sign patterns tie with the observed mean."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        a, b = (rng.integers(0, 3, 10) / 2.0 for _ in range(2))
        p = mm.paired_permutation_test(a, b, n_resamples=2**10).p_value
        assert p == pytest.approx(scipy_paired_permutation(a, b, 2**10).pvalue, abs=EXACT)
        # an exact p-value is a count over the 2^Q sign vectors
        assert p * 2**10 == pytest.approx(round(p * 2**10), abs=1e-9)


@pytest.mark.parametrize("seed,effect", [(0, 0.02), (1, 0.03), (2, 0.0), (3, 0.01)])
def test_monte_carlo_permutation_test_matches_scipy(seed, effect):
    a, b = paired(seed, 200, effect)
    n = 10000
    mean_diff, p = mm.paired_permutation_test(a, b, n_resamples=n, seed=seed)
    ref = scipy_paired_permutation(a, b, n, rng=np.random.default_rng(1000 + seed))
    assert mean_diff == pytest.approx(ref.statistic, abs=EXACT)
    # our p estimates P(|T*| >= |T|) from n draws: se sqrt(p(1-p)/n); scipy's doubles a
    # one-sided estimate of p/2: se 2 sqrt((p/2)(1-p/2)/n). Both estimate the same p.
    pbar = (p + ref.pvalue) / 2
    se = np.sqrt(pbar * (1 - pbar) / n + 4 * (pbar / 2) * (1 - pbar / 2) / n)
    assert abs(p - ref.pvalue) < 5 * se + 2 / n  # + the two +1 corrections


def test_monte_carlo_p_value_is_never_zero_and_grows_with_noise():
    a, b = paired(5, 300, effect=0.3)
    n = 999
    assert mm.paired_permutation_test(a, b, n_resamples=n).p_value == 1 / (n + 1)
    assert mm.paired_permutation_test(a, a.copy(), n_resamples=n).p_value == 1.0
    assert mm.paired_permutation_test([0.7], [0.2]) == (pytest.approx(0.5), 1.0)  # exact, 2 flips
    assert mm.paired_permutation_test(a, b).mean_diff == pytest.approx(np.mean(a - b))


def test_permutation_test_is_symmetric_in_its_arguments():
    a, b = paired(6, 120, effect=0.02)
    ab, ba = mm.paired_permutation_test(a, b, seed=3), mm.paired_permutation_test(b, a, seed=3)
    assert ab.mean_diff == pytest.approx(-ba.mean_diff, abs=EXACT)
    assert ab.p_value == ba.p_value


# ------------------------------------------------------------ paired bootstrap, t-test
def test_paired_bootstrap_test_from_its_definition():
    a, b = paired(8, 150, effect=0.02)
    d = a - b
    n = 3000
    rng = np.random.default_rng(11)
    means = d[rng.integers(0, d.size, size=(n, d.size))].mean(axis=1)
    expected = (1 + np.count_nonzero(np.abs(means - d.mean()) >= abs(d.mean()))) / (n + 1)
    mean_diff, p = mm.paired_bootstrap_test(a, b, n_resamples=n, seed=11)
    assert mean_diff == pytest.approx(d.mean(), abs=EXACT)
    assert p == pytest.approx(expected, abs=EXACT)


@pytest.mark.parametrize("seed,effect", [(0, 0.005), (1, 0.01), (2, 0.015)])
def test_tests_agree_with_normal_theory_on_many_queries(seed, effect):
    """With 500 queries the mean difference is close to normal: the randomisation, bootstrap
    and t-test p-values estimate nearly the same number (loose bound: 0.03 + 5 MC errors)."""
    a, b = paired(seed, 500, effect)
    t = mm.paired_t_test(a, b)
    assert t.p_value == pytest.approx(scipy.stats.ttest_rel(a, b).pvalue, abs=EXACT)
    for test in (mm.paired_permutation_test, mm.paired_bootstrap_test):
        p = test(a, b, n_resamples=10000, seed=seed).p_value
        assert abs(p - t.p_value) < 0.03 + 5 * np.sqrt(t.p_value * (1 - t.p_value) / 10000)


def test_t_test_constant_differences():
    a = np.arange(10) / 8.0  # a + 0.5 - a is exactly 0.5 everywhere
    assert mm.paired_t_test(a, a) == (0.0, 1.0)
    assert mm.paired_t_test(a + 0.5, a) == (pytest.approx(0.5), 0.0)
    with pytest.raises(InputError, match="at least 2"):
        mm.paired_t_test([0.3], [0.2])


# ------------------------------------------------------------------- determinism
def test_same_seed_same_numbers_other_seed_other_numbers():
    x = ap_like(9, 80)
    a, b = paired(9, 80, 0.02)
    assert mm.bootstrap_ci(x, seed=4) == mm.bootstrap_ci(x, seed=4)
    assert mm.bootstrap_ci(x, seed=4) != mm.bootstrap_ci(x, seed=5)
    assert mm.paired_permutation_test(a, b, 2000, seed=4) == \
        mm.paired_permutation_test(a, b, 2000, seed=4)
    np.testing.assert_array_equal(mm.sign_flip_distribution(a - b, 500, 1),
                                  mm.sign_flip_distribution(a - b, 500, 1))
    assert not np.array_equal(mm.sign_flip_distribution(a - b, 500, 1),
                              mm.sign_flip_distribution(a - b, 500, 2))


def test_results_do_not_depend_on_chunking(monkeypatch):
    x = ap_like(10, 90)
    a, b = paired(10, 90, 0.02)
    full = (mm.bootstrap_distribution(x, 700, 3), mm.sign_flip_distribution(a - b, 700, 3),
            mm.sign_flip_distribution(a[:9] - b[:9], 700), mm.paired_bootstrap_test(a, b, 700))
    monkeypatch.setattr(sig, "_CHUNK_ELEMENTS", 7 * 90 + 5)  # chunks of 7 rows
    chunked = (mm.bootstrap_distribution(x, 700, 3), mm.sign_flip_distribution(a - b, 700, 3),
               mm.sign_flip_distribution(a[:9] - b[:9], 700), mm.paired_bootstrap_test(a, b, 700))
    for f, c in zip(full[:3], chunked[:3]):
        np.testing.assert_array_equal(f, c)
    assert full[3] == chunked[3]


def test_documented_random_streams():
    """The docstrings say how the resamples are drawn: a learner can rebuild them."""
    x = ap_like(12, 40)
    rng = np.random.default_rng(6)
    idx = rng.integers(0, 40, size=(300, 40))
    np.testing.assert_array_equal(mm.bootstrap_distribution(x, 300, 6), x[idx].mean(axis=1))
    rng = np.random.default_rng(6)
    signs = np.where(rng.random((300, 40)) < 0.5, -1.0, 1.0)
    np.testing.assert_array_equal(mm.sign_flip_distribution(x, 300, 6), (signs * x).mean(axis=1))


def test_torch_and_integer_inputs():
    torch = pytest.importorskip("torch")
    x = ap_like(13, 50)
    assert mm.bootstrap_ci(torch.tensor(x), n_resamples=200) == mm.bootstrap_ci(x, n_resamples=200)
    assert mm.paired_permutation_test(np.array([1, 0, 1]), np.array([0, 0, 0])).p_value == \
        pytest.approx(0.5)  # exact: 4 of 8 sign vectors reach |mean| >= 2/3


# --------------------------------------------------------------------- bad input
@pytest.mark.parametrize("fn", [mm.paired_permutation_test, mm.paired_bootstrap_test,
                                mm.paired_t_test])
def test_paired_tests_reject_bad_input(fn):
    with pytest.raises(InputError, match="same queries"):
        fn([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(InputError, match="empty"):
        fn([], [])
    with pytest.raises(InputError, match="finite"):
        fn([0.1, np.nan], [0.1, 0.2])
    with pytest.raises(InputError, match="finite"):
        fn([0.1, 0.2], [np.inf, 0.2])
    with pytest.raises(InputError, match=r"shape \[Q\]"):
        fn(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(InputError, match="numbers"):
        fn(["a", "b"], ["c", "d"])


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, None, "100"])
def test_bad_n_resamples(bad):
    with pytest.raises(InputError, match="n_resamples"):
        mm.bootstrap_ci([0.1, 0.2], n_resamples=bad)
    with pytest.raises(InputError, match="n_resamples"):
        mm.paired_permutation_test([0.1, 0.2], [0.2, 0.1], n_resamples=bad)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True, float("nan"), "0.95"])
def test_bad_confidence(bad):
    with pytest.raises(InputError, match="confidence"):
        mm.bootstrap_ci([0.1, 0.2], confidence=bad)


def test_bootstrap_rejects_bad_per_query():
    for bad, match in (([], "empty"), ([[0.1, 0.2]], "shape"), ([0.1, float("nan")], "query 1"),
                       (np.array(["x"]), "numbers")):
        with pytest.raises(InputError, match=match):
            mm.bootstrap_ci(bad)
