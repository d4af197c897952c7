"""What a CT step costs the Prefect server, and the demo's wall time: this checkout against a
baseline revision, in one run (issue 15).

Both run the same demo (`python flows/ct.py demo`, 12 batches of 800 rows, default `gate.mode`)
against one local Prefect server started here on 127.0.0.1 (ct's recorder settings), alternating
baseline and current `--runs` times, each in its own process (`CT_WARM=0`). The baseline is a
`git worktree` of `--baseline`, run with the same interpreter and packages (`PYTHONPATH` points
the imports at it). Per run, from the server: the flow runs, task runs, artifacts and events the
demo left per batch; these counts are what the server must write for every step, and they do not
depend on the machine's noise, which the wall times do (single demos of one commit have ranged
over 6 s on this 2-core machine); and the requests the server answered with 503 (each costs the
demo about 2 s: flows/cli/prefect_server.py), counted from its log. The demos' tables must be
identical: nothing here may change a decision.

Usage: `.venv/bin/python benchmarks/step_cost.py [--baseline REV] [--runs N]` (about 25 s per
demo; the default baseline, 55eb4a5, is the commit before the step was trimmed).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.cli.prefect_server import RECORDED_WITHIN, RECORDER_ENV  # noqa: E402
from tests.support.devstack import start_counting_server, stop  # noqa: E402

BATCHES = 12


def server_counts(url: str, since: datetime, until: datetime) -> dict[str, int]:
    """Flow runs, task runs, artifacts and events created on the server between two times."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        TaskRunFilter,
        TaskRunFilterStartTime,
    )
    from prefect.events.filters import EventFilter, EventOccurredFilter
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        flows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                expected_start_time=FlowRunFilterExpectedStartTime(after_=since, before_=until)
            ),
            limit=200,
        )
        tasks = 0
        while batch := client.read_task_runs(
            task_run_filter=TaskRunFilter(
                start_time=TaskRunFilterStartTime(after_=since, before_=until)
            ),
            limit=200,
            offset=tasks,
        ):
            tasks += len(batch)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[f.id for f in flows])
            ),
            limit=200,
        )
        page = client.read_events(
            EventFilter(occurred=EventOccurredFilter(since=since, until=until)), limit=1
        )
        return {
            "flow runs": len(flows),
            "task runs": tasks,
            "artifacts": len(artifacts),
            "events": page.total,
        }


def run_demo(root: Path, env: dict[str, str], out: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "flows/ct.py", "demo", "--out", str(out)],
        cwd=root,
        env={**env, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"demo failed in {root}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    table = "\n".join(line for line in done.stdout.splitlines() if line.startswith("|"))
    return seconds, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="55eb4a5", help="git revision (default 55eb4a5)")
    parser.add_argument("--runs", type=int, default=3, help="demos of each, alternating (3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ct-step-cost-") as tmp:
        work = Path(tmp)
        base = work / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.baseline],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        server = start_counting_server(work / "server", RECORDER_ENV)
        env = server.env | {"CT_WARM": "0"}
        url = env["PREFECT_API_URL"]
        results: dict[str, list[tuple[float, dict[str, int]]]] = {"baseline": [], "current": []}
        tables: dict[str, set[str]] = {"baseline": set(), "current": set()}
        try:
            for i in range(args.runs):
                for label, root in (("baseline", base), ("current", ROOT)):
                    since = datetime.now(UTC)
                    busy = server.busy()
                    seconds, table = run_demo(root, env, work / f"{label}-{i}")
                    time.sleep(RECORDED_WITHIN + 1)  # task runs and events: batched
                    counts = server_counts(url, since, datetime.now(UTC))
                    counts["503s"] = server.busy() - busy
                    results[label].append((seconds, counts))
                    tables[label].add(table)
                    print(f"{label} run {i + 1}: {seconds:.1f} s, {counts}", file=sys.stderr)
        finally:
            stop(server.process)
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False
            )
    same = tables["baseline"] == tables["current"] and len(tables["current"]) == 1
    print(f"baseline {args.baseline}, current {ROOT.name}; {args.runs} demos each, alternating; ")
    print(f"the demos' tables are {'identical' if same else 'DIFFERENT'}.\n")
    print(
        f"| {'per demo (12 batches x 800 rows)':34} | {'baseline':>10} | {'current':>10} | ratio |"
    )
    print(f"|{'-' * 36}|{'-' * 12}|{'-' * 12}|-------|")
    walls = {k: statistics.median(s for s, _ in v) for k, v in results.items()}
    spans = {
        k: f"{min(s for s, _ in v):.1f}-{max(s for s, _ in v):.1f}" for k, v in results.items()
    }
    print(
        f"| {'wall time, median (s)':34} | {walls['baseline']:10.1f} | {walls['current']:10.1f} "
        f"| {walls['current'] / walls['baseline']:5.2f} |"
    )
    print(f"| {'  range (s)':34} | {spans['baseline']:>10} | {spans['current']:>10} |       |")
    for what in ("flow runs", "task runs", "artifacts", "events"):
        per = {k: statistics.median(c[what] for _, c in v) / BATCHES for k, v in results.items()}
        print(
            f"| {what + ' per batch (server)':34} | {per['baseline']:10.1f} | {per['current']:10.1f} "
            f"| {per['current'] / per['baseline']:5.2f} |"
        )
    stalls = {k: statistics.mean(c["503s"] for _, c in v) for k, v in results.items()}
    ratio = f"{stalls['current'] / stalls['baseline']:5.2f}" if stalls["baseline"] else "    -"
    print(
        f"| {'503s per demo, mean (server log)':34} | {stalls['baseline']:10.1f} "
        f"| {stalls['current']:10.1f} | {ratio} |"
    )
    if not same:
        raise SystemExit("the demos' tables differ: a change altered a decision")


if __name__ == "__main__":
    main()
