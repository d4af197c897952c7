"""Reading batches within limits, the history store, the contract and its quarantine (issue 7)."""

import re

import numpy as np
import pandas as pd
import pytest

from tasks.config import DatasetConfig
from tasks.data import Batch, ReadLimits, append_history, read_batch, read_history, require_columns
from tasks.demo import CATEGORICAL, NUMERIC, demo_batch
from tasks.errors import DataLoadError, DataValidationError
from tasks.validate import QuarantineRecords, fit_contract, infer_spec
from tasks.validate.rows import validate_rows


@pytest.fixture
def batch_csv(tmp_path):
    path = tmp_path / "batch-01.csv"
    demo_batch(1, rows=100).to_csv(path, index=False)
    return path


def spec_for(frame):
    return infer_spec(frame, DatasetConfig())


def test_the_same_file_is_the_same_batch_and_parquet_reads_alike(batch_csv, tmp_path):
    frame, batch, bad = read_batch(batch_csv)
    _, same, _ = read_batch(batch_csv)
    assert (
        batch == same and len(frame) == 100 and not bad and batch.batch_id.startswith("batch-01-")
    )
    parquet = tmp_path / "b.parquet"
    frame.to_parquet(parquet)
    assert read_batch(parquet)[0].shape == frame.shape
    assert read_batch(f"file://{parquet}")[0].shape == frame.shape


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        (b"", "file is empty"),
        (b"a,b,churned\n", "has a header but no rows"),
        (b"\n\n", "has no columns"),
        (b"a,b,a\n1,2,3\n", "duplicated column names: 'a' (columns 1 and 3)"),
        ("age,churned\nJosé,1\n".encode("latin-1"), "is not valid utf-8"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataLoadError, match=re.escape(message)) as info:
        read_batch(path)
    assert str(info.value).startswith(str(path))


def test_encoding_and_delimiter_are_detected_or_configured(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("age;churned\n30;1\n40;0\n")
    assert list(read_batch(semi)[0].columns) == ["age", "churned"]
    with pytest.raises(DataLoadError, match=r"fix validation\.delimiter"):
        read_batch(semi, ReadLimits(delimiter=","))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("city,churned\nSão Paulo,1\n".encode("latin-1"))
    assert read_batch(latin, ReadLimits(encoding="latin-1"))[0]["city"].iloc[0] == "São Paulo"


def test_ragged_lines_are_returned_for_the_quarantine_not_dropped(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,churned\n1,2,0\n3,4,5,6\n7,8,1\n")
    frame, _, bad = read_batch(path)
    assert len(frame) == 2 and [b.line for b in bad] == ["3,4,5,6"]


def test_limits_roots_size_rows_and_kinds(batch_csv, tmp_path):
    with pytest.raises(DataLoadError, match="is a directory"):
        read_batch(tmp_path)
    odd = tmp_path / "x.xlsx"
    odd.write_bytes(b"1")
    with pytest.raises(DataLoadError, match="unsupported file type"):
        read_batch(odd)
    with pytest.raises(DataLoadError, match="more than 50 rows"):
        read_batch(batch_csv, ReadLimits(max_rows=50))
    with pytest.raises(DataLoadError, match="over the limit of 100 bytes"):
        read_batch(batch_csv, ReadLimits(max_bytes=100))
    inside = ReadLimits(allowed_roots=[str(tmp_path)])
    assert read_batch(batch_csv, inside)[0].shape[0] == 100
    with pytest.raises(DataLoadError, match="outside the allowed roots"):
        read_batch(batch_csv, ReadLimits(allowed_roots=[str(tmp_path / "landing")]))
    sneaky = tmp_path / "landing" / ".." / batch_csv.name
    with pytest.raises(DataLoadError, match="outside the allowed roots"):
        read_batch(sneaky, ReadLimits(allowed_roots=[str(tmp_path / "landing")]))


def test_a_file_with_none_of_the_configured_columns_is_refused():
    with pytest.raises(DataLoadError, match="none of the configured columns"):
        require_columns(pd.DataFrame({"p": [1], "q": [2]}), ["churned", "age"], "f.csv")


def test_spec_inference_and_the_learned_contract():
    frame = demo_batch(1, rows=200)
    spec = spec_for(frame)
    assert spec.numeric == NUMERIC and spec.categorical == CATEGORICAL
    assert spec.time_column == "event_time" and spec.target == "churned"
    contract = fit_contract(spec, frame, tolerance=0.5)
    assert contract.nullable == {
        "age": False,
        "income": True,
        "tenure_months": False,
        "usage_hours": False,
        "region": False,
        "plan": True,
    }
    low, high = contract.ranges["age"]
    assert low < frame["age"].min() and high > frame["age"].max()
    assert contract.categories["region"] == ["east", "north", "south", "west"]
    assert contract.schema_hash() != spec.schema_hash()


def test_valid_rows_are_coerced_sorted_and_stripped_of_extra_columns():
    frame = demo_batch(1, rows=50).sample(frac=1, random_state=0).assign(extra=1)
    valid, records, outcome = validate_rows(
        frame, spec_for(demo_batch(1, rows=50)), source="f.csv", max_bad_fraction=0.05
    )
    assert list(valid.columns) == spec_for(frame.drop(columns="extra")).columns
    assert valid["event_time"].is_monotonic_increasing and valid["churned"].dtype == np.int64
    assert records.empty and outcome.rows_quarantined == 0


@pytest.mark.parametrize(
    ("column", "bad_value", "rule"),
    [
        ("income", "abc", "coerce_dtype('float64')"),
        ("age", np.inf, "finite (no ±inf)"),
        ("age", -np.inf, "finite (no ±inf)"),
        ("churned", np.nan, "not_nullable"),
        ("churned", 7, "isin([0, 1])"),
        ("age", 10_000.0, "in_range"),
        ("age", np.nan, "not_nullable"),
        ("event_time", "not a date", "coerce_dtype('datetime64[ns]')"),
    ],
)
def test_bad_rows_are_quarantined_with_column_check_and_value(column, bad_value, rule):
    train = demo_batch(1, rows=200)
    contract = fit_contract(spec_for(train), train, tolerance=0.5)
    batch = demo_batch(2, rows=200).astype({column: object})
    batch.loc[5, column] = bad_value
    valid, records, outcome = validate_rows(batch, contract, source="b.csv", max_bad_fraction=0.05)
    assert len(valid) == 199 and outcome.rows_quarantined == 1
    QuarantineRecords.validate(records)
    record = records.iloc[0]
    assert (record["row"], record["column"]) == (5, column) and rule in record["check"]
    assert str(bad_value) in record["value"] or rule == "not_nullable"
    assert f'"{column}"' in record["raw"]


def test_too_many_bad_rows_stop_with_the_whole_batch_quarantined():
    train = demo_batch(1, rows=200)
    contract = fit_contract(spec_for(train), train, tolerance=0.5)
    batch = demo_batch(2, rows=100).astype({"income": object})
    batch.loc[10:19, "income"] = "n/a"
    with pytest.raises(
        DataValidationError, match=r"10\.0% of rows failed validation \(limit 5%\)"
    ) as info:
        validate_rows(batch, contract, source="b.csv", max_bad_fraction=0.05)
    assert "column='income'" in str(info.value) and "at row 10" in str(info.value)
    kept = info.value.quarantine
    assert (kept["check"] == "batch_rejected").sum() == 100


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns="age"), "column='age' rule='column_in_dataframe'"),
        (lambda f: f.assign(age="old"), "the whole column has the wrong type"),
        (lambda f: f.iloc[:5], "only 5 valid rows remain"),
    ],
)
def test_table_level_failures_stop_the_batch(mutate, message):
    batch = demo_batch(2, rows=100)
    with pytest.raises(DataValidationError, match=re.escape(message)):
        validate_rows(
            mutate(batch), spec_for(batch), source="b.csv", max_bad_fraction=0.05, min_rows=20
        )


def test_history_is_idempotent_and_windowed(tmp_path):
    for i in range(1, 4):
        frame = pd.DataFrame({"x": [i] * 3})
        batch = Batch(source=f"b{i}", batch_id=f"b{i}", sha256="0", rows=3)
        first = append_history(frame, batch, tmp_path)
        assert append_history(frame, batch, tmp_path) == first
    assert len(list(tmp_path.glob("*.parquet"))) == 3
    assert [i for i, _ in read_history(tmp_path, last=1, before="b3")] == ["b2"]
    assert [i for i, _ in read_history(tmp_path, last=5)] == ["b1", "b2", "b3"]
    assert read_history(tmp_path, last=0) == []
