"""The shadow challenger (issue 14) on a real Prefect backend.

In mode shadow a candidate becomes the challenger; every later batch is evidence, appended to the
registry once per batch, and the challenger is promoted when the evidence reaches its boundary
(with `ct.model.promoted` carrying the evidence) or dropped (`ct.challenger.dropped`). Its state
lives in the registry, so a fresh process continues it, and a batch seen twice counts once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blocks.registry import ModelRegistry
from flows.ct import ALREADY, continuous_training
from tasks.challenger import current_challenger, evidence_log
from tasks.config import CTConfig
from tasks.selection import LINEAGES, alias_of, choose, read_selection
from tasks.streams import write_stream


def config_for(root, name: str, mode: str, target: str = "churned") -> CTConfig:
    return CTConfig.model_validate(
        {
            "dataset": {"name": name, "target": target},
            "state_dir": str(root / "state"),
            "gate": {"mode": mode},
            "validation": {"quality_suite": False},
        }
    )


def promoted_evidence(events_until, name: str, key: str) -> dict:
    """The `key` part of the evidence of the first `ct.model.promoted` event that has one."""

    def evidence(e) -> dict:
        return e["payload"].get("evidence") or {}

    events = events_until(
        "ct.model.promoted", f"ct.model.{name}", lambda es: any(evidence(e).get(key) for e in es)
    )
    return next(evidence(e)[key] for e in events if evidence(e).get(key))


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    return [str(p) for p in write_stream("demo", tmp_path_factory.mktemp("files"), batches=9)]


def test_a_challenger_wins_on_later_batches_and_is_promoted_with_its_evidence(
    tmp_path, demo_files, events_until
):
    name = "shadow-demo"
    config = config_for(tmp_path, name, "shadow")
    registry = ModelRegistry(url=config.registry_url)
    steps = [continuous_training(path, config) for path in demo_files[:9]]
    assert steps[0].outcome == "first champion"
    assert steps[1].outcome.startswith("challenger v2 started") and steps[1].challenger == 2
    promoted = [s for s in steps if s.promoted and s.champion_version is not None]
    assert promoted, [s.outcome for s in steps]
    winner = promoted[0]
    assert "promoted (e-value" in winner.outcome
    # the evidence is in the registry: one record when started, then one per batch
    records = registry.read_log(name, evidence_log(winner.new_version))
    assert records[0]["batch_id"] is None
    batches = [r["batch_id"] for r in records[1:]]
    assert len(batches) == len(set(batches)) >= 1
    last = records[-1]["evidence"]
    assert last["version"] == winner.new_version and len(last["path"]) == len(batches)
    # the champion alias moved by compare-and-swap; the audit log says why
    entry = next(e for e in registry.alias_log(name) if e.version == winner.new_version)
    assert entry.reason.startswith(f"challenger v{winner.new_version} won on")
    events = events_until(
        "ct.model.promoted",
        f"ct.model.{name}",
        lambda es: any(e["payload"].get("via") == "challenger" for e in es),
    )
    via = [e for e in events if e["payload"].get("via") == "challenger"]
    evidence = via[0]["payload"]["evidence"]
    assert evidence["e_value"] >= evidence["boundary"] and evidence["rows"] > 0
    started = events_until("ct.challenger.started", f"ct.model.{name}", bool)
    assert started and started[0]["payload"]["challenger_number"] == 1


def test_a_challenger_out_of_budget_is_dropped_and_never_judged_on_its_own_rows(
    tmp_path, demo_files, events_until
):
    name = "shadow-budget"
    config = config_for(tmp_path, name, "shadow")
    config = config.model_copy(
        update={"gate": config.gate.model_copy(update={"budget_batches": 1})}
    )
    registry = ModelRegistry(url=config.registry_url)
    continuous_training(demo_files[0], config)
    assert continuous_training(demo_files[1], config).challenger == 2
    third = continuous_training(demo_files[2], config)  # stable data: no win within 1 batch
    assert "challenger v2 dropped: budget spent" in third.outcome
    assert "challenger v3 started" in third.outcome and third.challenger == 3
    dropped = events_until("ct.challenger.dropped", f"ct.model.{name}", bool)
    assert dropped[0]["payload"]["version"] == 2 and "budget" in dropped[0]["payload"]["reason"]
    assert [r["batch_id"] for r in registry.read_log(name, evidence_log(2))][1:] == [third.batch_id]
    # v3 learned from this batch: running it again (the step is recorded as finished) must not
    # make it evidence for v3, nor start anything
    again = continuous_training(demo_files[2], config)
    assert again.outcome.startswith(ALREADY) and not again.promoted, again.outcome
    assert [r["batch_id"] for r in registry.read_log(name, evidence_log(3))] == [None]
    assert registry.aliases(name)["champion"] == 1


def test_a_batch_seen_twice_counts_once(tmp_path, demo_files):
    name = "shadow-once"
    config = config_for(tmp_path, name, "shadow")
    registry = ModelRegistry(url=config.registry_url)
    for path in demo_files[:3]:
        continuous_training(path, config)
    before = current_challenger(registry, name)
    continuous_training(demo_files[2], config)  # the same batch again (a retry, a re-delivery)
    after = current_challenger(registry, name)
    assert before is not None and after is not None and before.version == after.version
    assert after.evidence == before.evidence and after.sequence == before.sequence
    assert len(registry.read_log(name, evidence_log(after.version))) == 2  # start + batch 3


def test_mode_both_screens_candidates_before_they_become_challengers(tmp_path, demo_files):
    config = config_for(tmp_path, "screened", "both")
    steps = [continuous_training(path, config) for path in demo_files[:4]]
    assert steps[0].outcome == "first champion"
    later = [s.outcome for s in steps[1:]]
    assert all("screen not passed" in o or "challenger v" in o for o in later), later
    registry = ModelRegistry(url=config.registry_url)
    for step in steps[1:]:
        if step.challenger is not None and "started" in step.outcome:
            decision = registry.get("screened", version=step.challenger).metadata["decision"]
            assert decision["alpha"] == 0.2 and decision["p_value"] < 0.2  # the screen's level


def test_mode_auto_serves_the_lineage_whose_record_wins_and_each_lineage_is_its_own_policy(
    tmp_path, events_until
):
    """auto runs the policies side by side: each lineage's score on every batch is what that
    policy's own backtest (a separate registry, mode always or batch-h0) served there, and never's
    is the first model's. The lineage served next is the switch rule's choice over the records,
    recomputed here; the champion follows it, and a switch is announced with its test."""
    files = [
        str(p)
        for p in write_stream("slow-drift-regression", tmp_path / "files", batches=7, rows=300)
    ]
    name = "auto-slow"
    config = config_for(tmp_path / "auto", name, "auto", target="y")
    registry = ModelRegistry(url=config.registry_url)
    steps = [continuous_training(path, config) for path in files]
    assert steps[0].outcome == "first champion" and steps[0].lineage is None
    alone = {"history_batches": 0}
    policies = {
        "always": config_for(tmp_path / "always", name, "always", target="y"),
        "batch-h0": config_for(tmp_path / "h0", name, "batch", target="y").model_copy(
            update={"retrain": config.retrain.model_copy(update=alone)}
        ),
    }
    own = {k: [continuous_training(path, c) for path in files] for k, c in policies.items()}

    records, _ = read_selection(registry, name, last=100)
    assert [r.batch_id for r in records] == [s.batch_id for s in steps[1:]]  # one per batch
    first = registry.load_model(name, version=1)
    for k, (record, step) in enumerate(zip(records, steps[1:], strict=True), start=1):
        frame = pd.read_csv(step.source)
        x, y = frame.drop(columns=["y"]), frame["y"].to_numpy()
        assert record.metrics["never"] == pytest.approx(np.mean(np.abs(y - first.predict(x))))
        for lineage, theirs in own.items():
            assert record.metrics[lineage] == pytest.approx(theirs[k].champion_metric), lineage
        # served: the rule's choice over the records before this batch; it scored what it served
        gate = config.gate
        rule = {
            "alpha": 0.2,
            "window": 10,
            "change_alpha": gate.change_alpha,
            "probation": gate.select_probation,
        }
        before = choose(records[: k - 1], **rule) if k > 1 else None
        assert record.served == (before.chosen if before else "never")
        assert record.dropped == (before.dropped if before else None)
        assert step.champion_metric == pytest.approx(record.metrics[record.served])
        assert step.lineage == choose(records[:k], **rule).chosen
    # the champion is the served lineage's model; the drift makes learning pay, and auto leaves never
    final = {k: registry.alias(name, alias_of(k)) for k in LINEAGES}
    assert registry.alias(name, "champion") == final[steps[-1].lineage]
    assert final["never"] == 1 and steps[-1].lineage != "never", [s.outcome for s in steps]
    events = events_until(
        "ct.model.promoted",
        f"ct.model.{name}",
        lambda es: any(e["payload"].get("via") == "selection" for e in es),
    )
    switch = next(e["payload"] for e in events if e["payload"].get("via") == "selection")
    assert switch["evidence"]["from"] == "never" and switch["evidence"]["p_value"] < 0.2
    # a re-run of the last batch moves nothing and adds no record
    again = continuous_training(files[-1], config)
    assert again.outcome.startswith(ALREADY)
    assert len(read_selection(registry, name, last=100)[0]) == len(records)


def test_mode_auto_meets_the_demo_s_abrupt_change_with_the_model_of_the_new_batch(
    tmp_path, demo_files, events_until
):
    """Batch 6 of the demo changes abruptly: every lineage was trained before it and falls. The
    served one's fall is far outside its earlier batches, so the model trained on batch 6 alone
    serves batch 7 (without the change test, never-updated would serve it: no lineage's record
    beats it until batch 7 is scored)."""
    name = "auto-demo"
    config = config_for(tmp_path, name, "auto")
    registry = ModelRegistry(url=config.registry_url)
    steps = [continuous_training(path, config) for path in demo_files[:7]]
    records, _ = read_selection(registry, name, last=100)
    sixth = records[4]  # records start at batch 2
    served = sixth.served  # never, or a lineage the record had switched to on noise
    assert sixth.batch_id == steps[5].batch_id and served != "always-h0"
    assert sixth.metrics[served] < 0.6 < min(r.metrics[served] for r in records[:4])
    assert steps[5].lineage == "always-h0" and f"switched from {served}" in steps[5].outcome
    assert choose(records[:5], alpha=0.2, window=10).chosen == served  # the t-test alone waits
    assert records[5].served == "always-h0"
    assert steps[6].champion_metric == pytest.approx(records[5].metrics["always-h0"])
    assert steps[6].champion_metric > sixth.metrics[served] + 0.2
    change = promoted_evidence(events_until, name, "change")
    assert change["lineage"] == served and change["p_value"] < config.gate.change_alpha
    assert any("a sudden change" in (e.reason or "") for e in registry.alias_log(name))


def test_mode_auto_drops_a_lineage_that_does_worse_on_its_first_batch_served(
    tmp_path, events_until
):
    """Rows clustered by a hidden region that changes every batch (`regions`, seed 6): always's
    models, fitted to the last region, win two batches, and the t-test switches to always for
    batch 5. There it scores below never, the lineage it replaced: never serves batch 6 again,
    and always's lucky batches no longer count for it."""
    files = [str(p) for p in write_stream("regions", tmp_path / "files", batches=6, seed=6)]
    name = "auto-regions"
    config = config_for(tmp_path, name, "auto", target="y")
    registry = ModelRegistry(url=config.registry_url)
    steps = [continuous_training(path, config) for path in files]
    records, _ = read_selection(registry, name, last=100)
    assert [r.served for r in records] == ["never", "never", "never", "always", "never"]
    fifth = records[3]  # records start at batch 2
    assert fifth.metrics["always"] < fifth.metrics["never"]
    assert steps[3].lineage == "always" and steps[4].lineage == "never"
    assert "switched from always" in steps[4].outcome
    assert records[4].dropped == "always" and records[4].batch_id == steps[5].batch_id
    assert registry.alias(name, "champion") == registry.alias(name, alias_of("never")) == 1
    # always's record counts again from batch 6 only: its two lucky batches are out of its test
    gate = config.gate
    rule = {"alpha": 0.2, "window": 10, "change_alpha": gate.change_alpha, "probation": True}
    tested = {c.lineage: c.batches for c in choose(records, **rule).contenders}
    assert tested["always"] == 1 and tested["batch"] == 5
    reasons = [e.reason or "" for e in registry.alias_log(name)]
    assert any("on its first batch served, worse than never" in r for r in reasons), reasons
    probation = promoted_evidence(events_until, name, "probation")
    assert probation["lineage"] == "always" and probation["replaced"] == "never"


def test_auto_cut_off_after_moving_some_lineages_finishes_the_rest_on_a_re_run(tmp_path):
    """A step that dies after a gated lineage took this batch's candidate, but before the others
    moved and the step was recorded: the re-run adds no record, registers nothing twice, does not
    judge a candidate against a model that learned from the batch, and moves the rest."""
    files = [
        str(p)
        for p in write_stream("slow-drift-regression", tmp_path / "files", batches=4, rows=300)
    ]
    name = "auto-cut"
    config = config_for(tmp_path, name, "auto", target="y")
    registry = ModelRegistry(url=config.registry_url)
    steps = [continuous_training(path, config) for path in files]
    last = steps[-1]
    after = registry.aliases(name)
    versions = registry.versions(name)
    records = read_selection(registry, name, last=100)[0]
    gated = [k for k in ("batch", "batch-h0") if f"{k} v" in last.outcome]
    assert gated, last.outcome  # the drift makes a gated lineage take its candidate
    # undo what came after the gated lineage's move: always's move, the crowning, the record
    entry = registry.alias_log(name, alias_of("always"))[-1]
    registry.set_alias(name, alias_of("always"), entry.previous, expected=entry.version)
    if last.promoted:
        crowned = registry.alias_log(name)[-1]
        registry.set_alias(name, "champion", crowned.previous, expected=crowned.version)
    (tmp_path / "state" / "registry" / name / "steps" / f"{last.batch_id}.json").unlink()
    again = continuous_training(files[-1], config)
    assert not again.outcome.startswith(ALREADY), again.outcome
    assert f"always v{entry.previous}->v{entry.version}" in again.outcome
    assert registry.aliases(name) == after and registry.versions(name) == versions
    assert read_selection(registry, name, last=100)[0] == records
