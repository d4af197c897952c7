"""Reading batches, the history store, and the data contract's error messages."""

import numpy as np
import pandas as pd
import pytest

from tasks.config import DatasetConfig
from tasks.data import append_history, read_batch, read_history, require_columns
from tasks.demo import CATEGORICAL, NUMERIC, demo_batch
from tasks.errors import DataLoadError, DataValidationError
from tasks.validate import infer_spec, validate_frame


@pytest.fixture
def batch_csv(tmp_path):
    path = tmp_path / "batch-01.csv"
    demo_batch(1, rows=100).to_csv(path, index=False)
    return path


def test_read_csv_and_parquet_give_the_same_batch_id_for_the_same_file(batch_csv, tmp_path):
    frame, batch = read_batch(batch_csv)
    _, same = read_batch(batch_csv)
    assert batch == same and len(frame) == 100 and batch.batch_id.startswith("batch-01-")
    parquet = tmp_path / "b.parquet"
    frame.to_parquet(parquet)
    assert read_batch(parquet)[0].shape == frame.shape


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        (b"", "file is empty"),
        (b"a,b,churned\n", "has a header but no rows"),
        (b"\n\n", "has no columns"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataLoadError, match=message) as info:
        read_batch(path)
    assert str(path) in str(info.value)


def test_a_directory_and_an_unknown_suffix_are_refused(tmp_path):
    with pytest.raises(DataLoadError, match="is a directory"):
        read_batch(tmp_path)
    odd = tmp_path / "x.xlsx"
    odd.write_bytes(b"1")
    with pytest.raises(DataLoadError, match="unsupported file type"):
        read_batch(odd)


def test_row_limit(batch_csv):
    with pytest.raises(DataLoadError, match="more than 50 rows"):
        read_batch(batch_csv, max_rows=50)


def test_a_file_with_none_of_the_configured_columns_is_refused():
    with pytest.raises(DataLoadError, match="none of the configured columns"):
        require_columns(pd.DataFrame({"p": [1], "q": [2]}), ["churned", "age"], "f.csv")


def test_spec_inference_uses_dtypes_and_config():
    frame = demo_batch(1, rows=50)
    spec = infer_spec(frame, DatasetConfig())
    assert spec.numeric == NUMERIC and spec.categorical == CATEGORICAL
    assert spec.time_column == "event_time" and spec.target == "churned"
    assert spec.schema_hash() == infer_spec(frame, DatasetConfig()).schema_hash()


def test_validation_coerces_sorts_by_time_and_drops_extra_columns():
    frame = demo_batch(1, rows=50).sample(frac=1, random_state=0)
    frame["extra"] = 1
    spec = infer_spec(frame.drop(columns="extra"), DatasetConfig())
    valid = validate_frame(frame, spec, source="f.csv")
    assert list(valid.columns) == spec.columns
    assert valid["event_time"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("mutate", "column", "rule"),
    [
        (lambda f: f.drop(columns="age"), "age", "column_in_dataframe"),
        (lambda f: f.assign(income=["abc"] + [1.0] * (len(f) - 1)), "income", "coerce_dtype"),
        (lambda f: f.assign(age=[np.inf] + [1.0] * (len(f) - 1)), "age", "finite"),
        (lambda f: f.assign(churned=[2] + [0] * (len(f) - 1)), "churned", "isin"),
        (lambda f: f.assign(churned=[np.nan] + [0.0] * (len(f) - 1)), "churned", ""),
    ],
)
def test_contract_errors_name_column_and_rule(mutate, column, rule):
    frame = demo_batch(1, rows=30)
    spec = infer_spec(frame, DatasetConfig())
    with pytest.raises(DataValidationError, match=f"column='{column}' rule=.*{rule}") as info:
        validate_frame(mutate(frame), spec, source="data/b.csv")
    assert str(info.value).startswith("data/b.csv: ")


def test_history_is_idempotent_and_windowed(tmp_path):
    from tasks.data import Batch

    for i in range(1, 4):
        frame = pd.DataFrame({"x": [i] * 3})
        batch = Batch(source=f"b{i}", batch_id=f"b{i}", sha256="0", rows=3)
        first = append_history(frame, batch, tmp_path)
        assert append_history(frame, batch, tmp_path) == first
    assert len(list(tmp_path.glob("*.parquet"))) == 3
    window = read_history(tmp_path, last=1, before="b3")
    assert [i for i, _ in window] == ["b2"]
    assert [i for i, _ in read_history(tmp_path, last=5)] == ["b1", "b2", "b3"]
    assert read_history(tmp_path, last=0) == []
