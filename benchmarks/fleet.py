"""Fleet: many models' CT steps on a 2-worker Dask LocalCluster vs one after another in one process.

Issue 16's claim: 100 models × 20k rows, the fleet (`flows/fleet.py`, prefect-dask's DaskTaskRunner
on a local cluster of 2 worker processes) at least 1.6× faster than the same CT steps run one after
another in this process, on 2 cores. Both runs use the same files, the same default configuration
(quality suite included) and the same Prefect server (started here on 127.0.0.1 and stopped by PID),
each with a fresh state folder; the baseline runs first. Also printed: the local cluster's start-up
(measured alone in the same run) and the per-model overhead of the fleet: its wall time beyond what
its tasks' own seconds, spread over the workers, explain; and the ceiling the baseline's CPU use
sets on any schedule of the same work on this machine's cores.

The server's database is PostgreSQL where the machine has it (a throwaway cluster on 127.0.0.1,
`tests.support.devstack.LocalPostgres`), as a server that many workers write to should be; on SQLite
(`--database sqlite`) their writes take turns.

Usage: `.venv/bin/python benchmarks/fleet.py [--models 100] [--rows 20000] [--workers 2]
[--database postgres|sqlite]`
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def cpu_seconds(server_pid: int) -> float:
    """CPU seconds used so far by this process, its children (the quality suite's process, the
    server's workers) and the Prefect server, which every step reports to."""
    import psutil  # distributed's dependency

    processes = {psutil.Process(), psutil.Process(server_pid)}
    for parent in list(processes):
        processes.update(parent.children(recursive=True))
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--database",
        choices=["postgres", "sqlite"],
        help="the Prefect server's database (default: postgres where this machine has it; on "
        "SQLite the workers' writes take turns, a long wait is a 503 retried 2 s later)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/support: the dev stack
    from tests.support.devstack import LocalPostgres

    database = args.database or ("postgres" if LocalPostgres.binaries() else "sqlite")

    from distributed import LocalCluster
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.ct import continuous_training
    from flows.fleet import fleet, local_cluster
    from flows.heartbeats import without_heartbeats
    from tasks.config import CTConfig
    from tasks.streams import stream_batches
    from tests.support.devstack import LocalStack

    with tempfile.TemporaryDirectory(prefix="ct-fleet-bench-") as tmp:
        root = Path(tmp)
        landing = root / "landing"
        names = [f"store-{i:03d}" for i in range(args.models)]
        for i, name in enumerate(names):
            (landing / name).mkdir(parents=True)
            frame = next(iter(stream_batches("demo", batches=1, rows=args.rows, seed=i)))
            frame.to_parquet(landing / name / "batch-01.parquet", index=False)
        print(f"{args.models} models × {args.rows:,} rows written to {landing}", flush=True)

        def config(state: str) -> CTConfig:
            return CTConfig.model_validate(
                {
                    "state_dir": str(root / state),
                    "fleet": {"landing": str(landing), "workers": args.workers},
                }
            )

        with (
            LocalPostgres() if database == "postgres" else contextlib.nullcontext() as postgres,
            LocalStack(
                root / "stack",
                deploy=False,
                server_settings={"PREFECT_API_DATABASE_CONNECTION_URL": postgres.url}
                if postgres
                else None,
            ) as stack,
            temporary_settings({PREFECT_API_URL: stack.api}),
        ):
            started = time.perf_counter()
            with LocalCluster(**local_cluster(args.workers)):
                cluster_start = time.perf_counter() - started

            sequential_config = config("sequential")
            step_seconds = []
            busy = cpu_seconds(stack.procs[0].pid)
            started = time.perf_counter()
            for i, name in enumerate(names, 1):
                began = time.perf_counter()
                with without_heartbeats():  # as `python flows/ct.py run` and the fleet's steps
                    continuous_training(
                        str(landing / name / "batch-01.parquet"),
                        sequential_config.for_dataset(name),
                        plots=False,
                    )
                step_seconds.append(time.perf_counter() - began)
                if i % 10 == 0:
                    print(f"  sequential: {i}/{len(names)} steps", flush=True)
            sequential = time.perf_counter() - started
            busy = cpu_seconds(stack.procs[0].pid) - busy

            print("  fleet: running", flush=True)
            started = time.perf_counter()
            outcomes = fleet(config("fleet"))
            in_fleet = time.perf_counter() - started

    assert len(outcomes) == len(names) and all(o.status == "ok" for o in outcomes), outcomes
    task_seconds = [o.seconds for o in outcomes]
    explained = sum(task_seconds) / args.workers
    overhead = (in_fleet - cluster_start - explained) / len(names)
    print()
    print(f"Prefect server on {'PostgreSQL' if database == 'postgres' else 'SQLite'}.\n")
    print(f"| run ({args.models} models × {args.rows:,} rows) | wall s | s per model | speed-up |")
    print("|---|---|---|---|")
    print(
        f"| one after another, one process (baseline) | {sequential:.1f} | "
        f"{sequential / len(names):.2f} | 1.00 |"
    )
    print(
        f"| ct-fleet, {args.workers}-worker LocalCluster | {in_fleet:.1f} | "
        f"{in_fleet / len(names):.2f} | {sequential / in_fleet:.2f} |"
    )
    print()
    print(f"- local cluster start-up alone: {cluster_start:.1f} s (in the fleet's wall time)")
    print(
        f"- a CT step: median {statistics.median(step_seconds):.2f} s in one process; "
        f"a model's task on a worker: median {statistics.median(task_seconds):.2f} s"
    )
    print(
        f"- fleet overhead per model beyond its task's seconds / {args.workers} workers and the "
        f"cluster start: {overhead:.3f} s"
    )
    # the sequential run kept `busy / sequential` cores working (this process, its quality-suite
    # process and the server); on `cores` cores no schedule of the same work beats this ratio
    cores = os.cpu_count() or 1
    ceiling = cores * sequential / busy
    print(
        f"- the baseline kept {busy / sequential:.2f} of {cores} cores busy ({busy / len(names):.2f} "
        f"CPU s per step, this process and the Prefect server): no schedule of the same work on "
        f"{cores} cores can be more than {ceiling:.2f}× faster than it"
    )
    target = 1.6
    verdict = "met" if sequential / in_fleet >= target else "NOT met"
    print(f"- target ≥ {target}× faster: {verdict} ({sequential / in_fleet:.2f}×)")
    return 0


if __name__ == "__main__":  # a process cluster needs this guard
    sys.exit(main())
