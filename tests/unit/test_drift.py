"""Drift tests against scipy, Benjamini-Hochberg, and verdicts on known shifts."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tasks.drift import chi_square_test, drift_report, ks_test, reference_sample
from tasks.validate import FeatureSpec

SPEC = FeatureSpec(
    target="y", time_column=None, numeric=["a", "b"], categorical=["c"], classes=[0, 1]
)


def frame(rng, n, *, shift=0.0, p=(0.5, 0.3, 0.2)):
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1, n),
            "b": rng.exponential(1, n),
            "c": rng.choice(["x", "y", "z"], n, p=p),
        }
    )


def test_ks_matches_scipy_and_ignores_missing():
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(0, 1, 500))
    cur = pd.Series(np.r_[rng.normal(0.3, 1, 300), [np.nan] * 20])
    statistic, p = ks_test(ref, cur)
    expected = stats.ks_2samp(ref.to_numpy(), cur.dropna().to_numpy())
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi_square_matches_scipy_on_the_count_table():
    ref = pd.Series(["x"] * 50 + ["y"] * 30 + ["z"] * 20)
    cur = pd.Series(["x"] * 20 + ["y"] * 40 + ["z"] * 40 + [None] * 5)
    statistic, p = chi_square_test(ref, cur)
    expected = stats.chi2_contingency(np.array([[50, 30, 20], [20, 40, 40]]))
    assert statistic == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)


def test_degenerate_inputs_give_no_drift_not_a_crash():
    assert ks_test(pd.Series([], dtype=float), pd.Series([1.0])) == (0.0, 1.0)
    assert chi_square_test(pd.Series(["x", "x"]), pd.Series(["x"])) == (0.0, 1.0)


def test_benjamini_hochberg_adjusts_across_columns():
    rng = np.random.default_rng(1)
    ref, cur = frame(rng, 800), frame(rng, 800, shift=0.4)
    report = drift_report(ref, cur, SPEC)
    raw = np.array([c.p_value for c in report.columns])
    expected = stats.false_discovery_control(raw, method="bh")
    np.testing.assert_allclose([c.p_adjusted for c in report.columns], expected)
    assert report.drifted and report.drifted_columns == ["a"]
    assert "a: ks statistic" in report.columns[0].reason


def test_category_mix_change_is_detected():
    rng = np.random.default_rng(2)
    report = drift_report(frame(rng, 1000), frame(rng, 1000, p=(0.3, 0.3, 0.4)), SPEC)
    assert report.drifted_columns == ["c"]


def test_false_alarm_rate_without_drift_is_at_most_alpha():
    rng = np.random.default_rng(3)
    runs = 300
    alarms = sum(drift_report(frame(rng, 300), frame(rng, 300), SPEC).drifted for _ in range(runs))
    assert alarms / runs <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / runs)


def test_verdict_does_not_depend_on_row_order():
    rng = np.random.default_rng(4)
    ref, cur = frame(rng, 500), frame(rng, 500, shift=0.2)
    shuffled = cur.sample(frac=1, random_state=5)
    a, b = drift_report(ref, cur, SPEC), drift_report(ref, shuffled, SPEC)
    assert [c.p_value for c in a.columns] == pytest.approx([c.p_value for c in b.columns])


def test_reference_sample_is_bounded_and_seeded():
    rng = np.random.default_rng(5)
    data = frame(rng, 2000)
    one = reference_sample(data, SPEC, rows=300, seed=1)
    assert len(one) == 300 and list(one.columns) == SPEC.features
    pd.testing.assert_frame_equal(one, reference_sample(data, SPEC, rows=300, seed=1))
