"""The monitor flow (drift and degradation events) and the delivery flow, on a real server (issue 8)."""

import json
import os
from pathlib import Path

import pytest

from blocks.registry import ModelRegistry
from flows.cli.main import main
from flows.deliver import deliver
from flows.monitor import monitor
from tasks.config import CTConfig, DatasetConfig
from tasks.demo import demo_batch

NAME = "monitor-e2e"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    config = CTConfig(dataset=DatasetConfig(name=NAME), state_dir=str(root / "state"))
    (root / "ct.yaml").write_text(json.dumps(config.model_dump(mode="json")))
    path = root / "b1.csv"
    demo_batch(1, rows=600).to_csv(path, index=False)
    assert main(["run", "--data", str(path), "--config", str(root / "ct.yaml")]) == 0
    return root, config


def test_monitor_flags_drift_and_degradation_after_the_concept_changes(trained, events_until):
    root, config = trained
    # the champion (v1) learned the world before the abrupt change at batch 6
    path = root / "prod-new-world.csv"
    demo_batch(7, rows=800).to_csv(path, index=False)
    result = monitor(str(path), config)
    assert result.drift.drifted and "usage_hours" in result.drift.drifted_columns
    assert result.performance is not None and result.performance.degraded
    resource = f"ct.model.{NAME}"
    degraded = events_until("ct.performance.degraded", resource)
    assert degraded and degraded[0]["payload"]["p_value"] < 0.05
    # tagged as the monitor's, which is what the ct-on-drift trigger matches (prefect.yaml)
    assert degraded[0]["resource"]["ct.origin"] == "monitor"

    def monitors(events):
        return [e for e in events if e["resource"]["ct.origin"] == "monitor"]

    drift = monitors(events_until("ct.drift.detected", resource, monitors))
    assert drift and drift[-1]["payload"]["labelled"] is True  # ct-on-drift's parameter


def test_monitor_without_labels_and_without_drift_is_quiet(trained):
    root, config = trained
    path = root / "prod-unlabelled.csv"
    demo_batch(2, rows=800).drop(columns="churned").to_csv(path, index=False)
    result = monitor(str(path), config)
    assert result.performance is None and not result.drift.drifted


def test_deliver_switches_current_atomically_and_keeps_the_previous(trained, tmp_path):
    root, config = trained
    path = root / "b6.csv"
    demo_batch(6, rows=600).to_csv(path, index=False)
    assert main(["run", "--data", str(path), "--config", str(root / "ct.yaml")]) == 0
    serving = tmp_path / "serving"
    first = deliver(NAME, 1, str(serving), config)
    second = deliver(NAME, 2, str(serving), config)
    folder = serving / NAME
    assert os.readlink(folder / "current") == "v2" and os.readlink(folder / "previous") == "v1"
    manifest = json.loads((folder / "current" / "manifest.json").read_text())
    registry = ModelRegistry(url=config.registry_url)
    assert (
        manifest["version"] == 2
        and manifest["sha256"] == registry.get(NAME, version=2).files["model.skops"]
    )
    assert first.previous is None and second.previous == 1
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "current",
        "previous",
        "v1",
        "v2",
    ]
    assert not [p for p in Path(folder).iterdir() if p.name.startswith(".staging")]
