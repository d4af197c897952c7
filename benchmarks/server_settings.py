"""The demo on local Prefect servers that differ only in their settings, in one run (issue 15).

Why: on SQLite, some of the server's write requests read before they write (creating a task run
reads the flow run's labels first). When another connection commits in between, SQLite answers
"database is locked" at once (a deferred transaction cannot wait for a snapshot it has lost), the
server answers HTTP 503, and Prefect's client waits about 2 s before it asks again
(PrefectHQ/prefect#18934). The server's own writers, the event persister and the task-run
recorder, commit every few hundred milliseconds under a CT step's load, so a demo met this one
to three times. Fewer, larger commits make it rarer.

Each configuration is a server of its own (own PREFECT_HOME, 127.0.0.1, retryable errors logged),
started before the first demo; the demos (`python flows/ct.py demo`, own process, `CT_WARM=0`)
alternate between them `--runs` times. Per configuration: the demo's wall time, and the 503s its
server logged, which the machine's noise does not move. The demos' tables must be identical.

Usage: `.venv/bin/python benchmarks/server_settings.py [--runs N]` (about 20 s per demo).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.step_cost import run_demo  # noqa: E402
from flows.cli.prefect_server import RECORDER_ENV  # noqa: E402
from tests.support.devstack import CountingServer, start_counting_server, stop  # noqa: E402

#: What `--runs` compares: ct's settings, the ones ct used before (task-run recorder batched
#: every 1 s, the event persister as Prefect ships it), and Prefect's own.
CONFIGS: dict[str, dict[str, str]] = {
    "ct (flows/cli/prefect_server.py)": RECORDER_ENV,
    "before: recorder only, 1 s": {
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "1000",
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    },
    "Prefect's defaults": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="demos per configuration (3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ct-server-settings-") as tmp:
        work = Path(tmp)
        servers: dict[str, CountingServer] = {}
        try:
            for i, (label, settings) in enumerate(CONFIGS.items()):
                servers[label] = start_counting_server(work / f"server-{i}", settings)
            walls: dict[str, list[float]] = {label: [] for label in CONFIGS}
            busy: dict[str, list[int]] = {label: [] for label in CONFIGS}
            tables: set[str] = set()
            for run in range(args.runs):
                for i, (label, server) in enumerate(servers.items()):
                    before = server.busy()
                    env = server.env | {"CT_WARM": "0"}
                    seconds, table = run_demo(ROOT, env, work / f"demo-{i}-{run}")
                    walls[label].append(seconds)
                    busy[label].append(server.busy() - before)
                    tables.add(table)
                    print(
                        f"{label}, run {run + 1}: {seconds:.1f} s, {busy[label][-1]} x 503",
                        file=sys.stderr,
                    )
        finally:
            for server in servers.values():
                stop(server.process)
    first = statistics.median(walls[next(iter(CONFIGS))])
    print(
        f"{args.runs} demos (12 batches x 800 rows) per server, alternating; the demos' tables "
        f"are {'identical' if len(tables) == 1 else 'DIFFERENT'}.\n"
    )
    print(
        f"| {'server settings':30} | {'wall, median (s)':>16} | {'range (s)':>11} "
        f"| {'503s per demo':>13} | {'wall vs ct':>10} |"
    )
    print(f"|{'-' * 32}|{'-' * 18}|{'-' * 13}|{'-' * 15}|{'-' * 12}|")
    for label in CONFIGS:
        mid = statistics.median(walls[label])
        span = f"{min(walls[label]):.1f}-{max(walls[label]):.1f}"
        print(
            f"| {label:30} | {mid:16.1f} | {span:>11} "
            f"| {statistics.mean(busy[label]):13.1f} | {mid / first:10.2f} |"
        )
    if len(tables) != 1:
        raise SystemExit("the demos' tables differ: a server setting altered a decision")


if __name__ == "__main__":
    main()
