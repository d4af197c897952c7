"""The compiled drift kernels against numpy and scipy (issue 4): same numbers, any input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tasks.drift.compare import ks_and_wasserstein
from tasks.drift.kernels import (
    category_tally,
    compare_sorted,
    ks_exact_equal_n,
    numeric_tally,
    on_every_core,
)
from tasks.drift.summary import _numeric_summary


@pytest.mark.parametrize("n_edges", [0, 1, 8, 9, 23])
def test_numeric_tally_equals_numpy_with_nan_and_infinities(n_edges):
    rng = np.random.default_rng(n_edges)
    x = rng.lognormal(size=100_003)
    x[rng.random(x.size) < 0.03] = np.nan
    x[[5, 17]] = np.inf
    x[[8, 99, 1000]] = -np.inf
    finite = x[np.isfinite(x)]
    edges = np.quantile(finite, np.linspace(0, 1, n_edges + 2)[1:-1])
    tally = numeric_tally(x, edges, 1.5)
    assert (tally.finite, tally.nan, tally.pos_inf, tally.neg_inf) == (
        finite.size,
        int(np.isnan(x).sum()),
        2,
        3,
    )
    assert tally.below.tolist() == [int(np.count_nonzero(finite < e)) for e in edges]
    assert tally.shifted_sum == pytest.approx((finite - 1.5).sum(), rel=1e-12)
    assert tally.shifted_squares == pytest.approx(((finite - 1.5) ** 2).sum(), rel=1e-12)
    assert (tally.minimum, tally.maximum) == (finite.min(), finite.max())


def test_numeric_tally_of_nothing_finite():
    tally = numeric_tally(np.array([np.nan, np.inf]), np.array([0.0]), 0.0)
    assert (tally.finite, tally.nan, tally.pos_inf, tally.below.tolist()) == (0, 1, 1, [0])
    assert math.isnan(tally.minimum) and numeric_tally(np.array([]), np.array([]), 0.0).finite == 0


def test_variance_is_exact_far_from_the_shift():
    """Squares are summed about the middle edge; data far from it are summed again about their mean."""
    rng = np.random.default_rng(1)
    x = 1e9 + rng.normal(size=10_000)
    summary = _numeric_summary(x, [0.0, 1.0, 2.0], "feature")
    assert summary.sd == pytest.approx(x.std(ddof=1), rel=1e-9)
    assert summary.mean == pytest.approx(x.mean(), rel=1e-15)
    constant = _numeric_summary(np.full(1000, 7.25), [0.0], "feature")
    assert constant.m2 == 0.0 and constant.sd == 0.0


def test_category_tally_equals_bincount():
    rng = np.random.default_rng(2)
    for dtype, k in ((np.int8, 12), (np.int16, 300)):
        codes = rng.integers(-1, k, size=10_007).astype(dtype)
        expected = np.bincount(codes.astype(np.int64) + 1, minlength=k + 1)
        assert np.array_equal(category_tally(codes, k), expected)


samples = st.lists(
    st.floats(-5, 5, allow_nan=False).map(lambda v: round(v, 1)), min_size=1, max_size=60
)


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
@settings(deadline=None, max_examples=200)
@given(samples, samples)
def test_ecdf_walk_equals_scipy_with_ties(a, b):
    a, b = np.sort(a), np.sort(b)
    got = compare_sorted(a, b)
    expected = stats.ks_2samp(a, b, method="exact")
    assert got.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert got.wasserstein == pytest.approx(stats.wasserstein_distance(a, b), abs=1e-12)


# where scipy's exact sum leaves [0, 1] it warns and goes asymptotic; ct then defers to it as well
@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
@settings(deadline=None, max_examples=200)
@given(
    st.integers(1, 80).flatmap(
        lambda n: st.tuples(*[st.lists(st.integers(0, 9), min_size=n, max_size=n)] * 2)
    )
)
def test_equal_sizes_with_ties_equal_scipy(pair):
    a, b = (np.array(v, dtype=float) for v in pair)
    statistic, p, _ = ks_and_wasserstein(a, b)
    expected = stats.ks_2samp(a, b)
    assert statistic == expected.statistic and p == pytest.approx(expected.pvalue, rel=1e-9)


@pytest.mark.parametrize("n", [1, 2, 7, 50, 999, 5000, 10_000])
def test_exact_equal_size_p_value_equals_scipy(n):
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.05, 0.2, 1.0):
        a, b = rng.normal(size=n), rng.normal(shift, size=n)
        statistic, p, distance = ks_and_wasserstein(a, b)
        expected = stats.ks_2samp(a, b)
        assert statistic == expected.statistic  # the same lattice step, exactly
        assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
        assert distance == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)
    assert ks_exact_equal_n(n, 0) == 1.0


@pytest.mark.parametrize("sizes", [(300, 200), (10_001, 10_001), (20_000, 5)])
def test_other_sizes_defer_to_scipy(sizes):
    rng = np.random.default_rng(sum(sizes))
    a, b = rng.normal(size=sizes[0]), rng.normal(0.1, size=sizes[1])
    statistic, p, _ = ks_and_wasserstein(a, b)
    expected = stats.ks_2samp(a, b)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


def test_on_every_core_keeps_order_and_raises():
    assert on_every_core(lambda v: v * v, list(range(50))) == [v * v for v in range(50)]
    with pytest.raises(ZeroDivisionError):
        on_every_core(lambda v: 1 / v, [1, 0, 2])
