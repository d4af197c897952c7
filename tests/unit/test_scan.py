"""Data larger than memory (issue 16, item 4): a Parquet dataset scanned in record batches, or as
Dask partitions merged in a tree, gives what the in-memory path gives: the same contract outcome,
the same drift summary (counts exact, sums to rounding, the same sample rows), the same drift
report, and the same quality verdicts as the great-expectations suite; bad rows are kept as
Parquet parts with their dataset row numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks import gx_suite
from tasks.config import DatasetConfig
from tasks.drift.compare import compare_summary, compute_drift, summary_options
from tasks.drift.profile import build_profile
from tasks.drift.summary import bottom_k, row_keys, summarize
from tasks.errors import DataLoadError, DataValidationError
from tasks.scan import (
    KEEP_SEED_OFFSET,
    ROW,
    check_bad_fraction,
    prefetched,
    quality_from_scan,
    quality_ranges,
    scan_dataset,
    scan_on_dask,
    training_sample,
)
from tasks.validate.contract import infer_spec
from tasks.validate.quality import expectation_specs
from tasks.validate.rows import validate_rows


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(shift, 1.0, rows)
    x2 = rng.gamma(2.0, 1.0 + shift, rows)
    region = rng.choice(["north", "south", "east", "west"], rows, p=[0.4, 0.3, 0.2, 0.1])
    y = (x1 + rng.normal(0, 1, rows) > 0).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "region": region, "y": y})


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A reference (what the champion learned from), and a drifted dataset of 4 files in hive
    folders (`month=...`, not a feature) with bad rows: an infinite value and missing labels."""
    root = tmp_path_factory.mktemp("scan")
    reference = frame(3000, seed=1)
    spec = infer_spec(reference, DatasetConfig(name="m", target="y"))
    profile = build_profile(
        reference[[*spec.features, spec.target]],
        categorical=[*spec.categorical, spec.target],
        label=spec.target,
        sample_rows=500,
    )
    parts = []
    for month in range(4):
        part = frame(2500, seed=10 + month, shift=0.3 * month)
        part["y"] = part["y"].astype(float)
        if month == 1:
            part.loc[[5, 17], "x1"] = np.inf
            part.loc[[40, 41, 42], "y"] = np.nan
        if month == 3:
            part.loc[[0], "x2"] = -np.inf
        folder = root / "data" / f"month={month + 1}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / "part-0.parquet", index=False)
        parts.append(part)
    whole = pd.concat(parts, ignore_index=True)
    return root, spec, profile, whole


def in_memory(spec, profile, whole):
    valid, records, outcome = validate_rows(whole, spec, source="whole", max_bad_fraction=1.0)
    columns = [c for c in profile.kinds if c in valid.columns]
    return valid, records, outcome, summarize(valid[columns], **summary_options(profile))


def assert_same_summary(a, b):
    assert a.rows == b.rows and set(a.columns) == set(b.columns)
    for column, x in a.columns.items():
        y = b.columns[column]
        assert (x.kind, x.rows, x.missing, x.infinite, x.counts) == (
            y.kind,
            y.rows,
            y.missing,
            y.infinite,
            y.counts,
        ), column
        assert (x.minimum, x.maximum, x.below_range, x.above_range) == (
            y.minimum,
            y.maximum,
            y.below_range,
            y.above_range,
        )
        assert x.total == pytest.approx(y.total, rel=1e-12, abs=1e-9)
        assert x.m2 == pytest.approx(y.m2, rel=1e-9)
    pd.testing.assert_frame_equal(a.sample, b.sample)


@pytest.mark.parametrize("batch_rows", [997, 100_000])
def test_record_batches_give_the_in_memory_outcome_summary_and_report(setting, batch_rows):
    root, spec, profile, whole = setting
    valid, records, outcome, expected = in_memory(spec, profile, whole)
    ranges = quality_ranges(expectation_specs(profile, tolerance=0.5, min_rows=1, max_rows=10**9))
    quarantine = root / f"quarantine-{batch_rows}"
    scan = scan_dataset(
        str(root / "data"),
        spec=spec,
        profile=profile,
        ranges=ranges,
        quarantine_dir=str(quarantine),
        batch_rows=batch_rows,
    )
    assert (
        (scan.rows_in, scan.rows_valid) == (outcome.rows_in, outcome.rows_valid) == (10_000, 9994)
    )
    assert scan.failures == outcome.failures
    assert_same_summary(scan.summary, expected)
    # the drift report is the in-memory one
    report = compare_summary(profile, scan.summary, whole.iloc[:0])
    direct = compute_drift(profile, valid[[c for c in profile.kinds]])
    assert report.model_dump() == direct.model_dump()
    assert report.drifted and "x1" in report.drifted_columns
    # bad rows are kept, in parts, with their row numbers in the dataset
    kept = pd.concat([pd.read_parquet(p) for p in scan.quarantine_parts], ignore_index=True)
    assert len(scan.quarantine_parts) >= 2 and all(
        Path(p).parent == quarantine for p in scan.quarantine_parts
    )
    assert sorted(kept["row"]) == sorted(records["row"]) == [2505, 2517, 2540, 2541, 2542, 7500]


def test_dask_partitions_merged_in_a_tree_give_the_same_scan(setting, tmp_path):
    root, spec, profile, whole = setting
    _, _, outcome, expected = in_memory(spec, profile, whole)
    scan = scan_on_dask(
        str(root / "data"), spec=spec, profile=profile, ranges={}, quarantine_dir=str(tmp_path)
    )
    assert (scan.rows_in, scan.rows_valid, scan.failures) == (
        outcome.rows_in,
        outcome.rows_valid,
        outcome.failures,
    )
    assert scan.summary.columns == expected.columns or all(
        scan.summary.columns[c].counts == expected.columns[c].counts for c in expected.columns
    )
    assert len(scan.quarantine_parts) == 2
    # on a dataset with no bad rows, the whole summary is the in-memory one, sample included
    clean = tmp_path / "clean"
    for month in range(4):
        part = whole.iloc[month * 2500 : (month + 1) * 2500]
        part = part[np.isfinite(part[["x1", "x2", "y"]]).all(axis=1)]
        (clean / f"month={month + 1}").mkdir(parents=True)
        part.to_parquet(clean / f"month={month + 1}" / "part-0.parquet", index=False)
    _, _, _, clean_expected = in_memory(spec, profile, pd.read_parquet(clean).drop(columns="month"))
    on_dask = scan_on_dask(str(clean), spec=spec, profile=profile, ranges={}, quarantine_dir=None)
    assert_same_summary(on_dask.summary, clean_expected)


def test_quality_from_counts_judges_as_the_great_expectations_suite(setting):
    root, spec, profile, whole = setting
    valid, _, _, _ = in_memory(spec, profile, whole)
    # tight ranges and a high null floor, so that some expectations fail and some pass
    specs = expectation_specs(profile, tolerance=0.02, min_rows=1, max_rows=20_000)
    scan = scan_dataset(
        str(root / "data"),
        spec=spec,
        profile=profile,
        ranges=quality_ranges(specs),
        quarantine_dir=None,
        batch_rows=3000,
    )
    observed = valid[[*spec.features, spec.target]]
    categorical = [c for c, kind in profile.kinds.items() if kind == "categorical"]
    by_gx = gx_suite.run_suite(observed, specs, categorical)
    by_counts = quality_from_scan(specs, scan)
    verdicts = [(r.expectation, r.column, r.success) for r in by_counts.results]
    assert verdicts == [(r.expectation, r.column, r.success) for r in by_gx.results]
    assert 0 < by_counts.failed < by_counts.evaluated
    for a, b in zip(by_counts.results, by_gx.results, strict=True):
        if b.unexpected_percent is not None and a.unexpected_percent is not None:
            assert a.unexpected_percent == pytest.approx(b.unexpected_percent, abs=1e-9)


def test_too_many_bad_rows_refuse_the_dataset_and_name_the_rule(setting, tmp_path):
    root, spec, profile, _ = setting
    scan = scan_dataset(
        str(root / "data"), spec=spec, profile=profile, ranges={}, quarantine_dir=str(tmp_path)
    )
    check_bad_fraction(scan, "data", 0.01)  # 6 of 10,000: fine
    with pytest.raises(
        DataValidationError, match=r"6 of 10000 rows .* over validation.max_bad_fraction"
    ):
        check_bad_fraction(scan, "data", 0.0001)
    with pytest.raises(DataLoadError, match="no such dataset folder"):
        scan_dataset(
            str(tmp_path / "nowhere"), spec=spec, profile=profile, ranges={}, quarantine_dir=None
        )


def test_the_training_sample_is_the_in_memory_bottom_k_of_the_valid_rows(setting):
    """Gathered in linear time over record batches, the kept rows are exactly those a seeded
    bottom-k over the whole table's valid rows keeps, whatever the batch size."""
    root, spec, profile, whole = setting
    valid, _, _, _ = in_memory(spec, profile, whole)
    keys = row_keys(0, len(valid), profile.seed + KEEP_SEED_OFFSET)
    expected = bottom_k(valid.assign(**{ROW: np.arange(len(valid))}), keys, 1500)
    for batch_rows in (997, 100_000):
        scan = scan_dataset(
            str(root / "data"),
            spec=spec,
            profile=profile,
            ranges={},
            quarantine_dir=None,
            batch_rows=batch_rows,
            keep_rows=1500,
        )
        pd.testing.assert_frame_equal(scan.keep, expected)
        # in dataset order, without the keys: a frame like a batch's valid rows
        assert list(training_sample(scan)["x1"]) == list(expected.sort_values(ROW)["x1"])


def test_prefetching_keeps_order_raises_the_readers_error_and_stops_when_left():
    """The scan reads the next record batch on a thread: the order is the reader's, a reading
    error surfaces in the scan, and a scan that stops early leaves no thread behind."""
    import threading

    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def broken():
        yield 1
        raise DataLoadError("d.parquet", "truncated file")

    seen = []
    with pytest.raises(DataLoadError, match="truncated file"):
        for item in prefetched(broken()):
            seen.append(item)
    assert seen == [1]

    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    stream = prefetched(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()  # what leaving a for loop does
    assert not [t for t in threading.enumerate() if t.name == "ct-scan-read"]
    assert len(produced) <= 3 + 2 + 1  # it never ran more than `depth` ahead
