"""What Prefect costs in `python flows/ct.py`: cold and warm, ephemeral and against a local server.

Runs the default demo backtest three ways, each in a fresh process, in the same run:

* ephemeral, cold: a new PREFECT_HOME, so the temporary server also creates its database;
* ephemeral, warm: the same PREFECT_HOME again;
* local server: a `prefect server start` this script launches on 127.0.0.1 (its start-up is shown
  on its own line, since a user pays it once, not per command).

CT work is what Prefect itself records as the run time of every task run of the local-server run
(the same work happens in every mode); the rest of each wall time is Prefect start-up and
orchestration. Usage: `.venv/bin/python benchmarks/startup.py` (about 2 minutes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from flows.prefect_server import RECORDER_ENV
from webhooks.devstack import free_port, stop, wait_for

ROOT = Path(__file__).resolve().parents[1]


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    return env


def run_demo(env: dict[str, str], out: Path, prefect: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "flows/ct.py", "demo", "--out", str(out), "--prefect", prefect],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def task_run_seconds(url: str, env: dict[str, str]) -> tuple[float, int, int]:
    """Sum of task-run times, number of task runs and flow runs, as the server recorded them.

    Task runs that only track a subflow are left out (their time is the subflow's). Task runs are
    recorded from events, a moment after the flow ends: poll until the count is stable.
    """
    code = """
import time
from prefect.client.orchestration import get_client
def page(read):
    out, offset = [], 0
    while batch := read(limit=200, offset=offset):
        out += batch
        offset += len(batch)
    return out
with get_client(sync_client=True) as c:
    seen = -1
    while True:
        tasks, flows = page(c.read_task_runs), page(c.read_flow_runs)
        if len(tasks) == seen:
            break
        seen = len(tasks)
        time.sleep(3)
    trackers = {f.parent_task_run_id for f in flows}
    real = [t for t in tasks if t.id not in trackers]
    print(sum(t.total_run_time.total_seconds() for t in real), len(real), len(flows))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PREFECT_API_URL": url},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def main() -> None:
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="ct-startup-") as tmp:
        work = Path(tmp)
        home = work / "ephemeral-home"
        env = base_env(home)
        rows.append(("ephemeral, cold (new database)", run_demo(env, work / "o1", "ephemeral")))
        rows.append(("ephemeral, warm", run_demo(env, work / "o2", "ephemeral")))

        for label, tuned in (
            ("local server, Prefect defaults", False),
            ("local server, `make server`", True),
        ):
            wall, server_start, counted = run_with_server(work, tuned)
            rows.append((label, wall))
        rows.append(("  (starting a server, paid once)", server_start))
    assert counted is not None  # the `make server` run, last, counts the task runs
    work_s, n_tasks, n_flows = counted
    local = rows[-2][1]
    print(f"Demo backtest: 12 batches, {n_flows} flow runs, {n_tasks} task runs.")
    print(f"CT work (sum of task-run times recorded by Prefect): {work_s:.1f} s\n")
    print(f"| {'mode':36} | {'wall s':>7} | {'Prefect overhead s':>18} | {'vs make server':>14} |")
    print(f"|{'-' * 38}|{'-' * 9}|{'-' * 20}|{'-' * 16}|")
    for name, wall in rows:
        if name.startswith("  "):
            print(f"| {name:36} | {wall:7.1f} | {'':>18} | {'':>14} |")
            continue
        print(f"| {name:36} | {wall:7.1f} | {wall - work_s:18.1f} | {wall / local:13.2f}x |")


def run_with_server(work: Path, tuned: bool) -> tuple[float, float, tuple[float, int, int] | None]:
    """Start a server (Prefect's defaults, or ct's batched task-run recorder), run the demo on it;
    on the tuned one also sum the task-run times it recorded (the CT work, the same in every mode)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    server_env = base_env(work / f"server-home-{tuned}")
    if tuned:
        server_env.update(RECORDER_ENV)
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200, 120, url, 0.2)
        server_start = time.perf_counter() - started
        wall = run_demo(server_env, work / f"o-{tuned}", url)
        counted = task_run_seconds(url, server_env) if tuned else None
    finally:
        stop(server)
    return wall, server_start, counted


if __name__ == "__main__":
    main()
