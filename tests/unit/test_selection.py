"""gate.mode auto's switch rule (tasks/selection.py), without Prefect: the t-test against its
formula and scipy, and the rule against the replay it was measured with (benchmarks/selection.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from blocks.registry import AliasConflictError, ModelRegistry
from tasks.selection import LINEAGES, START, SelectionRecord, append_record, choose, read_selection

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from selection import replay, switch_when_significant


def records_of(
    metrics: dict[str, list[float]], *, higher: bool = True, start: int = 1, served: list[str]
) -> list[SelectionRecord]:
    n = len(next(iter(metrics.values())))
    return [
        SelectionRecord(
            batch_id=f"b{t}",
            start=start,
            served=served[t],
            metric="accuracy" if higher else "mae",
            higher_is_better=higher,
            versions=dict.fromkeys(LINEAGES, 1),
            metrics={k: metrics[k][t] for k in LINEAGES},
        )
        for t in range(n)
    ]


def serve_along(metrics: dict[str, list[float]], *, alpha: float, window: int, higher: bool = True):
    """Step through the batches as the CT step does: each record's served lineage is the choice
    over the records before it."""
    records: list[SelectionRecord] = []
    n = len(next(iter(metrics.values())))
    for t in range(n):
        served = choose(records, alpha=alpha, window=window).chosen if records else START
        one = {k: v[: t + 1] for k, v in metrics.items()}
        records = records_of(one, higher=higher, served=[*(r.served for r in records), served])
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


@pytest.mark.parametrize("window", [None, 5, 10])
def test_the_rule_serves_what_the_measured_replay_served(window):
    """On random streams where lineages lead in turn, serving batch by batch with `choose` gives
    the same lineages and the same mean as benchmarks/selection.py's replay of the rule."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        n = int(rng.integers(3, 25))
        drift = {k: rng.normal(0, 0.02) for k in LINEAGES}
        metrics = {
            k: list(0.7 + drift[k] * np.arange(n) + 0.03 * rng.standard_normal(n)) for k in LINEAGES
        }
        metrics["batch"] = list(metrics["always"])  # two lineages with the same model: ties
        records = serve_along(metrics, alpha=0.2, window=window or 10_000)
        values = {k: np.array(v) for k, v in metrics.items()}
        rule = switch_when_significant(0.2, window)
        mean = replay(rule, values, values, LINEAGES)
        served = np.mean([values[r.served][t] for t, r in enumerate(records)])
        assert served == pytest.approx(mean)


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
    assert "| 0.8000 | +0.2000 |" in row
