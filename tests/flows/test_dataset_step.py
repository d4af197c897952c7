"""A CT step on a dataset larger than memory (issue 16, item 4), on a real Prefect backend.

A folder of Parquet files (hive subfolders) is validated, checked for quality and compared for
drift over all its rows in record batches; bad rows go to quarantine Parquet parts; the model
learns from (and is gated on) a seeded sample of `retrain.sample_rows` valid rows, which the
lineage records. Too many bad rows refuse it as a batch is refused; running it again changes
nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blocks.registry import ModelRegistry
from flows.ct import ALREADY, continuous_training
from tasks.config import CTConfig
from tasks.errors import DataValidationError
from tasks.streams import stream_batches


def config_for(root: Path, name: str, sample_rows: int = 1500) -> CTConfig:
    return CTConfig.model_validate(
        {
            "dataset": {"name": name, "target": "churned"},
            "state_dir": str(root / "state"),
            "retrain": {"sample_rows": sample_rows},
        }
    )


def write_dataset(folder: Path, frames: list[pd.DataFrame]) -> Path:
    for day, frame in enumerate(frames, 1):
        (folder / f"day={day}").mkdir(parents=True)
        frame.to_parquet(folder / f"day={day}" / "part-0.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def batches() -> list[pd.DataFrame]:
    return list(stream_batches("demo", batches=8, rows=1200, seed=5))


def test_a_dataset_is_scanned_whole_and_learned_from_a_recorded_sample(tmp_path, batches):
    config = config_for(tmp_path, "big")
    first = tmp_path / "batch-01.parquet"
    batches[0].to_parquet(first, index=False)
    assert continuous_training(str(first), config).outcome == "first model v1"

    later = [b.copy() for b in batches[5:8]]  # after the demo's drift: 3,600 rows
    later[1].loc[later[1].index[:4], "churned"] = np.nan  # 4 rows without a label
    data = write_dataset(tmp_path / "dataset", later)
    step = continuous_training(str(data), config)
    assert step.rows == 1500 and step.quarantined == 4  # the sample; the bad rows of all 3,600
    assert step.drift is True and step.drifted_columns
    parts = sorted(Path(step.quarantine_path).glob("part-*.parquet"))
    assert parts and len(pd.concat(pd.read_parquet(p) for p in parts)) == 4
    registry = ModelRegistry(url=config.registry_url)
    if step.new_version is not None:  # promoted: its lineage says how it was sampled
        lineage = registry.get("big", version=step.new_version).metadata["lineage"]
        assert lineage["sample"]["rows"] == 1500 and lineage["sample"]["of_valid_rows"] == 3596
    history = sorted((tmp_path / "state" / "history" / "big").glob("*.parquet"))
    assert len(pd.read_parquet(history[-1])) == 1500  # what later windows learn from

    again = continuous_training(str(data), config)
    assert again.outcome.startswith(ALREADY), again.outcome


def test_a_first_model_can_learn_from_a_dataset(tmp_path, batches):
    config = config_for(tmp_path, "big-first", sample_rows=2000)
    data = write_dataset(tmp_path / "dataset", batches[:3])
    step = continuous_training(str(data), config)
    assert step.rows == 2000 and step.outcome == (
        "a dataset of 3,600 rows: learned from a sample of 2,000; first model v1"
    )
    lineage = ModelRegistry(url=config.registry_url).get("big-first", version=1).metadata["lineage"]
    assert lineage["sample"]["rows"] == 2000 and lineage["sample"]["of_valid_rows"] == 3600


def test_a_dataset_with_too_many_bad_rows_is_refused_and_changes_no_champion(
    tmp_path, batches, registry_snapshot
):
    config = config_for(tmp_path, "big-bad")
    first = tmp_path / "batch-01.parquet"
    batches[0].to_parquet(first, index=False)
    continuous_training(str(first), config)
    before = registry_snapshot(tmp_path)
    bad = [b.copy() for b in batches[1:3]]
    bad[0]["churned"] = np.nan  # half the rows have no label
    data = write_dataset(tmp_path / "dataset", bad)
    with pytest.raises(DataValidationError, match=r"1200 of 2400 rows \(50.0%\)") as caught:
        continuous_training(str(data), config)
    assert "quarantine" in str(caught.value)
    assert registry_snapshot(tmp_path) == before
