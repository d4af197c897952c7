"""A CT step run again on the same batch changes nothing (issue 16, item 3).

Dask may run a finished task again after it loses a worker (PrefectHQ/prefect#15442), and a webhook
may be delivered twice. So a re-run must not register a second version or promote twice, however
far the first run got: finished, cut off after moving the champion, or cut off after registering.
The cut-off states are made on disk as a crash leaves them (a rollback and a removed step record),
then the step is run again for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks.registry import ModelRegistry
from flows.ct import ALREADY, continuous_training
from tasks.config import CTConfig
from tasks.streams import write_stream


def config_for(root: Path, name: str) -> CTConfig:
    return CTConfig.model_validate(
        {
            "dataset": {"name": name, "target": "churned"},
            "state_dir": str(root / "state"),
            "validation": {"quality_suite": False},
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[str]:
    # the first batch, then the demo's abrupt change (batches 6 and 7): each of the two later
    # candidates passes the gate by far (p < 1e-9 in the demo's table), so each step promotes
    paths = write_stream("demo", tmp_path_factory.mktemp("files"), batches=7)
    return [str(p) for p in (paths[0], paths[5], paths[6])]


def two_steps(root: Path, name: str, files: list[str]) -> tuple[CTConfig, ModelRegistry, str]:
    config = config_for(root, name)
    first, second = (continuous_training(path, config) for path in files[:2])
    assert first.outcome == "first model v1" and second.promoted, second.outcome
    registry = ModelRegistry(url=config.registry_url)
    assert registry.versions(name) == [1, 2] and registry.aliases(name)["champion"] == 2
    return config, registry, second.batch_id


def test_a_finished_step_run_again_registers_and_promotes_nothing(tmp_path, files):
    config, registry, batch_id = two_steps(tmp_path, "again", files)
    champion_log = registry.alias_log("again")
    record = registry.step_record("again", batch_id)
    assert record is not None and record["result"]["new_version"] == 2

    rerun = continuous_training(files[1], config)
    assert rerun.outcome.startswith(ALREADY) and rerun.outcome.endswith(
        "promoted v2: better than v1 on 240 unseen rows"
    ), rerun.outcome
    assert not rerun.promoted and rerun.new_version is None and rerun.champion_after == 2
    assert registry.versions("again") == [1, 2]
    assert registry.alias_log("again") == champion_log
    assert registry.step_record("again", batch_id) == record  # the first record stays

    third = continuous_training(files[2], config)  # the stream goes on as before
    assert third.promoted and registry.versions("again") == [1, 2, 3]


def test_a_step_cut_off_after_promoting_counts_as_finished(tmp_path, files):
    config, registry, batch_id = two_steps(tmp_path, "cut-late", files)
    step_file = tmp_path / "state" / "registry" / "cut-late" / "steps" / f"{batch_id}.json"
    step_file.unlink()  # the worker died after the champion moved, before the record was written
    entries = len(registry.alias_log("cut-late"))

    rerun = continuous_training(files[1], config)
    assert rerun.outcome == f"{ALREADY}: champion v2 learned from this batch", rerun.outcome
    assert registry.versions("cut-late") == [1, 2]
    assert len(registry.alias_log("cut-late")) == entries


def test_a_step_cut_off_after_registering_is_finished_by_its_rerun(tmp_path, files):
    config, registry, batch_id = two_steps(tmp_path, "cut-early", files)
    # the state a worker lost between register and promote leaves: v2 registered, v1 champion
    registry.rollback("cut-early", reason="test: as if v2 had never been promoted")
    (tmp_path / "state" / "registry" / "cut-early" / "steps" / f"{batch_id}.json").unlink()
    assert registry.aliases("cut-early")["champion"] == 1

    rerun = continuous_training(files[1], config)
    assert rerun.promoted and rerun.new_version == 2, rerun.outcome  # the same version, promoted
    assert registry.versions("cut-early") == [1, 2]
    assert registry.aliases("cut-early")["champion"] == 2
