"""The gate's tests against scipy, statsmodels, sklearn and brute force; and the decision rule."""

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import (
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    roc_auc_score,
)

from tasks.errors import GateError
from tasks.gate import (
    GateInputError,
    Guard,
    check_unseen,
    choose_test,
    compare,
    get_metric,
    interval_text,
)
from tasks.gate.bootstrap import paired_bootstrap, resample_weights
from tasks.gate.delong import delong_paired
from tasks.gate.metrics import as_labels, weighted_auc, weighted_f1, weighted_roc_auc
from tasks.gate.paired_tests import (
    andrews_lags,
    diebold_mariano,
    dm_lags,
    long_run_variance,
    mcnemar,
    newey_west_lags,
    paired_t,
    prewhitened_long_run_variance,
    wilcoxon,
)
from tasks.window import BatchSlice, TrainingWindow

pairs = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=300)


# ---------------------------------------------------------------- the tests themselves
@given(pairs)
def test_mcnemar_exact_equals_scipy_binomtest(rows):
    base = np.array([r[0] for r in rows])
    cand = np.array([r[1] for r in rows])
    result = mcnemar(base, cand, alpha=0.05)
    b, c = int(np.sum(base & ~cand)), int(np.sum(~base & cand))
    expected = 1.0 if b + c == 0 else stats.binomtest(c, b + c, 0.5, alternative="greater").pvalue
    assert result.statistic == c
    assert result.p_value == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_mcnemar_mid_p_matches_its_definition_and_a_published_value():
    # Fagerland, Lydersen & Laake (2013), Table 1: b=1, c=7 (n=8 discordant): two-sided mid-p 0.0391
    base = np.array([True] * 1 + [False] * 7 + [True] * 20)
    cand = np.array([False] * 1 + [True] * 7 + [True] * 20)
    one_sided = mcnemar(base, cand, alpha=0.05, mid_p=True).p_value
    assert 2 * one_sided == pytest.approx(0.0391, abs=5e-5)
    expected = stats.binom.sf(7, 8, 0.5) + 0.5 * stats.binom.pmf(7, 8, 0.5)
    assert one_sided == pytest.approx(expected)
    assert one_sided < mcnemar(base, cand, alpha=0.05).p_value  # mid-p is less conservative


@settings(deadline=None)
@given(st.integers(10, 400), st.floats(-0.5, 0.5), st.integers(0, 10_000))
def test_paired_t_and_wilcoxon_equal_scipy(n, shift, seed):
    rng = np.random.default_rng(seed)
    base_loss = rng.exponential(1.0, n)
    cand_loss = base_loss - shift + rng.normal(0, 0.5, n)
    t = paired_t(base_loss - cand_loss, alpha=0.05)
    ref = stats.ttest_rel(base_loss, cand_loss, alternative="greater")
    assert t.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert t.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    # the interval's lower end is the one-sided 95 % bound; both ends the two-sided 90 % interval
    assert t.ci_low == pytest.approx(ref.confidence_interval(0.95).low, rel=1e-9, abs=1e-12)
    ci = stats.ttest_rel(base_loss, cand_loss).confidence_interval(0.90)
    assert (t.ci_low, t.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)
    w = wilcoxon(base_loss - cand_loss, alpha=0.05)
    wref = stats.wilcoxon(base_loss - cand_loss, alternative="greater")
    assert (w.statistic, w.p_value) == pytest.approx((wref.statistic, wref.pvalue), rel=1e-9)


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_diebold_mariano_hac_variance_equals_statsmodels(rho):
    rng = np.random.default_rng(3)
    n = 2000
    e = rng.normal(0, 1, n)
    d = np.empty(n)
    d[0] = e[0]
    for i in range(1, n):
        d[i] = rho * d[i - 1] + e[i]
    d += 0.05
    lags = dm_lags(d)
    assert lags >= newey_west_lags(n)
    ols = sm.OLS(d, np.ones(n)).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": False}
    )
    assert long_run_variance(d, lags) / n == pytest.approx(ols.bse[0] ** 2, rel=1e-10)
    result = diebold_mariano(d, alpha=0.05, lags=lags)
    assert result.statistic == pytest.approx(ols.tvalues[0], rel=1e-10)
    # Harvey, Leybourne & Newbold (1997): scaled statistic against Student's t, n - 1 df
    hln = ols.tvalues[0] * np.sqrt((n - 1) / n)
    assert result.p_value == pytest.approx(stats.t.sf(hln, n - 1), rel=1e-10)
    # the default prewhitens (Andrews & Monahan 1992): statsmodels' HAC of the AR(1) residuals,
    # recoloured by 1 / (1 - r)^2, with Kendall's bias-corrected r
    e = d - d.mean()
    r = float(e[1:] @ e[:-1]) / float(e[:-1] @ e[:-1])
    r += (1 + 3 * r) / n
    u = e[1:] - r * e[:-1]
    resid = sm.OLS(u, np.ones(n - 1)).fit(
        cov_type="HAC", cov_kwds={"maxlags": andrews_lags(u), "use_correction": False}
    )
    expected = resid.bse[0] ** 2 * (n - 1) / (1 - r) ** 2 / n
    assert prewhitened_long_run_variance(d) / n == pytest.approx(expected, rel=1e-9)
    default = diebold_mariano(d, alpha=0.05)
    assert default.statistic == pytest.approx(d.mean() / np.sqrt(expected), rel=1e-9)


def test_andrews_bandwidth_grows_with_autocorrelation():
    rng = np.random.default_rng(4)
    white = rng.normal(size=1000)
    ar = np.empty(1000)
    ar[0] = white[0]
    for i in range(1, 1000):
        ar[i] = 0.7 * ar[i - 1] + white[i]
    assert dm_lags(ar) > dm_lags(white) == newey_west_lags(1000)


def _delong_brute_force(y, a, b):
    """DeLong's structural components straight from the 1988 paper: O(m n)."""

    def psi(x, z):
        return (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])

    out = []
    for s in (a, b):
        k = psi(s[y == 1], s[y == 0])
        out.append((k.mean(), k.mean(axis=1), k.mean(axis=0)))
    (auc_a, v10_a, v01_a), (auc_b, v10_b, v01_b) = out
    m, n = len(v10_a), len(v01_a)
    s10 = np.cov(np.vstack([v10_a, v10_b]))
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    s = s10 / m + s01 / n
    z = (auc_b - auc_a) / np.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    return auc_a, auc_b, z


def test_delong_equals_brute_force_and_sklearn_auc():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    a = np.round(y * 0.8 + rng.normal(0, 1, 300), 1)  # rounded: ties on purpose
    b = np.round(y * 1.2 + rng.normal(0, 1, 300), 1)
    auc_a, auc_b, result = delong_paired(y, a, b, alpha=0.05)
    ref_a, ref_b, ref_z = _delong_brute_force(y, a, b)
    assert (auc_a, auc_b) == pytest.approx((roc_auc_score(y, a), roc_auc_score(y, b)))
    assert (auc_a, auc_b) == pytest.approx((ref_a, ref_b))
    assert result.statistic == pytest.approx(ref_z, rel=1e-9)
    assert result.p_value == pytest.approx(stats.norm.sf(ref_z), rel=1e-9)


# ---------------------------------------------------------------- metrics and the bootstrap
def test_metrics_equal_sklearn():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.uniform(0, 0.7, 500), 0, 1)
    assert get_metric("log_loss").value(y, p) == pytest.approx(log_loss(y, p))
    assert get_metric("brier").value(y, p) == pytest.approx(brier_score_loss(y, p))
    assert get_metric("roc_auc").value(y, p) == pytest.approx(roc_auc_score(y, p))
    assert get_metric("f1").value(y, p) == pytest.approx(f1_score(y, p >= 0.5))
    assert get_metric("accuracy").value(y, p) == pytest.approx(np.mean((p >= 0.5) == y))
    probs = rng.dirichlet([1, 1, 1], 200)
    y3 = rng.integers(0, 3, 200)
    assert get_metric("log_loss").value(y3, probs) == pytest.approx(log_loss(y3, probs))
    assert list(as_labels(probs)) == list(np.argmax(probs, axis=1))


def test_multiclass_and_regression_metrics_equal_sklearn():
    """Issue 13: Brier (multiclass form), macro F1 and one-vs-rest ROC AUC for seven classes,
    MSE and MAE for regression."""
    rng = np.random.default_rng(16)
    k, n = 7, 700
    y = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n)
    probs[np.arange(n), y] += 0.3
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.arange(k)
    assert get_metric("log_loss").value(y, probs) == pytest.approx(log_loss(y, probs))
    assert get_metric("brier").value(y, probs) == pytest.approx(
        brier_score_loss(y, probs, labels=labels, scale_by_half=False)
    )
    assert get_metric("f1").value(y, probs) == pytest.approx(
        f1_score(y, probs.argmax(axis=1), average="macro")
    )
    assert get_metric("roc_auc").value(y, probs) == pytest.approx(
        roc_auc_score(y, probs, multi_class="ovr", average="macro")
    )
    assert get_metric("accuracy").value(y, probs) == pytest.approx(
        np.mean(probs.argmax(axis=1) == y)
    )
    truth, guess = rng.normal(10, 3, n), rng.normal(10, 3, n)
    assert get_metric("mse").value(truth, guess) == pytest.approx(mean_squared_error(truth, guess))
    assert get_metric("mae").value(truth, guess) == pytest.approx(mean_absolute_error(truth, guess))
    assert not get_metric("mse").higher_is_better and not get_metric("mae").higher_is_better


def test_multiclass_weighted_metrics_equal_sklearn_on_the_resampled_rows():
    rng = np.random.default_rng(17)
    k, n = 4, 300
    y = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k) * 2, n)
    probs[np.arange(n), y] += 0.2
    probs /= probs.sum(axis=1, keepdims=True)
    for row in resample_weights(n, 4, rng, block=None):
        idx = np.repeat(np.arange(n), row.astype(int))
        assert weighted_roc_auc(y, probs, row[None])[0] == pytest.approx(
            roc_auc_score(y[idx], probs[idx], multi_class="ovr", labels=np.arange(k))
        )
        assert weighted_f1(y, probs, row[None])[0] == pytest.approx(
            f1_score(y[idx], probs[idx].argmax(axis=1), average="macro")
        )


def test_a_class_a_model_never_learned_costs_a_clipped_log_loss():
    y = np.array([0, 1, 2, 2])
    champion = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.5, 0.5, 0.0], [0.4, 0.6, 0.0]])
    losses = get_metric("log_loss").rows(y, champion)
    assert losses[2:] == pytest.approx([-np.log(1e-15)] * 2)  # 34.5, not infinity
    assert np.isfinite(get_metric("log_loss").value(y, champion))


def test_seven_classes_gate_on_roc_auc_uses_the_bootstrap_never_delong():
    rng = np.random.default_rng(18)
    k, n = 7, 600
    y = rng.integers(0, k, n)

    def model(strength):
        p = rng.dirichlet(np.ones(k), n)
        p[np.arange(n), y] += strength
        return p / p.sum(axis=1, keepdims=True)

    assert choose_test(get_metric("roc_auc"), ordered=False, classes=7) == "bootstrap"
    decision = compare(y, model(0.1), model(1.0), metric="roc_auc")
    assert decision.test == "bootstrap" and decision.promote
    with pytest.raises(GateInputError, match="'delong' is for two classes"):
        compare(y, model(0.1), model(1.0), metric="roc_auc", test="delong")


@pytest.mark.parametrize(
    "test",
    ["paired-t", "wilcoxon", "diebold-mariano", "bootstrap", "bootstrap-bca", "mcnemar-exact"],
)
def test_a_worse_candidate_is_reported_with_a_well_formed_interval(test):
    """Issue 12: the log line read '-100% CI [+0.0063, -0.0486]' for a worse candidate."""
    rng = np.random.default_rng(19)
    y = rng.integers(0, 2, 600)
    good = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.1, 600), 0.01, 0.99)
    bad = np.clip(np.where(y == 1, 0.6, 0.4) + rng.normal(0, 0.2, 600), 0.01, 0.99)
    metric = "accuracy" if test.startswith("mcnemar") else "log_loss"
    decision = compare(y, good, bad, metric=metric, test=test, alpha=0.05)
    assert decision.effect < 0 and not decision.promote
    assert decision.ci_low is not None and decision.ci_high is not None
    assert decision.ci_low <= decision.ci_high
    assert "90% CI [" in decision.reasons[0]
    low, high = decision.reasons[0].split("CI [")[1].rstrip("].").split(", ")
    assert float(low) <= float(high)


def test_interval_text_orders_the_bounds_and_names_the_level():
    assert interval_text(0.05, 0.0063, -0.0486) == "90% CI [-0.0486, +0.0063]"
    assert interval_text(0.025, -1.0, 1.0) == "95% CI [-1.0000, +1.0000]"
    assert interval_text(0.05, None, 1.0) == ""
    with pytest.raises(GateInputError, match="alpha"):
        compare(np.array([0, 1] * 10), np.full(20, 0.5), np.full(20, 0.6), alpha=0.9)


def test_weighted_metrics_equal_the_metric_on_the_resampled_rows():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(y, 1.0), 1)
    weights = resample_weights(200, 5, rng, block=None)
    assert (weights.sum(axis=1) == 200).all()
    for row in weights:
        idx = np.repeat(np.arange(200), row.astype(int))
        assert weighted_auc(y, s, row[None])[0] == pytest.approx(roc_auc_score(y[idx], s[idx]))
        assert weighted_f1(y, (s > 0.5).astype(int), row[None])[0] == pytest.approx(
            f1_score(y[idx], s[idx] > 0.5)
        )
    blocks = resample_weights(200, 5, rng, block=10)
    assert (blocks.sum(axis=1) == 200).all()


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_interval_agrees_with_scipy(method):
    rng = np.random.default_rng(8)
    d = rng.normal(0.1, 1.0, 400)
    ours = paired_bootstrap(
        lambda w: (w @ d) / w.sum(axis=1),
        400,
        alpha=0.05,
        method=method,
        n_resamples=4000,
        rng=np.random.default_rng(9),
    )
    ref = stats.bootstrap(
        (d,),
        np.mean,
        confidence_level=0.90,
        method="BCa" if method == "bca" else "percentile",
        n_resamples=4000,
        rng=np.random.default_rng(9),
    ).confidence_interval
    width = ref.high - ref.low
    assert abs(ours.ci_low - ref.low) < 0.1 * width and abs(ours.ci_high - ref.high) < 0.1 * width
    # the one-sided p-value agrees with the t-test's at this n
    assert ours.p_value == pytest.approx(paired_t(d, alpha=0.05).p_value, abs=0.01)


# ---------------------------------------------------------------- the decision rule
def _models(rng, n, *, champion_acc, candidate_acc, classes=2):
    y = rng.integers(0, classes, n)

    def noisy(acc):
        wrong = (y + rng.integers(1, classes, n)) % classes
        return np.where(rng.random(n) < acc, y, wrong)

    return y, noisy(champion_acc), noisy(candidate_acc)


def test_auto_chooses_a_sound_test_and_says_which():
    assert choose_test(get_metric("accuracy"), ordered=False) == "mcnemar-exact"
    assert choose_test(get_metric("log_loss"), ordered=False) == "paired-t"
    assert choose_test(get_metric("log_loss"), ordered=True) == "diebold-mariano"
    assert choose_test(get_metric("roc_auc"), ordered=False) == "delong"
    assert choose_test(get_metric("f1"), ordered=False) == "bootstrap"
    y, a, b = _models(np.random.default_rng(1), 300, champion_acc=0.6, candidate_acc=0.9)
    decision = compare(y, a, b)
    assert decision.test == "mcnemar-exact" and "mcnemar-exact: one-sided p" in decision.reasons[1]


def test_promotes_a_clearly_better_multiclass_candidate_with_its_numbers():
    y, a, b = _models(np.random.default_rng(2), 600, champion_acc=0.6, candidate_acc=0.8, classes=3)
    decision = compare(y, a, b, metric="accuracy", test="mcnemar-midp")
    assert decision.promote and decision.p_value < 1e-6
    assert decision.effect == pytest.approx(np.mean(b == y) - np.mean(a == y))
    assert decision.ci_low is not None and 0 < decision.ci_low < decision.effect < decision.ci_high
    assert decision.model_dump_json()  # JSON-serialisable


def test_losses_have_positive_effect_when_the_candidate_is_better():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 1000)
    good = np.clip(np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.05, 1000), 0.01, 0.99)
    weak = np.clip(np.where(y == 1, 0.6, 0.4) + rng.normal(0, 0.05, 1000), 0.01, 0.99)
    for metric in ("log_loss", "brier", "roc_auc", "f1"):
        decision = compare(y, weak, good, metric=metric)
        assert decision.promote and decision.effect > 0, metric
        assert not compare(y, good, weak, metric=metric).promote, metric


def test_min_effect_and_guards_block_promotion():
    rng = np.random.default_rng(4)
    y, a, b = _models(rng, 20_000, champion_acc=0.70, candidate_acc=0.76)
    assert compare(y, a, b).promote
    small = compare(y, a, b, min_effect=0.10)
    assert not small.promote and "below the minimum effect" in " ".join(small.reasons)
    west = np.zeros(20_000, bool)
    west[:500] = True
    b_bad = b.copy()
    b_bad[:500] = 1 - y[:500]  # the candidate fails every row of one slice
    assert compare(y, a, b_bad).promote  # better overall...
    guarded = compare(
        y, a, b_bad, guards=[Guard(metric="accuracy", tolerance=0.02, rows=west, name="west")]
    )
    assert not guarded.promote
    assert guarded.guards[0].name == "west" and not guarded.guards[0].passed
    assert "Guard west" in " ".join(guarded.reasons)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"validation_passed": False}, "failed validation"),
        ({"champion_pred": np.array([0.2, np.nan] * 50), "metric": "log_loss"}, "NaN"),
        ({"y_true": np.ones(100, int), "metric": "roc_auc"}, "single class"),
        ({"n": 5, "metric": "log_loss", "test": "paired-t"}, "fewer than the 10"),
    ],
)
def test_what_the_gate_cannot_judge_is_rejected_never_promoted(kwargs, reason):
    n = kwargs.pop("n", 100)
    y = kwargs.pop("y_true", np.array([0, 1] * (n // 2) + [1] * (n % 2)))
    base = kwargs.pop("champion_pred", np.full(n, 0.5))
    cand = np.where(y == 1, 0.99, 0.01)  # a perfect candidate: still not promoted
    decision = compare(y, base, cand, **kwargs)
    assert not decision.promote and reason in decision.reasons[0]


def test_guard_rows_follow_the_time_order():  # found by benchmarks/gate_quality.py's author
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 2000)
    champion = np.where(rng.random(2000) < 0.8, y, 1 - y)
    candidate = np.where(rng.random(2000) < 0.97, y, 1 - y)
    west = np.zeros(2000, bool)
    west[:200] = True
    candidate[west] = 1 - y[west]
    guard = [Guard(metric="accuracy", tolerance=0.02, rows=west, name="west")]
    for order in (None, np.arange(2000)[::-1]):
        decision = compare(y, champion, candidate, guards=guard, order=order, test="mcnemar-exact")
        assert not decision.promote and not decision.guards[0].passed
    with pytest.raises(GateInputError, match="guard 'west' has 3 rows"):
        compare(
            y, champion, candidate, guards=[Guard(metric="accuracy", rows=west[:3], name="west")]
        )


def test_the_block_bootstrap_declines_short_time_ordered_test_sets():
    rng = np.random.default_rng(10)
    y = rng.integers(0, 2, 300)
    good = np.clip(np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.05, 300), 0.01, 0.99)
    weak = np.full(300, 0.5)
    decision = compare(y, weak, good, metric="roc_auc", order=np.arange(300))
    assert not decision.promote and "fewer than the 500" in decision.reasons[0]
    assert compare(y, weak, good, metric="roc_auc").promote  # unordered: DeLong decides


def test_identical_predictions_give_p_one_for_every_row_test():
    y = np.array([0, 1] * 50)
    p = np.full(100, 0.4)
    for test in ("paired-t", "wilcoxon", "diebold-mariano"):
        decision = compare(y, p, p, metric="log_loss", test=test)
        assert decision.p_value == 1.0 and not decision.promote, test


def test_bad_input_raises_a_clear_error():
    y = np.array([0, 1, 1, 0])
    with pytest.raises(GateInputError, match="y_true has 4 rows but candidate_pred has 3"):
        compare(y, y, y[:3])
    with pytest.raises(GateInputError, match=r"probabilities outside \[0, 1\]"):
        compare(y, np.array([0.1, 1.2, 0.5, 0.5]), np.full(4, 0.5), metric="log_loss")
    with pytest.raises(GateInputError, match="unknown gate metric"):
        compare(y, y, y, metric="mape")
    with pytest.raises(GateInputError, match="use metric 'accuracy'"):
        compare(y, y, y, metric="log_loss", test="mcnemar-exact")


def test_false_promotion_rate_is_at_most_alpha_by_simulation():
    rng = np.random.default_rng(7)
    trials, promoted = 1000, {"mcnemar-exact": 0, "paired-t": 0}
    for _ in range(trials):
        y, a, b = _models(rng, 200, champion_acc=0.75, candidate_acc=0.75)
        promoted["mcnemar-exact"] += compare(y, a, b).promote
        pa = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.15, 200), 0.01, 0.99)
        pb = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.15, 200), 0.01, 0.99)
        promoted["paired-t"] += compare(y, pa, pb, metric="log_loss").promote
    for test, count in promoted.items():
        assert count / trials <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials), test


def _window(batch, start, stop, end=None):
    return TrainingWindow(
        slices=[BatchSlice(batch_id=batch, start=start, stop=stop)],
        rows=stop - start,
        time_start=None,
        time_end=end,
        fingerprint="x",
    )


def test_check_unseen_refuses_overlapping_rows_and_times():
    from datetime import datetime

    held = BatchSlice(batch_id="b2", start=70, stop=100)
    check_unseen(held, None, {"candidate": _window("b2", 0, 70)})
    with pytest.raises(GateError, match="overlap the champion's training rows"):
        check_unseen(held, None, {"champion": _window("b2", 0, 80)})
    with pytest.raises(GateError, match="newer than both models"):
        check_unseen(
            held, datetime(2026, 1, 1), {"champion": _window("b1", 0, 10, end=datetime(2026, 1, 2))}
        )


def test_a_candidate_certain_and_wrong_is_told_why_log_loss_rejects_it():
    y = np.array([0, 1, 2, 1] * 25)
    floor = np.full((100, 3), 1 / 3)
    tree = np.eye(3)[y].copy()
    tree[:10] = np.eye(3)[(y[:10] + 1) % 3]  # ten confident misses
    decision = compare(y, floor, tree, metric="log_loss", test="paired-t")
    assert not decision.promote
    assert "probability 0 on 10 rows" in " ".join(decision.reasons)
