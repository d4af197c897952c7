"""The promotion rule: does the candidate beat the champion on rows neither has seen?

Promote only when all hold: the one-sided p-value < alpha, the improvement >= `min_effect`, no guard
metric is worse beyond its tolerance, and the batch passed validation. Anything the gate cannot
judge (too few rows, NaN predictions, a single class for ROC AUC) is a rejection with the reason,
never a promotion. `effect` is the improvement in the metric's units, positive = candidate better
(for a loss: the champion's loss minus the candidate's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tasks.errors import GateError
from tasks.gate.bootstrap import default_block_length, paired_bootstrap
from tasks.gate.delong import delong_paired
from tasks.gate.metrics import (
    GateInputError,
    Metric,
    check_probabilities,
    get_metric,
    scores_for_auc,
)
from tasks.gate.paired_tests import TestResult, diebold_mariano, mcnemar, paired_t, wilcoxon
from tasks.window import BatchSlice, TrainingWindow

TestName = Literal[
    "auto",
    "mcnemar-exact",
    "mcnemar-midp",
    "paired-t",
    "wilcoxon",
    "diebold-mariano",
    "bootstrap",
    "bootstrap-bca",
    "delong",
]
#: Fewest rows (or discordant pairs, for McNemar) a test needs before it may promote anything.
MIN_ROWS: dict[str, int] = {
    "mcnemar-exact": 1,
    "mcnemar-midp": 1,
    "paired-t": 10,
    "wilcoxon": 10,
    "diebold-mariano": 30,
    "bootstrap": 20,
    "bootstrap-bca": 20,
    "delong": 10,
}
ROW_TESTS = {"paired-t", "wilcoxon", "diebold-mariano"}
#: On time-ordered rows the block bootstrap over-promotes below this many rows (measured with
#: AR(1) rho 0.5 at n = 100: 7.7 % at alpha 5 %; benchmarks/gate_quality.py), so the gate declines.
MIN_ROWS_BLOCK_BOOTSTRAP = 500


class Guard(BaseModel):
    """A metric the candidate must not make worse by more than `tolerance` (non-inferiority).

    `rows` (a boolean mask) restricts the guard to a slice, e.g. one region. The rule is on the
    point estimate of the change; its interval is reported beside it.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    metric: str
    tolerance: float = Field(0.0, ge=0)
    name: str | None = None
    rows: np.ndarray | None = Field(default=None, exclude=True)

    @property
    def label(self) -> str:
        return self.name or self.metric


class GuardResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    metric: str
    champion: float
    candidate: float
    change: float
    tolerance: float
    passed: bool


class GateDecision(BaseModel):
    """The decision and every number behind it; JSON-serialisable, stored with the version."""

    model_config = ConfigDict(frozen=True)

    promote: bool
    baseline: Literal["champion", "floor"] = "champion"
    test: str
    metric: str
    statistic: float | None
    p_value: float
    effect: float
    ci_low: float | None
    ci_high: float | None
    n: int
    alpha: float
    min_effect: float
    baseline_metric: float | None
    candidate_metric: float | None
    guards: list[GuardResult] = Field(default_factory=list)
    reasons: list[str]


def certain_and_wrong(y: np.ndarray, pred: np.ndarray) -> int:
    """Rows whose true class got probability 0 (1-D: P(class 1) for a 0/1 truth)."""
    p = np.asarray(pred, dtype=float)
    if p.ndim == 2:
        return int(np.count_nonzero(p[np.arange(len(y)), np.asarray(y, dtype=np.int64)] == 0.0))
    return int(np.count_nonzero(np.where(y == 1, p, 1.0 - p) == 0.0))


def interval_text(alpha: float, low: float | None, high: float | None) -> str:
    """The improvement's two-sided (1 - 2 alpha) interval as a person reads it: its level, then
    the bounds low to high (a BCa interval's ends can come out swapped when the resamples are very
    skewed; the interval is the same), or '' when there is none."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return ""
    low, high = min(low, high), max(low, high)
    return f"{100 * (1 - 2 * alpha):.0f}% CI [{low:+.4f}, {high:+.4f}]"


def choose_test(metric: Metric, *, ordered: bool, classes: int = 2) -> str:
    """A sound default: exact McNemar for accuracy, the t-test for other per-row metrics, DeLong for
    a binary ROC AUC, the bootstrap otherwise (a one-vs-rest AUC of more than two classes among
    them); with time-ordered rows, tests that allow for dependence."""
    if metric.name == "roc_auc":
        return "bootstrap" if ordered or classes > 2 else "delong"
    if metric.rows is None:
        return "bootstrap"
    if ordered:
        return "diebold-mariano"
    return "mcnemar-exact" if metric.name == "accuracy" else "paired-t"


def _check_lengths(y: np.ndarray, *preds: np.ndarray) -> None:
    for who, pred in zip(("champion_pred", "candidate_pred"), preds, strict=True):
        if len(pred) != len(y):
            raise GateInputError(f"y_true has {len(y)} rows but {who} has {len(pred)}")


def _nan_rows(pred: np.ndarray) -> int:
    values = np.asarray(pred)
    return int(np.count_nonzero(np.isnan(values))) if values.dtype.kind == "f" else 0


def _run_test(
    test: str,
    metric: Metric,
    y: np.ndarray,
    base: np.ndarray,
    cand: np.ndarray,
    *,
    alpha: float,
    block: int | None,
    rng: np.random.Generator,
) -> TestResult:
    if test in {"mcnemar-exact", "mcnemar-midp"}:
        assert metric.rows is not None
        return mcnemar(
            metric.rows(y, base) > 0,
            metric.rows(y, cand) > 0,
            alpha=alpha,
            mid_p=test == "mcnemar-midp",
        )
    if test in ROW_TESTS:
        d = metric.gain_rows(y, base, cand)
        if test == "paired-t":
            return paired_t(d, alpha=alpha)
        if test == "wilcoxon":
            return wilcoxon(d, alpha=alpha)
        return diebold_mariano(d, alpha=alpha)
    if test == "delong":
        _, _, result = delong_paired(y, scores_for_auc(base), scores_for_auc(cand), alpha=alpha)
        return result

    def effect(weights: np.ndarray) -> np.ndarray:
        return metric.gain(metric.aggregate(y, base, weights), metric.aggregate(y, cand, weights))

    return paired_bootstrap(
        effect,
        len(y),
        alpha=alpha,
        method="bca" if test == "bootstrap-bca" else "percentile",
        block=block,
        rng=rng,
    )


def _reject(reason: str, **fields: object) -> GateDecision:
    return GateDecision(
        promote=False,
        statistic=None,
        p_value=1.0,
        effect=0.0,
        ci_low=None,
        ci_high=None,
        baseline_metric=None,
        candidate_metric=None,
        reasons=[reason, "Reject: not enough evidence that the candidate is better."],
        **fields,
    )


def _in_order(
    y: np.ndarray,
    base: np.ndarray,
    cand: np.ndarray,
    guards: Sequence[Guard],
    order: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Sequence[Guard]]:
    """The rows (and the guards' slices) sorted by `order`, when the rows are time-ordered."""
    _check_lengths(y, base, cand)
    for guard in guards:
        if guard.rows is not None and len(guard.rows) != len(y):
            raise GateInputError(
                f"guard {guard.label!r} has {len(guard.rows)} rows but y_true has {len(y)}"
            )
    if order is None:
        return y, base, cand, guards
    if len(order) != len(y):
        raise GateInputError(f"order has {len(order)} rows but y_true has {len(y)}")
    sort = np.argsort(np.asarray(order), kind="stable")
    guards = [
        g if g.rows is None else g.model_copy(update={"rows": np.asarray(g.rows)[sort]})
        for g in guards
    ]
    return y[sort], base[sort], cand[sort], guards


def _chosen_test(m: Metric, test: str, *, ordered: bool, classes: int, alpha: float) -> str:
    """The test to run: `test`, or the sound default for `auto`; refuse a test that does not
    suit the metric, and a level a one-sided test cannot have."""
    chosen = choose_test(m, ordered=ordered, classes=classes) if test == "auto" else test
    if chosen not in MIN_ROWS:
        raise GateInputError(f"unknown test {test!r}; use 'auto' or one of {sorted(MIN_ROWS)}")
    if chosen.startswith("mcnemar") and m.name != "accuracy":
        raise GateInputError(f"test {chosen!r} compares correct/incorrect: use metric 'accuracy'")
    if chosen in ROW_TESTS and m.rows is None:
        raise GateInputError(
            f"test {chosen!r} needs a per-row metric; {m.name!r} is not one (use bootstrap)"
        )
    if chosen == "delong" and m.name != "roc_auc":
        raise GateInputError("test 'delong' compares ROC AUCs: use metric 'roc_auc'")
    if chosen == "delong" and classes > 2:
        raise GateInputError(
            f"test 'delong' is for two classes; these rows have {classes}: use 'bootstrap' "
            "(one-vs-rest ROC AUC)"
        )
    if not 0 < alpha <= 0.5:
        raise GateInputError(
            f"alpha {alpha} is outside (0, 0.5]; a one-sided test needs alpha <= 0.5"
        )
    return chosen


def _cannot_judge(
    chosen: str, m: Metric, y: np.ndarray, base: np.ndarray, cand: np.ndarray, *, baseline: str,
    ordered: bool, validation_passed: bool,
) -> str | None:  # fmt: skip
    """Why the gate cannot judge these rows (a rejection, never a promotion), or None."""
    if not validation_passed:
        return "The batch failed validation."
    nan_base, nan_cand = _nan_rows(base), _nan_rows(cand)
    if nan_base or nan_cand:
        return (
            f"Predictions are NaN on {nan_cand} rows (candidate) and {nan_base} rows ({baseline})."
        )
    if len(y) < MIN_ROWS[chosen]:
        return f"{len(y)} test rows are fewer than the {MIN_ROWS[chosen]} that {chosen} needs."
    if m.name in {"roc_auc"} and len(np.unique(y)) < 2:
        return "y_true holds a single class, so ROC AUC is undefined."
    if ordered and chosen.startswith("bootstrap") and len(y) < MIN_ROWS_BLOCK_BOOTSTRAP:
        return (
            f"{len(y)} time-ordered test rows are fewer than the {MIN_ROWS_BLOCK_BOOTSTRAP} the block "
            f"bootstrap needs to keep false promotions at alpha; decide on a per-row metric "
            f"(log_loss with diebold-mariano) or hold back more rows."
        )
    return None


def compare(
    y_true: np.ndarray,
    champion_pred: np.ndarray,
    candidate_pred: np.ndarray,
    *,
    metric: str = "accuracy",
    alpha: float = 0.05,
    min_effect: float = 0.0,
    test: TestName | str = "auto",
    guards: Sequence[Guard] = (),
    order: np.ndarray | None = None,
    baseline: Literal["champion", "floor"] = "champion",
    validation_passed: bool = True,
    block: int | None = None,
    seed: int = 0,
) -> GateDecision:
    """Decide whether the candidate replaces the champion, and say why in plain sentences.

    `order` (e.g. timestamps) marks the rows as time-ordered: they are sorted by it and `auto` picks
    a test that allows for dependence between neighbouring rows.
    """
    m = get_metric(metric)
    y, base, cand, guards = _in_order(
        np.asarray(y_true), np.asarray(champion_pred), np.asarray(candidate_pred), guards, order
    )
    ordered = order is not None
    classes = base.shape[1] if base.ndim == 2 else 2
    chosen = _chosen_test(m, test, ordered=ordered, classes=classes, alpha=alpha)
    common = {
        "test": chosen,
        "metric": m.name,
        "n": len(y),
        "alpha": alpha,
        "min_effect": min_effect,
        "baseline": baseline,
    }
    if m.needs == "probabilities":
        check_probabilities(base, baseline)
        check_probabilities(cand, "candidate")
    why = _cannot_judge(
        chosen, m, y, base, cand, baseline=baseline, ordered=ordered,
        validation_passed=validation_passed,
    )  # fmt: skip
    if why is not None:
        return _reject(why, **common)
    if ordered and chosen.startswith("bootstrap"):
        block = block if block is not None else default_block_length(len(y))
    result = _run_test(
        chosen, m, y, base, cand, alpha=alpha, block=block, rng=np.random.default_rng(seed)
    )
    return _decided(m, result, y, base, cand, guards=guards, common=common)


def _decided(
    m: Metric,
    result: TestResult,
    y: np.ndarray,
    base: np.ndarray,
    cand: np.ndarray,
    *,
    guards: Sequence[Guard],
    common: dict[str, Any],
) -> GateDecision:
    """The rule on a test's result: significant, at least the minimum effect, no guard failed;
    and the reasons in plain sentences. `common`: the fields every decision of this call has."""
    alpha, min_effect, baseline = common["alpha"], common["min_effect"], common["baseline"]
    base_value, cand_value = m.value(y, base), m.value(y, cand)
    effect = m.gain(base_value, cand_value)
    significant = result.p_value < alpha
    guard_results = [_guard(g, y, base, cand) for g in guards]
    failed = [g for g in guard_results if not g.passed]
    direction = "higher" if m.higher_is_better else "lower"
    interval = interval_text(alpha, result.ci_low, result.ci_high)
    reasons = [
        f"On {len(y)} held-back rows the candidate's {m.name} is {cand_value:.4f} vs the "
        f"{baseline}'s {base_value:.4f} ({direction} is better): improvement {effect:+.4f}"
        + (f", {interval}." if interval else "."),
        f"{common['test']}: one-sided p = {result.p_value:.3g} ({'<' if significant else '≥'} alpha {alpha:g}).",
    ]
    if significant and effect < min_effect:
        reasons.append(f"The improvement {effect:+.4f} is below the minimum effect {min_effect:g}.")
    certain = certain_and_wrong(y, cand) if m.name == "log_loss" else 0
    if certain and not significant:
        reasons.append(
            f"The candidate gave its true class probability 0 on {certain} rows, each costing "
            f"{-math.log(1e-15):.1f} in log loss: a model with 0/1 probabilities (a deep decision "
            "tree, one nearest neighbour) is better regularized or gated on accuracy."
        )
    reasons += [
        f"Guard {g.name}: {g.metric} changed {g.change:+.4f} (tolerance {g.tolerance:g}) — failed."
        for g in failed
    ]
    promote = significant and effect >= min_effect and effect > 0 and not failed
    reasons.append(
        "Promote: the candidate is significantly better."
        if promote
        else f"Reject: not enough evidence that the candidate beats the {baseline}."
    )
    finite = math.isfinite(result.ci_low) and math.isfinite(result.ci_high)
    return GateDecision(
        promote=promote,
        statistic=result.statistic if math.isfinite(result.statistic) else None,
        p_value=result.p_value,
        effect=effect,
        ci_low=min(result.ci_low, result.ci_high) if finite else None,
        ci_high=max(result.ci_low, result.ci_high) if finite else None,
        baseline_metric=base_value,
        candidate_metric=cand_value,
        guards=guard_results,
        reasons=reasons,
        **common,
    )


def _guard(guard: Guard, y: np.ndarray, base: np.ndarray, cand: np.ndarray) -> GuardResult:
    m = get_metric(guard.metric)
    mask = np.ones(len(y), bool) if guard.rows is None else np.asarray(guard.rows, bool)
    base_value, cand_value = m.value(y[mask], base[mask]), m.value(y[mask], cand[mask])
    change = m.gain(base_value, cand_value)
    return GuardResult(
        name=guard.label,
        metric=m.name,
        champion=base_value,
        candidate=cand_value,
        change=change,
        tolerance=guard.tolerance,
        passed=bool(change >= -guard.tolerance),
    )


def check_unseen(
    holdout: BatchSlice, holdout_start: datetime | None, windows: dict[str, TrainingWindow]
) -> None:
    """Refuse a test set that overlaps a model's recorded training window (rows or time)."""
    for who, window in windows.items():
        for part in window.slices:
            same = part.batch_id == holdout.batch_id
            if same and part.start < holdout.stop and holdout.start < part.stop:
                raise GateError(
                    f"the test rows {holdout.batch_id}[{holdout.start}:{holdout.stop}] overlap the "
                    f"{who}'s training rows [{part.start}:{part.stop}]; a fair gate needs unseen rows"
                )
        if (
            window.time_end is not None
            and holdout_start is not None
            and holdout_start < window.time_end
        ):
            raise GateError(
                f"the test set starts at {holdout_start}, before the end of the {who}'s training data "
                f"(which ends {window.time_end}); a fair gate needs rows newer than both models saw"
            )
