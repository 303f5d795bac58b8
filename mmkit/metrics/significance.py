"""Is a difference real? Bootstrap confidence intervals and paired significance tests.

Inputs are per-query scores: one float per query, shape [Q], e.g. the output of
:func:`~mmkit.metrics.ranking.average_precision` for one system. The paired tests take two
systems' per-query scores on the SAME queries in the same order (``a[i]`` and ``b[i]`` belong
to query i) and test the mean difference ``mean(a - b)``, two-sided.

- :func:`bootstrap_ci`: percentile bootstrap over queries, ``(mean, low, high)``.
- :func:`paired_permutation_test`: the sign-flip randomisation test (Fisher's randomisation
  test; the IR standard, Smucker, Allan & Carterette, CIKM 2007), ``(mean_diff, p_value)``.
- :func:`paired_bootstrap_test`: bootstrap of the differences shifted to mean 0 (Efron &
  Tibshirani 1993, section 16.4), ``(mean_diff, p_value)``.
- :func:`paired_t_test`: Student's paired t-test (``scipy.stats.ttest_rel``), for comparison.

Conventions:

- Every random draw comes from ``np.random.default_rng(seed)``: the same seed gives the same
  numbers in any process. Resamples are drawn in chunks with the same stream, so the result
  does not depend on memory limits. :func:`bootstrap_distribution` draws
  ``rng.integers(0, Q, size=(n_resamples, Q))`` exactly as ``scipy.stats.bootstrap`` does,
  so both give identical intervals for the same seed.
- The sign-flip test enumerates all 2^Q sign vectors when ``2**Q <= n_resamples`` (an exact
  test, as ``scipy.stats.permutation_test``); otherwise it draws ``n_resamples`` of them and
  reports ``(1 + #{|T*| >= |T|}) / (n_resamples + 1)``, which counts the observed statistic
  as one of the resamples, so a p-value is never 0 (Phipson & Smyth 2010).
- "At least as extreme" allows a relative tolerance of 100 machine epsilons (as scipy), so
  resampled statistics that equal the observed one in exact arithmetic are counted.
- Queries are assumed independent. Several queries per item (5 captions per image) are not:
  average them per item first, or resample items (see notebook 08).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from mmkit.errors import InputError
from mmkit.metrics.checks import to_numpy
from mmkit.validate import positive_int

_CHUNK_ELEMENTS = 2**22
"""Resampled values held in memory at once (about 32 MB of float64); any value gives the
same results, only memory and speed change."""

_TIE_EPS = 100 * np.finfo(np.float64).eps
"""Relative tolerance for "at least as extreme" (scipy.stats.permutation_test's)."""


class ConfidenceInterval(NamedTuple):
    """A point estimate with a confidence interval: unpacks as ``mean, low, high``."""

    mean: float
    low: float
    high: float


class PairedTest(NamedTuple):
    """The result of a paired test: unpacks as ``mean_diff, p_value``."""

    mean_diff: float
    p_value: float


def _per_query(values: Any, name: str) -> np.ndarray:
    """``values`` as a float64 vector [Q], Q >= 1, finite."""
    x = to_numpy(values)
    if x.ndim != 1:
        raise InputError(f"{name}: expected one value per query, shape [Q], got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise InputError(f"{name}: expected numbers, got dtype {x.dtype}")
    if x.size == 0:
        raise InputError(f"{name}: no queries (empty array)")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}: value {x[i]} at query {i}; per-query scores must be finite")
    return x


def _paired_differences(a: Any, b: Any) -> np.ndarray:
    """The per-query differences ``a - b`` [Q], after checking both inputs."""
    x, y = _per_query(a, "a"), _per_query(b, "b")
    if x.shape != y.shape:
        raise InputError(f"paired test: a has {x.size} queries, b has {y.size}; "
                         "both systems must be scored on the same queries")
    return x - y


def _check_resamples(n_resamples: Any) -> int:
    return positive_int(n_resamples, "n_resamples")


def _is_exact(n_queries: int, n_resamples: int) -> bool:
    """Whether the sign-flip test enumerates all 2^Q sign vectors (2^Q <= n_resamples)."""
    return n_queries < 63 and 2**n_queries <= n_resamples


def _chunks(total: int, width: int) -> Iterator[tuple[int, int]]:
    """(start, stop) row ranges of at most ~_CHUNK_ELEMENTS values each."""
    rows = max(1, _CHUNK_ELEMENTS // max(width, 1))
    for start in range(0, total, rows):
        yield start, min(start + rows, total)


def bootstrap_distribution(per_query: Any, n_resamples: int = 10000,
                           seed: int | None = 0) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples of the queries: float64 [n_resamples].

    Resample r is ``per_query[idx[r]].mean()`` with ``idx = rng.integers(0, Q, size=
    (n_resamples, Q))`` and ``rng = np.random.default_rng(seed)`` (drawn in chunks of rows,
    which leaves the stream unchanged).
    """
    x = _per_query(per_query, "per_query")
    n_resamples = _check_resamples(n_resamples)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start, stop in _chunks(n_resamples, x.size):
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    return means


def bootstrap_ci(per_query: Any, n_resamples: int = 10000, confidence: float = 0.95,
                 seed: int | None = 0) -> ConfidenceInterval:
    """Percentile bootstrap confidence interval of the mean over queries.

    Args:
        per_query: float [Q], one score per query (e.g. AP), Q >= 1, finite.
        n_resamples: number of bootstrap resamples B.
        confidence: coverage of the interval, in (0, 1).
        seed: seed of ``np.random.default_rng`` (None: fresh entropy, not reproducible).

    Returns:
        ``(mean, low, high)``: the sample mean, and the ``(1 - confidence) / 2`` and
        ``(1 + confidence) / 2`` quantiles (numpy's default linear interpolation) of
        :func:`bootstrap_distribution`. Equals ``scipy.stats.bootstrap(..., method=
        "percentile")`` with ``rng=np.random.default_rng(seed)``.
    """
    if isinstance(confidence, (bool, np.bool_)) or not isinstance(confidence, (int, float, np.number)) \
            or not 0 < confidence < 1:
        raise InputError(f"confidence must be a number in (0, 1), got {confidence!r}")
    x = _per_query(per_query, "per_query")
    means = bootstrap_distribution(x, n_resamples, seed)
    alpha = (1.0 - float(confidence)) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return ConfidenceInterval(float(x.mean()), float(low), float(high))


def sign_flip_distribution(differences: Any, n_resamples: int = 10000,
                           seed: int | None = 0) -> np.ndarray:
    """Null distribution of the mean paired difference under random sign flips.

    Under the null hypothesis the two systems are exchangeable on each query, so each
    difference ``d_i = a_i - b_i`` is as likely to have the opposite sign. Returns
    ``mean(s * d)`` for sign vectors ``s`` in {-1, +1}^Q, float64:

    - all 2^Q of them (in binary counting order) when ``2**Q <= n_resamples``: [2^Q];
    - else ``n_resamples`` random ones, ``s = where(rng.random((n_resamples, Q)) < 0.5, -1, 1)``
      with ``rng = np.random.default_rng(seed)``: [n_resamples].
    """
    d = _per_query(differences, "differences")
    n_resamples = _check_resamples(n_resamples)
    q = d.size
    if _is_exact(q, n_resamples):
        total = 2**q
        bits = np.arange(q, dtype=np.int64)
        null = np.empty(total)
        for start, stop in _chunks(total, q):
            codes = np.arange(start, stop, dtype=np.int64)[:, None]
            signs = 1.0 - 2.0 * ((codes >> bits) & 1)
            null[start:stop] = (signs * d).mean(axis=1)
        return null
    rng = np.random.default_rng(seed)
    null = np.empty(n_resamples)
    for start, stop in _chunks(n_resamples, q):
        signs = np.where(rng.random((stop - start, q)) < 0.5, -1.0, 1.0)
        null[start:stop] = (signs * d).mean(axis=1)
    return null


def _two_sided_p(null: np.ndarray, observed: float, exact: bool) -> float:
    """Share of ``null`` at least as far from 0 as ``observed`` (+1 correction unless exact)."""
    gamma = _TIE_EPS * abs(observed)
    count = int(np.count_nonzero(np.abs(null) >= abs(observed) - gamma))
    if exact:
        return count / null.size
    return (count + 1) / (null.size + 1)


def paired_permutation_test(a: Any, b: Any, n_resamples: int = 10000,
                            seed: int | None = 0) -> PairedTest:
    """Two-sided paired randomisation (sign-flip) test of ``mean(a - b) == 0``.

    Args:
        a, b: float [Q], two systems' scores on the same queries (e.g. per-query AP).
        n_resamples: random sign vectors to draw; when ``2**Q <= n_resamples`` all 2^Q are
            enumerated instead and the test is exact.
        seed: seed of ``np.random.default_rng`` (unused by the exact test).

    Returns:
        ``(mean_diff, p_value)``: ``mean(a - b)`` (positive: a scores higher), and the share
        of sign-flipped means at least as far from 0 as the observed one, see
        :func:`sign_flip_distribution` (Monte Carlo: ``(1 + count) / (n_resamples + 1)``).
        Agrees with ``scipy.stats.permutation_test(..., permutation_type="samples")``; exactly
        so when both enumerate.
    """
    d = _paired_differences(a, b)
    null = sign_flip_distribution(d, n_resamples, seed)
    exact = _is_exact(d.size, _check_resamples(n_resamples))
    observed = float(d.mean())
    return PairedTest(observed, _two_sided_p(null, observed, exact))


def paired_bootstrap_test(a: Any, b: Any, n_resamples: int = 10000,
                          seed: int | None = 0) -> PairedTest:
    """Two-sided paired bootstrap test of ``mean(a - b) == 0``.

    The bootstrap distribution of the mean difference (:func:`bootstrap_distribution` of
    ``a - b``), shifted by its observed value so that it has mean 0, stands in for the null
    distribution; p = ``(1 + #{|mean* - mean| >= |mean|}) / (n_resamples + 1)``.

    Returns:
        ``(mean_diff, p_value)`` with ``mean_diff = mean(a - b)``.
    """
    d = _paired_differences(a, b)
    observed = float(d.mean())
    null = bootstrap_distribution(d, n_resamples, seed) - observed
    return PairedTest(observed, _two_sided_p(null, observed, exact=False))


def paired_t_test(a: Any, b: Any) -> PairedTest:
    """Student's two-sided paired t-test (``scipy.stats.ttest_rel``) of ``mean(a - b) == 0``.

    Assumes roughly normal differences; with many queries it is usually close to the
    randomisation test. Needs Q >= 2. If every difference is the same value (zero variance)
    the p-value is 1.0 when that value is 0, else 0.0 (scipy would return NaN).

    Returns:
        ``(mean_diff, p_value)`` with ``mean_diff = mean(a - b)``.
    """
    from scipy.stats import ttest_rel

    d = _paired_differences(a, b)
    if d.size < 2:
        raise InputError("paired t-test: need at least 2 queries")
    observed = float(d.mean())
    if np.all(d == d[0]):
        return PairedTest(observed, 1.0 if d[0] == 0 else 0.0)
    a, b = _per_query(a, "a"), _per_query(b, "b")
    return PairedTest(observed, float(ttest_rel(a, b).pvalue))
