"""What Prefect alone costs per CT step: the step's shape with no work in it (issue 15).

A backtest step is a flow run nested in the backtest's, holding the model's concurrency slot, with
about 15 task runs and a retraining subflow (flows/ct.py). Here every task and flow returns at
once, so the time per step is Prefect's and its server's: the floor under issue 15's target of
0.3 s of overhead per batch, for this machine. Variants take one part away at a time, to price
it; the last row runs the step's shape on a server with the settings ct used before
(task-run recorder batched every 1 s, event persister as Prefect ships it), to price those.

Each row is a fresh process running `--steps` steps against a local server started here (127.0.0.1,
retryable errors logged), one server per settings; 503s are counted from the server's log.

Usage: `.venv/bin/python benchmarks/prefect_floor.py [--steps N]` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.cli.prefect_server import RECORDER_ENV  # noqa: E402
from tests.support.devstack import CountingServer, start_counting_server, stop  # noqa: E402

TASKS = 15
#: (label, tasks per step, retraining as a subflow, the model's slot, server settings)
ROWS: list[tuple[str, int, bool, bool, str]] = [
    ("a CT step's shape (15 tasks, slot, retraining subflow)", TASKS, True, True, "ct"),
    ("  retraining as a task, not a subflow", TASKS, False, True, "ct"),
    ("  without the model's concurrency slot", TASKS, True, False, "ct"),
    ("  one task instead of 15", 1, True, True, "ct"),
    ("  the step alone: one task, no slot, no subflow", 1, False, False, "ct"),
    ("a CT step's shape, on the settings ct used before", TASKS, True, True, "before"),
]
SETTINGS = {
    "ct": RECORDER_ENV,
    "before": {
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "1000",
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    },
}


def child(steps: int, tasks: int, subflow: bool, slot: bool) -> None:
    """The workload, in its own process: `steps` empty CT steps inside one backtest flow run."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.concurrency.sync import concurrency

    from flows.ct import LOCK_LEASE, ensure_model_lock, model_lock_name
    from flows.heartbeats import without_heartbeats

    @task(cache_policy=NO_CACHE)
    def work(i: int) -> int:
        return i

    @flow(name="floor-retrain")
    def retrain_flow(i: int) -> int:
        return work(i)

    @task(name="floor-retrain", cache_policy=NO_CACHE)
    def retrain_task(i: int) -> int:
        return work(i)

    @flow(name="floor-step")
    def step(i: int) -> int:
        held = (
            concurrency(model_lock_name("floor"), occupy=1, strict=True, lease_duration=LOCK_LEASE)
            if slot
            else contextlib.nullcontext()
        )
        with held:
            for j in range(tasks - 1):
                work(j)
            return retrain_flow(i) if subflow else retrain_task(i)

    @flow(name="floor-backtest")
    def backtest() -> float:
        started = time.perf_counter()
        for i in range(steps):
            step(i)
        return (time.perf_counter() - started) / steps

    ensure_model_lock("floor")  # the step's own slot, made as ct makes it
    with without_heartbeats():  # as ct's CLI runs its backtests
        print(f"{backtest():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per row (20)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        steps, tasks, subflow, slot = args.child
        child(int(steps), int(tasks), subflow == "1", slot == "1")
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="ct-prefect-floor-") as tmp:
        servers: dict[str, CountingServer] = {}
        try:
            for name, settings in SETTINGS.items():
                servers[name] = start_counting_server(Path(tmp) / name, settings)
            for label, tasks, subflow, slot, name in ROWS:
                server = servers[name]
                before = server.busy()
                flags = [str(args.steps), str(tasks), str(int(subflow)), str(int(slot))]
                done = subprocess.run(
                    [sys.executable, __file__, "--child", *flags],
                    env=server.env | {"PREFECT_LOGGING_LEVEL": "WARNING"},
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    raise SystemExit(f"{label} failed:\n{done.stderr[-2000:]}")
                per_step = float(done.stdout.split()[-1])
                busy = server.busy() - before
                results.append((label, per_step, busy / args.steps))
                print(f"{label}: {per_step:.3f} s per step, {busy} x 503", file=sys.stderr)
        finally:
            for server in servers.values():
                stop(server.process)
    shape = results[0][1]
    print(
        f"{args.steps} empty steps per row, each row a fresh process; ct's server settings "
        "unless the row says otherwise.\n"
    )
    print(f"| {'Prefect alone, per step':56} | {'seconds':>7} | {'503s':>5} | {'vs shape':>8} |")
    print(f"|{'-' * 58}|{'-' * 9}|{'-' * 7}|{'-' * 10}|")
    for label, per_step, busy in results:
        print(f"| {label:56} | {per_step:7.3f} | {busy:5.2f} | {per_step / shape:8.2f} |")


if __name__ == "__main__":
    main()
