"""The bad-input catalogue, each case through `python flows/ct.py run --data FILE` (issues 7, 12).

Every case has a documented outcome (README, "Bad input"): the exit code, the message, what the
quarantine holds; and none changes the champion or the registry. Only data that cannot be right is
quarantined (issue 12): what the champion never saw (a wider range, a new category, a missing value
in a feature nobody declared non-null) is kept.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from flows.cli.main import main
from tasks.demo import demo_batch


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A champion trained on batch 1; a config that retrains only on drift, within allowed roots."""
    root = tmp_path_factory.mktemp("catalogue")
    landing = root / "landing"
    landing.mkdir()
    first = landing / "first.csv"
    demo_batch(1, rows=600).to_csv(first, index=False)
    config = root / "ct.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(root / "state"),
                "retrain": {"policy": "on_drift"},
                # the per-batch gate: a kept batch changes the registry only when a candidate
                # wins (under the default, auto, every learning step registers two candidates)
                "gate": {"mode": "batch"},
                "validation": {"allowed_roots": [str(landing)], "max_bytes": 1_000_000},
                "dataset": {
                    "classes": [0, 1],  # declared: a closed set
                    "bounds": {"age": [0, 120]},
                    "non_null": ["age"],
                },
            }
        )
    )
    assert main(["run", "--data", str(first), "--config", str(config)]) == 0
    return root, landing, config


def good() -> pd.DataFrame:
    return demo_batch(2, rows=600)


def csv_bytes(frame: pd.DataFrame, **kwargs: object) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue().encode()


def with_value(column: str, value: object, rows: int = 1) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        frame = good().astype({column: object})
        frame.loc[: rows - 1, column] = value
        path = folder / f"{column}.csv"
        path.write_bytes(csv_bytes(frame))
        return path

    return make


def raw(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return make


def parquet_other_schema(folder: Path) -> Path:
    path = folder / "other.parquet"
    good().rename(columns={"age": "customer_age", "income": "salary"}).to_parquet(path)
    return path


def big_file(folder: Path) -> Path:
    path = folder / "big.csv"
    path.write_bytes(csv_bytes(pd.concat([good()] * 30)))
    return path


def new_category(folder: Path) -> Path:
    frame = good()
    frame.loc[:2, "region"] = "atlantis"
    path = folder / "new-category.csv"
    path.write_bytes(csv_bytes(frame))
    return path


def ragged(folder: Path) -> Path:
    lines = csv_bytes(good()).decode().splitlines()
    lines[3] += ",surplus,fields"
    path = folder / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


CASES = [
    # name, make, exit code, message (stderr or stdout), quarantine checks
    (
        "missing column",
        lambda d: raw("missing.csv", csv_bytes(good().drop(columns="age")))(d),
        1,
        "column='age' rule='column_in_dataframe'",
        "column_in_dataframe",
    ),
    (
        "extra column",
        lambda d: raw("extra.csv", csv_bytes(good().assign(note="x")))(d),
        0,
        "",
        None,
    ),
    (
        "abc in a numeric column",
        with_value("income", "abc"),
        0,
        "1 rows quarantined",
        "coerce_dtype('float64')",
    ),
    (
        "NaN in a declared non-null feature",
        with_value("age", np.nan),
        0,
        "1 rows quarantined",
        "not_nullable",
    ),
    ("NaN in another feature", with_value("tenure_months", np.nan, rows=60), 0, "", None),
    (
        "outside the declared bounds",
        with_value("age", 130),
        0,
        "1 rows quarantined",
        "declared bounds [0, 120]",
    ),
    ("far outside the training range", with_value("usage_hours", 10_000.0, rows=60), 0, "", None),
    (
        "an unknown class of the declared set",
        with_value("churned", 2),
        0,
        "1 rows quarantined",
        "isin([0, 1])",
    ),
    ("+inf", with_value("usage_hours", np.inf), 0, "1 rows quarantined", "finite (no ±inf)"),
    ("-inf", with_value("usage_hours", -np.inf), 0, "1 rows quarantined", "finite (no ±inf)"),
    ("NaN in the target", with_value("churned", np.nan), 0, "1 rows quarantined", "not_nullable"),
    (
        "too many bad rows",
        with_value("income", "abc", rows=60),
        1,
        "10.0% of rows failed validation (limit 5%)",
        "batch_rejected",
    ),
    ("empty file", raw("empty.csv", b""), 1, "file is empty (0 bytes)", None),
    (
        "header only",
        raw("header.csv", b"event_time,age,churned\n"),
        1,
        "has a header but no rows",
        None,
    ),
    (
        "duplicated column names",
        raw("dup.csv", b"age,age,churned\n1,2,0\n"),
        1,
        "duplicated column names: 'age' (columns 1 and 2)",
        None,
    ),
    (
        "bytes that are not UTF-8",
        raw("latin.csv", csv_bytes(good()).replace(b"north", "nörth".encode("latin-1"))),
        1,
        "is not valid utf-8",
        None,
    ),
    ("ragged CSV rows", ragged, 0, "1 rows quarantined", "csv_fields"),
    (
        "semicolon delimiter (detected)",
        lambda d: raw("semi.csv", csv_bytes(good(), sep=";"))(d),
        0,
        "",
        None,
    ),
    (
        "Parquet with another schema",
        parquet_other_schema,
        1,
        "column='age' rule='column_in_dataframe'",
        "column_in_dataframe",
    ),
    ("file does not exist", lambda d: d / "nope.csv", 1, "file not found", None),
    ("a directory", lambda d: d, 1, "is a directory", None),
    ("over the size limit", big_file, 1, "over the limit of 1,000,000 bytes", None),
    ("category never seen in training", new_category, 0, "", None),
]


@pytest.mark.parametrize(
    ("name", "make", "code", "message", "quarantine"), CASES, ids=[c[0] for c in CASES]
)
def test_catalogue(setup, capsys, registry_snapshot, name, make, code, message, quarantine):
    root, landing, config = setup
    before = registry_snapshot(root)
    folder = landing / name.replace(" ", "-")
    folder.mkdir()
    path = make(folder)
    assert main(["run", "--data", str(path), "--config", str(config)]) == code, name
    captured = capsys.readouterr()
    if code:
        line = captured.err.strip()
        assert len(line.splitlines()) == 1 and line.startswith(f"error: {path}"), line
        assert message in line, line
    else:
        assert message in captured.out, captured.out
    assert registry_snapshot(root) == before, f"{name} changed the registry"
    if quarantine is None:
        assert "quarantined" not in captured.out, captured.out
        return
    kept = list((root / "state" / "quarantine").rglob("*.parquet"))
    matching = [
        p for p in kept if pd.read_parquet(p)["check"].str.contains(quarantine, regex=False).any()
    ]
    assert matching, f"{name}: nothing quarantined"
    records = pd.read_parquet(max(matching, key=lambda p: p.stat().st_mtime))
    assert set(records.columns) == {"row", "column", "check", "value", "raw"}


def test_a_path_outside_the_allowed_roots_is_refused(setup, capsys, tmp_path, registry_snapshot):
    root, _, config = setup
    before = registry_snapshot(root)
    outside = tmp_path / "outside.csv"
    outside.write_bytes(csv_bytes(good()))
    assert main(["run", "--data", str(outside), "--config", str(config)]) == 1
    assert "outside the allowed roots" in capsys.readouterr().err
    assert registry_snapshot(root) == before
