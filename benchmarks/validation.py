"""Validation speed: the contract check of 1M x 20 rows beside reading the same rows, same run.

The frame: 16 numeric and 4 categorical features, a time column and a 0/1 target, a few % missing.
It is written once as CSV and as Parquet; then, median of 3: `pd.read_csv`, `pd.read_parquet`, and
`validate_rows` (coercion, the Pandera contract with finiteness, ranges, nullability and classes,
the quarantine bookkeeping) on the frame read from CSV. The target (validation <= 2x the read) is
judged against the CSV read, the format batches usually arrive in; the Parquet ratio is shown too.
Usage: `.venv/bin/python benchmarks/validation.py [--rows N]`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from timing import median_seconds

from tasks.config import DatasetConfig
from tasks.validate import infer_spec
from tasks.validate.rows import validate_rows


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {
        "event_time": pd.Timestamp("2026-01-01")
        + pd.to_timedelta(np.sort(rng.uniform(0, 86_400, rows)), unit="s")
    }
    for i in range(16):
        values = rng.lognormal(0, 1, rows) if i % 2 else rng.normal(0, 1, rows)
        if i % 4 == 1:
            values[rng.random(rows) < 0.03] = np.nan
        data[f"x{i:02d}"] = values
    for i in range(4):
        data[f"c{i}"] = rng.choice([f"v{k}" for k in range(8)], rows)
    data["churned"] = rng.integers(0, 2, rows)
    return pd.DataFrame(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    frame = make_frame(args.rows)
    spec = infer_spec(frame, DatasetConfig(target="churned", time_column="event_time"))
    contract = spec  # the contract is the spec: nothing learned from training is a rule
    with tempfile.TemporaryDirectory(prefix="ct-validation-bench-") as tmp:
        csv, parquet = Path(tmp) / "batch.csv", Path(tmp) / "batch.parquet"
        frame.to_csv(csv, index=False)
        frame.to_parquet(parquet, index=False)
        read_csv = median_seconds(lambda: pd.read_csv(csv), 3)
        read_parquet = median_seconds(lambda: pd.read_parquet(parquet), 3)
        loaded = pd.read_csv(csv)
        outcome = validate_rows(loaded, contract, source=str(csv), max_bad_fraction=0.05)[2]
        validate = median_seconds(
            lambda: validate_rows(loaded, contract, source=str(csv), max_bad_fraction=0.05), 3
        )
    print(
        f"{args.rows:,} rows x 20 features; {outcome.rows_quarantined} rows quarantined by the contract.\n"
    )
    print(f"| {'step':32} | {'seconds':>8} | {'validate / step':>15} |")
    print(f"|{'-' * 34}|{'-' * 10}|{'-' * 17}|")
    print(f"| {'read CSV (pd.read_csv)':32} | {read_csv:8.2f} | {validate / read_csv:14.2f}x |")
    print(f"| {'read Parquet':32} | {read_parquet:8.2f} | {validate / read_parquet:14.2f}x |")
    print(f"| {'validate (contract + quarantine)':32} | {validate:8.2f} | {'':>15} |")
    verdict = "met" if validate <= 2 * read_csv else "NOT met"
    print(f"\nTarget: validation <= 2x the CSV read: {verdict} ({validate / read_csv:.2f}x).")


if __name__ == "__main__":
    main()
