"""Larger than memory: validation + quality counts + drift over a Parquet dataset, in record batches.

Issue 16's claim: on 10M rows × 20 columns of Parquet (about 1.5 GB as a DataFrame), the scan
(`tasks.scan.scan_dataset`: the contract with quarantine parts, the quality suite's counts, the
mergeable drift summary) then the drift report, with peak memory ≤ 1 GB and time ≤ 3× a
`pyarrow.dataset` scan of the same columns (the floor, measured in the same run). Each measurement
runs in a fresh process, so its peak resident memory (ru_maxrss) is its own; the floor is run twice
(before and after) and its faster time is used. The dataset is written in 20 files of hive
folders (`part=k/`), with a few bad rows and drift in half the columns.

Usage: `.venv/bin/python benchmarks/large.py [--rows 10000000] [--columns 20]`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = 20
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # the table, not Dask's INFO lines


def write_dataset(folder: Path, rows: int, columns: int) -> None:
    import numpy as np
    import pandas as pd

    per_file = rows // FILES
    for k in range(FILES):
        rng = np.random.default_rng(k)
        shift = 0.5 if k >= FILES // 2 else 0.0  # the second half drifts
        data = {
            f"x{j}": rng.normal(shift if j % 2 else 0.0, 1.0, per_file) for j in range(columns - 2)
        }
        data["segment"] = rng.choice(np.array(["a", "b", "c", "d"]), per_file)
        data["y"] = (data["x0"] + rng.normal(0, 1, per_file) > 0).astype(float)
        frame = pd.DataFrame(data)
        if k == 3:
            frame.loc[[10, 20, 30], "y"] = np.nan  # missing labels: quarantined
        (folder / f"part={k:02d}").mkdir(parents=True)
        frame.to_parquet(
            folder / f"part={k:02d}" / "data.parquet", index=False, row_group_size=131_072
        )


def reference(columns: int):
    """What the champion learned from: 50k rows of the undrifted distribution."""
    import numpy as np
    import pandas as pd

    from tasks.config import DatasetConfig
    from tasks.drift.profile import build_profile
    from tasks.validate.contract import infer_spec

    rng = np.random.default_rng(99)
    n = 50_000
    data = {f"x{j}": rng.normal(0.0, 1.0, n) for j in range(columns - 2)}
    data["segment"] = rng.choice(np.array(["a", "b", "c", "d"]), n)
    data["y"] = (data["x0"] + rng.normal(0, 1, n) > 0).astype(float)
    frame = pd.DataFrame(data)
    spec = infer_spec(
        frame,
        DatasetConfig(
            name="large",
            target="y",
            categorical=["segment"],
            numeric=[f"x{j}" for j in range(columns - 2)],
        ),
    )
    profile = build_profile(
        frame[[*spec.features, spec.target]],
        categorical=[*spec.categorical, spec.target],
        label="y",
    )
    return spec, profile


def child(mode: str, folder: str, columns: int, out: str) -> None:
    """One measurement, in this (fresh) process."""
    import pyarrow.dataset as ds

    started = time.perf_counter()
    result: dict[str, object] = {}
    workers_peak = 0.0
    if mode in {"floor", "floor-pandas"}:
        names = [f"x{j}" for j in range(columns - 2)] + ["segment", "y"]
        rows = 0
        for batch in ds.dataset(folder, format="parquet", partitioning="hive").to_batches(
            columns=names, batch_size=131_072
        ):
            rows += len(batch.to_pandas()) if mode == "floor-pandas" else batch.num_rows
        result["rows"] = rows
    else:
        from tasks.drift.compare import compare_summary
        from tasks.scan import (
            head,
            quality_from_scan,
            quality_ranges,
            scan_dataset,
            scan_on_dask,
            scan_pieces,
        )
        from tasks.validate.quality import expectation_specs

        spec, profile = reference(columns)
        specs = expectation_specs(profile, tolerance=0.5, min_rows=1, max_rows=10**9)
        options = {
            "spec": spec,
            "profile": profile,
            "ranges": quality_ranges(specs),
            "quarantine_dir": str(Path(out).with_suffix(".quarantine")),
        }
        if mode == "dask":  # a 2-process local cluster, started before the clock
            from distributed import Client, LocalCluster

            from flows.fleet import local_cluster

            cluster = LocalCluster(**local_cluster(2))
            client = Client(cluster)
            client.run(lambda: __import__("tasks.scan"))  # the workers' imports, not timed
            began = time.perf_counter()
            scan = scan_on_dask(folder, client=client, **options)
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            workers_peak = float(sum(peaks.values()))
        else:  # the imports and JIT compilations a first piece pays, not timed (as on Dask)
            scan_pieces([head(folder, 5000)], source=folder, **(options | {"quarantine_dir": None}))
            began = time.perf_counter()
            scan = scan_dataset(folder, **options)
        quality = quality_from_scan(specs, scan)
        assert scan.summary is not None
        report = compare_summary(profile, scan.summary, scan.summary.sample.iloc[:0])
        started = began  # the reference is the champion's: built before the step, not timed
        result |= {
            "rows": scan.rows_in,
            "quarantined": scan.rows_in - scan.rows_valid,
            "parts": len(scan.quarantine_parts),
            "drifted": report.drifted_columns,
            "quality_failed": quality.failed,
        }
    result["seconds"] = time.perf_counter() - started
    # a cluster's peak: this process's and every worker's, added (they are all resident at once)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + (
        workers_peak if mode == "dask" else 0.0
    )
    Path(out).write_text(json.dumps(result))


def measure(mode: str, folder: Path, columns: int) -> dict[str, object]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--folder",
            str(folder),
            "--columns",
            str(columns),
            "--out",
            out,
        ],
        check=True,
    )
    return dict(json.loads(Path(out).read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument(
        "--child", choices=["floor", "floor-pandas", "scan", "dask"], help=argparse.SUPPRESS
    )
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder, args.columns, args.out)
        return 0

    with tempfile.TemporaryDirectory(prefix="ct-large-") as tmp:
        folder = Path(tmp) / "data"
        began = time.perf_counter()
        write_dataset(folder, args.rows, args.columns)
        size = sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 1e6
        in_memory = args.rows * ((args.columns - 1) * 8 + 1) / 1e9
        print(
            f"{args.rows:,} rows × {args.columns} columns: {size:,.0f} MB of Parquet in {FILES} files "
            f"(about {in_memory:.1f} GB as a DataFrame), written in {time.perf_counter() - began:.0f} s",
            flush=True,
        )
        floor_a = measure("floor", folder, args.columns)
        pandas_a = measure("floor-pandas", folder, args.columns)
        scan = measure("scan", folder, args.columns)
        on_dask = measure("dask", folder, args.columns)
        floor_b = measure("floor", folder, args.columns)
        pandas_b = measure("floor-pandas", folder, args.columns)
    floor = min(floor_a, floor_b, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
    to_pandas = min(pandas_a, pandas_b, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
    ratio = float(scan["seconds"]) / float(floor["seconds"])  # type: ignore[arg-type]
    print()
    print("| run | seconds | peak memory MB | × floor time |")
    print("|---|---|---|---|")
    print(
        f"| pyarrow.dataset scan of the same columns (floor) | {floor['seconds']:.1f} | {floor['peak_mb']:.0f} | 1.00 |"
    )
    print(
        f"| the same scan, each batch made a pandas DataFrame | {to_pandas['seconds']:.1f} | "
        f"{to_pandas['peak_mb']:.0f} | {float(to_pandas['seconds']) / float(floor['seconds']):.2f} |"  # type: ignore[arg-type]
    )
    print(
        f"| ct scan: contract + quality counts + drift | {scan['seconds']:.1f} | {scan['peak_mb']:.0f} | {ratio:.2f} |"
    )
    dask_ratio = float(on_dask["seconds"]) / float(floor["seconds"])  # type: ignore[arg-type]
    print(
        f"| the same on a 2-process Dask LocalCluster (scan_on_dask) | {on_dask['seconds']:.1f} | "
        f"{on_dask['peak_mb']:.0f} | {dask_ratio:.2f} |"
    )
    print()
    print(
        f"- rows {scan['rows']:,}; quarantined {scan['quarantined']} (in {scan['parts']} Parquet parts); "
        f"drifted columns {len(scan['drifted'])}: {', '.join(scan['drifted'][:6])}{' ...' if len(scan['drifted']) > 6 else ''}; "  # type: ignore[arg-type]
        f"quality expectations failed: {scan['quality_failed']}"
    )
    memory_ok = float(scan["peak_mb"]) <= 1024  # type: ignore[arg-type]
    print(f"- peak memory ≤ 1 GB: {'met' if memory_ok else 'NOT met'} ({scan['peak_mb']:.0f} MB)")
    print(f"- time ≤ 3× the floor: {'met' if ratio <= 3 else 'NOT met'} ({ratio:.2f}×)")
    print(
        f"- on 2 Dask processes: {dask_ratio:.2f}× the floor, {on_dask['peak_mb']:.0f} MB over all "
        f"processes (the cluster's start and the workers' imports not timed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
