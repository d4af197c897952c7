"""gate.mode auto's switch rule (tasks/selection.py), without Prefect: the t-test against its
formula and scipy, and the rule against the replay it was measured with (benchmarks/selection.py)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from blocks.registry import AliasConflictError, ModelRegistry
from tasks.selection import (
    AFTER_CHANGE,
    LINEAGES,
    START,
    SelectionRecord,
    append_record,
    choose,
    detect_change,
    read_selection,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from selection import replay, switch_when_significant, walk


def records_of(
    metrics: dict[str, list[float]],
    *,
    higher: bool = True,
    start: int = 1,
    served: list[str],
    dropped: list[str | None] | None = None,
) -> list[SelectionRecord]:
    n = len(next(iter(metrics.values())))
    return [
        SelectionRecord(
            batch_id=f"b{t}",
            start=start,
            served=served[t],
            dropped=None if dropped is None else dropped[t],
            metric="accuracy" if higher else "mae",
            higher_is_better=higher,
            versions=dict.fromkeys(LINEAGES, 1),
            metrics={k: metrics[k][t] for k in LINEAGES},
        )
        for t in range(n)
    ]


def serve_along(
    metrics: dict[str, list[float]],
    *,
    alpha: float,
    window: int,
    higher: bool = True,
    change_alpha: float = 0.0,
    probation: bool = False,
):
    """Step through the batches as the CT step does: each record's served lineage (and the one
    dropped) is the choice over the records before it."""
    records: list[SelectionRecord] = []
    n = len(next(iter(metrics.values())))
    for t in range(n):
        served, dropped = START, None
        if records:
            choice = choose(
                records,
                alpha=alpha,
                window=window,
                change_alpha=change_alpha,
                probation=probation,
            )
            served, dropped = choice.chosen, choice.dropped
        one = {k: v[: t + 1] for k, v in metrics.items()}
        records = records_of(
            one,
            higher=higher,
            served=[*(r.served for r in records), served],
            dropped=[*(r.dropped for r in records), dropped],
        )
    return records


def test_the_switch_test_is_the_one_sided_t_test():
    rng = np.random.default_rng(3)
    metrics = {k: list(0.7 + 0.02 * rng.standard_normal(6)) for k in LINEAGES}
    metrics["always"] = [v + 0.03 for v in metrics["never"]]  # better on every batch, noisily
    metrics["always"][2] -= 0.05
    records = records_of(metrics, served=["never"] * 6)
    choice = choose(records, alpha=0.2, window=10)
    for c in choice.contenders:
        d = np.array(metrics[c.lineage]) - np.array(metrics["never"])
        t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
        assert c.t == pytest.approx(t) and c.mean_gain == pytest.approx(d.mean())
        assert c.p_value == pytest.approx(stats.t.sf(t, len(d) - 1))
    assert choice.chosen == "always" and choice.switched and choice.batches == 6
    assert choice.evidence()["to"] == "always" and choice.evidence()["p_value"] < 0.2


def test_lower_is_better_metrics_are_turned_into_gains():
    metrics = {k: [10.0, 10.0, 10.0] for k in LINEAGES}
    metrics["batch-h0"] = [8.0, 7.5, 8.2]  # a smaller error: better
    metrics["always"] = [12.0, 12.5, 12.2]
    choice = choose(records_of(metrics, higher=False, served=["never"] * 3), alpha=0.2, window=10)
    assert choice.chosen == "batch-h0"


def test_the_same_model_is_no_contender_and_too_few_batches_decide_nothing():
    metrics = {k: [0.7, 0.8, 0.6] for k in LINEAGES}  # every lineage still the first model
    choice = choose(records_of(metrics, served=["never"] * 3), alpha=0.2, window=10)
    assert choice.chosen == "never" and all(c.t is None for c in choice.contenders)
    one = {k: [0.5 if k == "never" else 0.9] for k in LINEAGES}
    assert choose(records_of(one, served=["never"]), alpha=0.2, window=10).chosen == "never"
    assert choose([], alpha=0.2, window=10).chosen == START == "never"


def test_only_the_window_and_the_current_run_count():
    # always was far better long ago, and is slightly worse in the last three batches
    metrics = {k: [0.5] * 8 for k in LINEAGES}
    metrics["always"] = [0.9, 0.9, 0.9, 0.9, 0.9, 0.49, 0.48, 0.49]
    records = records_of(metrics, served=["never"] * 8)
    assert choose(records, alpha=0.2, window=8).chosen == "always"
    assert choose(records, alpha=0.2, window=3).chosen == "never"
    # records of an earlier run (before a new contract started the lineages again) do not count
    restarted = [r.model_copy(update={"start": 9}) for r in records[-2:]]
    assert choose([*records[:-2], *restarted], alpha=0.2, window=8).chosen == "never"


@pytest.mark.parametrize(
    ("window", "change_alpha", "probation"),
    [(None, 0.0, False), (5, 0.0, False), (10, 0.0, False), (10, 0.05, False), (10, 0.05, True)],
)
def test_the_rule_serves_what_the_measured_replay_served(window, change_alpha, probation):
    """On random streams where lineages lead in turn (and, with the change test, where the
    concept sometimes changes suddenly), serving batch by batch with `choose` gives the same
    lineages and the same mean as benchmarks/selection.py's replay of the rule."""
    rng = np.random.default_rng(7)
    changes = drops = 0
    for _ in range(40):
        n = int(rng.integers(3, 25))
        drift = {k: rng.normal(0, 0.02) for k in LINEAGES}
        metrics = {
            k: list(0.7 + drift[k] * np.arange(n) + 0.03 * rng.standard_normal(n)) for k in LINEAGES
        }
        if change_alpha and n > 6:  # every lineage falls at one batch; the fresh ones recover
            at = int(rng.integers(4, n - 1))
            for k in LINEAGES:
                metrics[k][at] -= 0.3
                if k != "never":
                    metrics[k][at + 1 :] = [v + rng.uniform(0, 0.2) for v in metrics[k][at + 1 :]]
        metrics["batch"] = list(metrics["always"])  # two lineages with the same model: ties
        records = serve_along(
            metrics,
            alpha=0.2,
            window=window or 10_000,
            change_alpha=change_alpha,
            probation=probation,
        )
        values = {k: np.array(v) for k, v in metrics.items()}
        rule = switch_when_significant(
            0.2, window, change_alpha=change_alpha, probation="first" if probation else ""
        )
        assert walk(rule, values, LINEAGES) == [(r.served, r.dropped) for r in records]
        mean = replay(rule, values, values, LINEAGES)
        served = np.mean([values[r.served][t] for t, r in enumerate(records)])
        assert served == pytest.approx(mean)
        changes += sum(r.served == AFTER_CHANGE != p.served for p, r in itertools.pairwise(records))
        drops += sum(r.dropped is not None for r in records)
    assert changes > 0 or not change_alpha  # the change test did decide some of them
    assert drops > 0 or not probation  # and probation some


def test_the_change_test_is_the_one_sided_prediction_interval():
    """T = (mean - x) / (s sqrt(1 + 1/m)) on m earlier scores, Student's t with m - 1 degrees of
    freedom: against the formula, scipy, and a published quantile."""
    before = [0.81, 0.83, 0.80, 0.84]
    metrics = {k: [*before, 0.55] for k in LINEAGES}
    change = detect_change(records_of(metrics, served=["never"] * 5))
    assert change is not None
    b = np.array(before)
    t = (b.mean() - 0.55) / (b.std(ddof=1) * np.sqrt(1 + 1 / 4))
    assert change.t == pytest.approx(t) and change.batches_before == 4
    assert change.p_value == pytest.approx(stats.t.sf(t, 3))
    assert change.metric == 0.55 and change.mean_before == pytest.approx(b.mean())
    # Student's t, 3 degrees of freedom: the one-sided 0.001 point is 10.215 (published tables)
    assert stats.t.sf(10.215, 3) == pytest.approx(0.001, rel=1e-3)
    # a lower-is-better metric: a rise of the error is the fall of the score
    errors = {k: [5.0, 5.2, 4.9, 5.1, 9.0] for k in LINEAGES}
    worse = detect_change(records_of(errors, higher=False, served=["never"] * 5))
    assert worse is not None and worse.t > 0 and worse.metric == 9.0


def test_a_sudden_fall_of_the_served_score_serves_the_new_batch_alone_at_once():
    # the demo's abrupt change: every lineage was trained before it, so all fall together; the
    # t-test sees nothing yet (no lineage is better on it), the change test does
    metrics = {k: [0.82, 0.83, 0.81, 0.79, 0.41] for k in LINEAGES}
    records = records_of(metrics, served=["never"] * 5)
    assert choose(records, alpha=0.2, window=10).chosen == "never"
    choice = choose(records, alpha=0.2, window=10, change_alpha=0.001)
    assert choice.changed and choice.chosen == AFTER_CHANGE == "always-h0" and choice.switched
    assert choice.evidence()["change"]["p_value"] < 0.001
    assert "a sudden change" in choice.reason() and "fell to 0.41" in choice.reason()
    # an ordinary dip, as clustered rows give, is no change; nor is anything with too few batches
    dip = {k: [0.71, 0.63, 0.78, 0.71, 0.69, 0.74, 0.62] for k in LINEAGES}
    assert not choose(
        records_of(dip, served=["never"] * 7), alpha=0.2, window=10, change_alpha=0.001
    ).changed
    two = {k: [0.82, 0.41] for k in LINEAGES}
    assert detect_change(records_of(two, served=["never"] * 2)) is None


def test_false_alarms_of_the_change_test_happen_at_its_level():
    """Simulated: scores independent and normal, nothing changes; the share of batches the test
    calls a change is its alpha (within four Monte-Carlo standard errors)."""
    rng = np.random.default_rng(11)
    alpha, trials = 0.05, 4000
    alarms = 0
    for _ in range(trials):
        m = int(rng.integers(2, 10))
        scores = list(0.75 + 0.03 * rng.standard_normal(m + 1))
        change = detect_change(
            records_of({k: scores for k in LINEAGES}, served=["never"] * (m + 1))
        )
        assert change is not None
        alarms += change.p_value < alpha
    assert abs(alarms / trials - alpha) < 4 * np.sqrt(alpha * (1 - alpha) / trials)


def test_a_lineage_worse_on_its_first_batch_served_is_dropped_and_its_lucky_batches_stop_counting():
    # regions: always won two lucky batches (0.80, 0.79 against never's 0.70) and the t-test
    # switched; on its first batch served it did worse (0.66 against 0.72)
    metrics = {k: [0.70, 0.70, 0.70, 0.72] for k in LINEAGES}
    metrics["always"] = [0.70, 0.80, 0.79, 0.66]
    served = ["never", "never", "never", "always"]
    first3 = {k: v[:3] for k, v in metrics.items()}
    assert choose(records_of(first3, served=served[:3]), alpha=0.2, window=10).chosen == "always"
    records = records_of(metrics, served=served)
    assert choose(records, alpha=0.2, window=10).chosen == "always"  # without probation: stays
    choice = choose(records, alpha=0.2, window=10, probation=True)
    assert choice.chosen == "never" and choice.dropped == "always" and choice.switched
    assert choice.probation is not None and choice.probation.replaced == "never"
    assert choice.probation.metric == 0.66 and choice.probation.replaced_metric == 0.72
    assert "worse than never's 0.72" in choice.reason() and "starts over" in choice.reason()
    assert choice.evidence()["probation"]["lineage"] == "always"
    # the next batch: always's record counts from the batch that dropped it, so its lucky
    # batches no longer switch to it (they would, counted: the mean gain is still positive)
    metrics = {k: [*v, 0.71] for k, v in metrics.items()}
    metrics["always"][-1] = 0.76
    later = records_of(metrics, served=[*served, "never"], dropped=[None] * 4 + ["always"])
    choice = choose(later, alpha=0.2, window=10, probation=True)
    assert choice.chosen == "never" and choice.probation is None  # a return is not on probation
    always = next(c for c in choice.contenders if c.lineage == "always")
    assert always.batches == 1 and always.t is None
    counted = records_of(metrics, served=[*served, "never"])  # the same, had it not been dropped
    assert choose(counted, alpha=0.2, window=10).chosen == "always"


def test_a_lineage_no_worse_on_its_first_batch_served_stays():
    metrics = {k: [0.70, 0.70, 0.70, 0.72] for k in LINEAGES}
    metrics["always"] = [0.70, 0.78, 0.76, 0.72]  # as good as never there: it stays
    records = records_of(metrics, served=["never", "never", "never", "always"])
    choice = choose(records, alpha=0.2, window=10, probation=True)
    assert choice.chosen == "always" and choice.dropped is None and not choice.switched
    assert choice.probation is not None and not choice.probation.failed
    from tasks.selection import selection_markdown

    text = selection_markdown("m", records[-1], choice, 0.2, dict.fromkeys(LINEAGES, 1))
    assert "Probation: `always`'s first batch served, 0.7200 against 0.7200" in text
    assert "not worse: it stays" in text


def test_only_a_switch_away_from_never_is_on_probation():
    # always replaced batch (not never) and did worse on its first batch: it stays, as the
    # t-test's record decides between learning lineages (a concept that reverses)
    metrics = {k: [0.70, 0.70, 0.70, 0.72] for k in LINEAGES}
    metrics["always"] = [0.70, 0.80, 0.79, 0.66]
    records = records_of(metrics, served=["never", "batch", "batch", "always"])
    choice = choose(records, alpha=0.2, window=10, probation=True)
    assert choice.probation is None and choice.dropped is None and choice.chosen == "always"


def test_one_record_per_batch_by_compare_and_swap(tmp_path):
    registry = ModelRegistry(url=str(tmp_path / "registry"))
    metrics = {k: [0.5, 0.6] for k in LINEAGES}
    first, second = records_of(metrics, served=["never", "never"])
    assert append_record(registry, "m", first, expected=0) == 1
    with pytest.raises(AliasConflictError):
        append_record(registry, "m", second, expected=0)  # a racing step read the same log
    append_record(registry, "m", second, expected=1)
    assert read_selection(registry, "m", last=10) == ([first, second], 2)
    assert read_selection(registry, "m", last=1) == ([second], 2)


def test_the_artifact_shows_each_lineage_scored_and_after_the_batch():
    from tasks.selection import selection_markdown

    metrics = {k: [0.5, 0.6] for k in LINEAGES}
    metrics["always"] = [0.7, 0.8]
    records = records_of(metrics, served=["never", "never"])
    choice = choose(records, alpha=0.2, window=10)
    after = dict.fromkeys(LINEAGES, 1) | {"always": 4, "always-h0": 5}
    text = selection_markdown("m", records[-1], choice, 0.2, after)
    assert text.startswith("# m: auto serves `always` (switched from `never`)")
    row = next(line for line in text.splitlines() if line.startswith("| `always`"))
    assert "**served next**" in row and "| v1 |" in row and row.endswith("| v4 |")
    assert "| 0.8000 | 2 | +0.2000 |" in row  # its score, the batches of its test, the mean gain
