"""Reading batches within limits, the history store, the contract and its quarantine (issues 7, 12)."""

import re

import numpy as np
import pandas as pd
import pytest

from tasks.config import DatasetConfig
from tasks.data import Batch, append_history, read_batch, read_history, require_columns
from tasks.demo import CATEGORICAL, NUMERIC, demo_batch
from tasks.errors import DataLoadError, DataValidationError
from tasks.sources import ReadLimits
from tasks.validate import QuarantineRecords, infer_spec
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


def test_spec_inference_from_the_first_batch():
    frame = demo_batch(1, rows=200)
    spec = spec_for(frame)
    assert spec.numeric == NUMERIC and spec.categorical == CATEGORICAL
    assert spec.time_column == "event_time" and spec.target == "churned"
    assert spec.task == "classification" and spec.classes == [0, 1] and not spec.classes_closed
    assert "task" in spec.inferred and "classes" in spec.inferred
    # nothing learned from the data is a rule: no ranges, no categories, no nullability
    assert set(spec.model_dump()) == {
        "target",
        "time_column",
        "numeric",
        "categorical",
        "task",
        "classes",
        "classes_closed",
        "bounds",
        "non_null",
        "inferred",
    }


def test_a_numeric_column_with_a_few_bad_cells_stays_numeric():
    """Issue 12: a few `abc` made the whole column categorical; now the `abc` rows are quarantined."""
    frame = demo_batch(1, rows=100).astype({"income": object})
    frame.loc[[3, 50], "income"] = "abc"
    spec = spec_for(frame)
    assert "income" in spec.numeric
    _, records, outcome = validate_rows(frame, spec, source="f.csv", max_bad_fraction=0.05)
    assert outcome.rows_quarantined == 2 and set(records["value"]) == {"abc"}
    mostly_text = frame.astype({"age": object})
    mostly_text.loc[:20, "age"] = "old"
    assert "age" in spec_for(mostly_text).categorical


def test_valid_rows_are_coerced_sorted_and_stripped_of_extra_columns():
    frame = demo_batch(1, rows=50).sample(frac=1, random_state=0).assign(extra=1)
    valid, records, outcome = validate_rows(
        frame, spec_for(demo_batch(1, rows=50)), source="f.csv", max_bad_fraction=0.05
    )
    assert list(valid.columns) == spec_for(frame.drop(columns="extra")).columns
    assert valid["event_time"].is_monotonic_increasing and valid["churned"].dtype == np.int64
    assert records.empty and outcome.rows_quarantined == 0


DECLARED = DatasetConfig(classes=[0, 1], bounds={"age": (0, 120)}, non_null=["age", "region"])


@pytest.mark.parametrize(
    ("column", "bad_value", "rule"),
    [
        ("income", "abc", "coerce_dtype('float64')"),
        ("age", np.inf, "finite (no ±inf)"),
        ("age", -np.inf, "finite (no ±inf)"),
        ("churned", np.nan, "not_nullable"),
        ("churned", 7, "isin([0, 1])"),
        ("churned", "yes", "label_type('int')"),
        ("age", 130.0, "declared bounds [0, 120]"),
        ("age", -1.0, "declared bounds [0, 120]"),
        ("age", np.nan, "not_nullable"),
        ("region", None, "not_nullable"),
        ("event_time", "not a date", "coerce_dtype('datetime64[ns]')"),
    ],
)
def test_data_that_cannot_be_right_is_quarantined_with_column_rule_and_value(
    column, bad_value, rule
):
    contract = infer_spec(demo_batch(1, rows=200), DECLARED)
    batch = demo_batch(2, rows=200).astype({column: object})
    batch.loc[5, column] = bad_value
    valid, records, outcome = validate_rows(batch, contract, source="b.csv", max_bad_fraction=0.05)
    assert len(valid) == 199 and outcome.rows_quarantined == 1
    QuarantineRecords.validate(records)
    record = records.iloc[0]
    assert (record["row"], record["column"]) == (5, column) and rule in record["check"]
    assert str(bad_value) in record["value"] or rule == "not_nullable"
    assert f'"{column}"' in record["raw"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("age", 10_000.0),  # far outside the training range: drift
        ("usage_hours", -50.0),
        ("income", np.nan),  # missing in a feature nobody declared non-null
        ("region", "atlantis"),  # a category never seen
        ("churned", 7),  # a new class of an open class set
    ],
)
def test_what_the_champion_never_saw_is_kept_not_quarantined(column, value):
    """Issue 12: nothing learned from training data is a rule, so drift is never refused."""
    spec = spec_for(demo_batch(1, rows=200))
    batch = demo_batch(2, rows=200).astype({column: object})
    batch.loc[: len(batch) // 2, column] = value  # half the batch: far over max_bad_fraction
    valid, records, outcome = validate_rows(batch, spec, source="b.csv", max_bad_fraction=0.05)
    assert len(valid) == 200 and outcome.rows_quarantined == 0 and records.empty


def test_a_0_1_indicator_that_was_all_0_may_become_1():
    first = demo_batch(1, rows=100).assign(promo=0)
    spec = spec_for(first)
    assert "promo" in spec.numeric
    later = demo_batch(2, rows=100).assign(promo=1)
    valid, _, outcome = validate_rows(later, spec, source="b.csv", max_bad_fraction=0.05)
    assert outcome.rows_quarantined == 0 and (valid["promo"] == 1).all()


@pytest.mark.parametrize(
    ("labels", "kind", "dtype"),
    [
        (["no", "yes"], "str", object),
        ([True, False], "bool", bool),
        ([3, 5, 7], "int", np.int64),
        (["setosa", "versicolor", "virginica"], "str", object),
    ],
)
def test_labels_keep_their_type(labels, kind, dtype, tmp_path):
    frame = demo_batch(1, rows=90).assign(churned=[labels[i % len(labels)] for i in range(90)])
    path = tmp_path / "b.csv"
    frame.to_csv(path, index=False)
    read, _, _ = read_batch(path)  # what a CSV gives back
    spec = spec_for(read)
    assert spec.classes == sorted(labels) and spec.label_kind == kind
    assert [type(c) for c in spec.classes] == [type(labels[0])] * len(labels)
    valid, _, outcome = validate_rows(read, spec, source="b.csv", max_bad_fraction=0.05)
    assert outcome.rows_quarantined == 0 and valid["churned"].dtype == dtype
    assert set(valid["churned"]) == set(labels)


def test_a_closed_class_set_quarantines_unknown_labels_and_an_open_one_keeps_them():
    frame = demo_batch(1, rows=100)
    closed = infer_spec(frame, DatasetConfig(classes=[0, 1]))
    batch = demo_batch(2, rows=100)
    batch.loc[:2, "churned"] = 2
    _, records, outcome = validate_rows(batch, closed, source="b.csv", max_bad_fraction=0.05)
    assert outcome.rows_quarantined == 3 and set(records["check"]) == {"isin([0, 1])"}
    open_spec = spec_for(frame)
    valid, _, outcome = validate_rows(batch, open_spec, source="b.csv", max_bad_fraction=0.05)
    assert outcome.rows_quarantined == 0 and set(valid["churned"]) == {0, 1, 2}
    grown = open_spec.with_classes([0, 1, 2])
    assert grown.classes == [0, 1, 2] and closed.with_classes([0, 1, 2]).classes == [0, 1]


def test_a_regression_target_must_be_a_finite_number():
    frame = demo_batch(1, rows=100).assign(churned=lambda f: f["income"].fillna(1.0) / 1000)
    spec = spec_for(frame)
    assert spec.task == "regression" and spec.classes is None
    assert "non-integer" in spec.inferred["task"]
    batch = frame.astype({"churned": object})
    batch.loc[1, "churned"] = np.inf
    batch.loc[2, "churned"] = np.nan
    batch.loc[3, "churned"] = "x"
    valid, records, _ = validate_rows(batch, spec, source="b.csv", max_bad_fraction=0.05)
    assert valid["churned"].dtype == np.float64 and len(valid) == 97
    assert sorted(records["check"]) == sorted(
        ["finite (no ±inf)", "not_nullable", "coerce_dtype('float64')"]
    )


def test_many_distinct_integers_are_a_regression_target():
    frame = demo_batch(1, rows=200).assign(churned=lambda f: np.arange(len(f)) % 80)
    assert spec_for(frame).task == "regression"
    assert "80 distinct integers" in spec_for(frame).inferred["task"]


def test_too_many_bad_rows_stop_with_the_whole_batch_quarantined():
    contract = spec_for(demo_batch(1, rows=200))
    batch = demo_batch(2, rows=100).astype({"income": object})
    batch.loc[10:19, "income"] = "n/a2"
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
        (lambda f: f.assign(churned="maybe"), "no value parses as a int label"),
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


def _faulty(rows: int, seed: int, labels: str) -> pd.DataFrame:
    """A batch with every fault the schema knows, at random rows: ±inf, missing values (declared
    non-null and not), values past declared bounds, unknown and missing labels, bad times."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 10**6, rows), "s"),
            "x": rng.normal(0, 1, rows),
            "must": rng.normal(5, 3, rows),
            "bounded": rng.uniform(-1, 11, rows),
            "region": rng.choice(["north", "south", "east"], rows),
            "kind": rng.choice(["a", "b"], rows),
        }
    )
    frame["y"] = {
        "int": rng.integers(0, 7, rows).astype(float),
        "str": rng.choice(["cat", "dog", "emu"], rows),
        "bool": rng.random(rows) < 0.5,
        "number": rng.normal(100, 10, rows),
    }[labels]
    frame = frame.astype({"y": object})
    for column, fault in [
        ("x", np.inf),
        ("x", -np.inf),
        ("x", np.nan),
        ("must", np.nan),
        ("bounded", 12.5),
        ("y", None),
        ("y", {"int": 9.0, "str": "gnu", "bool": "maybe", "number": np.inf}[labels]),
        ("region", None),
        ("kind", None),
        ("at", pd.NaT),
    ]:
        hit = rng.random(rows) < 0.02
        frame.loc[hit, column] = fault
    return frame


@pytest.mark.parametrize("labels", ["int", "str", "bool", "number"])
@pytest.mark.parametrize("closed", [False, True])
def test_the_screen_finds_every_row_the_pandera_schema_refuses(labels, closed):
    """validate_rows skips the Pandera schema when `suspect_rows` finds nothing, so the screen
    must flag every row the schema fails (a superset), on every kind of target and fault."""
    import pandera.pandas as pa

    from tasks.validate.rows import _coerce, build_schema, suspect_rows

    for seed in range(6):
        frame = _faulty(400, seed, labels)
        config = DatasetConfig(
            target="y",
            time_column="at",
            numeric=["x", "must", "bounded"],
            categorical=["region", "kind"],
            non_null=["must", "region"],
            bounds={"bounded": (0, 10)},
            task="regression" if labels == "number" else None,
            classes=(
                {"int": [0, 1, 2, 3, 4, 5, 6], "str": ["cat", "dog"], "bool": [False, True]}[labels]
                if closed and labels != "number"
                else None
            ),
        )
        spec = infer_spec(frame.dropna(), config)
        coerced, _ = _coerce(frame, spec)
        try:
            build_schema(spec).validate(coerced, lazy=True)
            refused: set[int] = set()
        except pa.errors.SchemaErrors as exc:
            refused = {int(i) for i in exc.failure_cases["index"].dropna()}
        screened = set(suspect_rows(coerced, spec).tolist())
        assert refused, "the generated faults must break the schema"
        assert refused <= screened, sorted(refused - screened)[:5]
        assert screened == refused  # and no wider: a clean row is not sent to the schema
        ok = frame.drop(index=sorted(screened))
        assert not len(suspect_rows(_coerce(ok, spec)[0], spec))
        build_schema(spec).validate(_coerce(ok, spec)[0], lazy=True)  # passes: nothing missed
        assert len(ok) > 100
