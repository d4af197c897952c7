"""The shadow challenger (issue 14) on a real Prefect backend.

In mode shadow a candidate becomes the challenger; every later batch is evidence, appended to the
registry once per batch, and the challenger is promoted when the evidence reaches its boundary
(with `ct.model.promoted` carrying the evidence) or dropped (`ct.challenger.dropped`). Its state
lives in the registry, so a fresh process continues it, and a batch seen twice counts once.
"""

from __future__ import annotations

import pytest

from blocks.registry import ModelRegistry
from flows.ct import ALREADY, continuous_training
from tasks.challenger import current_challenger, evidence_log
from tasks.config import CTConfig
from tasks.streams import write_stream

pytestmark = pytest.mark.slow  # whole backtests


def config_for(root, name: str, mode: str, target: str = "churned") -> CTConfig:
    return CTConfig.model_validate(
        {
            "dataset": {"name": name, "target": target},
            "state_dir": str(root / "state"),
            "gate": {"mode": mode},
            "validation": {"quality_suite": False},
        }
    )


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
    assert steps[0].outcome == "first model v1"
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
    proof = entry.proof
    assert proof is not None and proof.action == "challenger" and proof.kind == "anytime-valid test"
    assert proof.e_value is not None and proof.level is not None and proof.e_value >= proof.level
    assert proof.rows is not None and proof.rows.batches == batches and proof.rows.n > 0
    assert entry.reason == proof.line()
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
    assert steps[0].outcome == "first model v1"
    later = [s.outcome for s in steps[1:]]
    assert all("did not pass the screen" in o or "challenger v" in o for o in later), later
    registry = ModelRegistry(url=config.registry_url)
    for step in steps[1:]:
        if step.challenger is not None and "started" in step.outcome:
            decision = registry.get("screened", version=step.challenger).metadata["decision"]
            assert decision["alpha"] == 0.2 and decision["p_value"] < 0.2  # the screen's level
