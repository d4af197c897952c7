"""The production-degradation test against scipy, and its false-alarm rate by simulation."""

import numpy as np
import pytest
from scipy import stats

from tasks.performance import degradation_test


def test_log_loss_degradation_equals_a_one_sided_one_sample_t_test():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(np.where(y == 1, 0.65, 0.35) + rng.normal(0, 0.1, 500), 0.01, 0.99)
    result = degradation_test(y, p, metric="log_loss", recorded=0.5)
    losses = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert result.p_value == pytest.approx(
        stats.ttest_1samp(losses, 0.5, alternative="greater").pvalue
    )
    assert result.observed == pytest.approx(losses.mean())


def test_accuracy_degradation_is_an_exact_binomial_test():
    y = np.ones(200, int)
    pred = np.ones(200, int)
    pred[:50] = 0  # 75 % accurate
    result = degradation_test(y, pred, metric="accuracy", recorded=0.85)
    assert result.p_value == pytest.approx(
        stats.binomtest(50, 200, 0.15, alternative="greater").pvalue
    )
    assert result.degraded and result.change == pytest.approx(0.10)
    assert "degraded." in result.reason


def test_no_false_alarms_beyond_alpha_when_nothing_changed():
    rng = np.random.default_rng(1)
    trials, alarms = 1000, 0
    for _ in range(trials):
        y = rng.integers(0, 2, 300)
        pred = np.where(rng.random(300) < 0.8, y, 1 - y)
        alarms += degradation_test(y, pred, metric="accuracy", recorded=0.8).degraded
    assert alarms / trials <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials)


def test_too_few_rows_is_no_evidence():
    result = degradation_test(np.array([1, 0]), np.array([0, 1]), metric="accuracy", recorded=0.9)
    assert not result.degraded and result.p_value == 1.0


@pytest.mark.parametrize("metric", ["mae", "mse"])
def test_regression_degradation_is_a_one_sided_t_test_on_the_error(metric):
    """Issue 13: the monitor's degradation test works on the regression loss."""
    rng = np.random.default_rng(3)
    y = rng.normal(100, 10, 400)
    pred = y + rng.normal(0, 6, 400)
    loss = np.abs(pred - y) if metric == "mae" else (pred - y) ** 2
    recorded = float(loss.mean()) * 0.8  # production is 25 % worse than at promotion
    result = degradation_test(y, pred, metric=metric, recorded=recorded)
    assert result.p_value == pytest.approx(
        stats.ttest_1samp(loss, recorded, alternative="greater").pvalue
    )
    assert result.degraded and result.change == pytest.approx(loss.mean() - recorded)
    assert not degradation_test(y, pred, metric=metric, recorded=float(loss.mean()) * 1.2).degraded
