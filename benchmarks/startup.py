"""What a command-line user waits for, beside the floors, in one run (issue 15).

Every row is a fresh `python flows/ct.py ...` process (wall time), against a local Prefect server
this script starts on 127.0.0.1 (ct's recorder settings) and which answers before the first timed
command ("warm server"). Floors, measured in the same run:

* `python -c pass`: the interpreter alone;
* the same CT step without Prefect: a fresh process that imports the same libraries and calls
  the same pure functions (read, validate, drift, train, gate, register; the quality suite in its
  background process) on the same batch;
* CT work of a backtest: the sum of the task-run times Prefect recorded for it; the rest of the
  backtest's wall time, per batch, is Prefect's and ct's own overhead.

The `run` and demo rows are measured twice: each command in its own process (`CT_WARM=0`, the
baseline) and forked from ct's warm process (flows/cli/warm.py; started by an untimed first command).
Targets (issue 15), for the warm process: --help < 0.5 s; pre-flight errors < 1.5 s; one 800-row
`run` <= 4 s wall (the median of three runs); the 12-batch demo <= 15 s wall (the median of
three); backtest overhead <= 0.3 s per batch.
Usage: `.venv/bin/python benchmarks/startup.py` (about 8 minutes; `--batches N` for the long
backtest, default 50).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flows.cli import warm
from flows.cli.prefect_server import RECORDED_WITHIN
from tasks.streams import write_stream

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/support: the dev stack
from tests.support.devstack import free_port, start_prefect_server, stop

ROOT = Path(__file__).resolve().parents[1]

PURE_STEP = """
import sys, time
started = time.perf_counter()
from pathlib import Path
from blocks.registry import ModelRegistry
from tasks import gx_suite
from tasks.config import CTConfig
from tasks.data import read_batch
from tasks.drift import build_profile, compute_drift
from tasks.gate import compare
from tasks.train import fit_candidate, fit_floor, gate_inputs, split_holdout
from tasks.validate import infer_spec
from tasks.validate.quality import expectation_specs
from tasks.validate.rows import validate_rows
gx_suite.warm_up()
config = CTConfig()
first, _, _ = read_batch(sys.argv[1])
spec = infer_spec(first, config.dataset)
valid_first, _, _ = validate_rows(first, spec, source="first", max_bad_fraction=0.05)
champion = fit_candidate(valid_first, spec, config.model, seed=0)
cols = [*spec.features, spec.target]
profile = build_profile(valid_first[cols], categorical=[*spec.categorical, spec.target], label=spec.target)
frame, _, _ = read_batch(sys.argv[2])
valid, _, _ = validate_rows(frame, spec, source="batch", max_bad_fraction=0.05)
specs = expectation_specs(profile, tolerance=0.5, min_rows=20, max_rows=10**6)
quality = gx_suite.submit(valid[cols], specs, [*spec.categorical, spec.target])
compute_drift(profile, valid[cols])
train, hold = split_holdout(valid, 0.3)
candidate = fit_candidate(train, spec, config.model, seed=0)
y, (base, cand), _ = gate_inputs(hold, spec, [champion, candidate], probabilities=True)
compare(y, base, cand, metric="log_loss", order=hold["event_time"].to_numpy())
registry = ModelRegistry(url=sys.argv[3])
registry.register("m", candidate.estimator, metrics={}, lineage={}, schema={},
                  profile=build_profile(train[cols], categorical=[*spec.categorical, spec.target]).model_dump(mode="json"))
quality.result()
"""


def wall(command: list[str], env: dict[str, str], *, check: bool = True) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if check and result.returncode != 0:
        raise RuntimeError(f"{command} failed: {result.stderr[-500:]}")
    return elapsed


def three_walls(
    command: Callable[[int], list[str]], env: dict[str, str], *, check: bool = True
) -> list[float]:
    """Three runs' wall times, sorted (`command(i)` for run i): their median is what a row shows,
    since single runs are noisy on this VM (one run of a 0.1 s command took 0.7 s, once; two demos
    of one commit took 16 and 22 s)."""
    return sorted(wall(command(i), env, check=check) for i in range(3))


def ct(*args: str) -> list[str]:
    return [sys.executable, "flows/ct.py", *args]


def task_run_seconds(url: str, env: dict[str, str], flow_name: str) -> tuple[float, float]:
    """For the newest run of flow `flow_name`: its run time, and the sum of the run times of the
    task runs within it (subflows' included, the task runs that only track a subflow not)."""
    code = f"""
import time
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort
with get_client(sync_client=True) as c:
    run = c.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["{flow_name}"])),
                           sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
    def page(read, **kw):
        out, offset = [], 0
        while batch := read(limit=200, offset=offset, **kw):
            out += batch
            offset += len(batch)
        return out
    seen = -1
    while True:  # task runs are recorded from events, a moment after the flow ends
        tasks, flows = page(c.read_task_runs), page(c.read_flow_runs)
        if len(tasks) == seen:
            break
        seen = len(tasks)
        time.sleep({RECORDED_WITHIN + 1})
    start, end = run.start_time, run.end_time
    trackers = {{f.parent_task_run_id for f in flows}}
    mine = [t for t in tasks if t.id not in trackers and t.start_time and start <= t.start_time <= end]
    print(run.total_run_time.total_seconds(), sum(t.total_run_time.total_seconds() for t in mine))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PREFECT_API_URL": url},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50, help="long backtest's batches (50)")
    args = parser.parse_args()
    rows: list[tuple[str, float, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="ct-startup-") as tmp:
        work = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}/api"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env |= {
            "PREFECT_HOME": str(work / "home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_URL": url,
            "CT_WARM": "0",  # each command in its own process unless a row says otherwise
        }
        started = time.perf_counter()
        server = start_prefect_server(port, env)
        try:
            server_start = time.perf_counter() - started
            data = work / "demo"
            files = write_stream("demo", data)
            floor = wall([sys.executable, "-c", "pass"], env)
            rows.append(("python -c pass (floor)", floor, "", ""))
            helps = [
                three_walls(lambda _, c=c: ct(*c, "--help"), env)[1]
                for c in (
                    [],
                    ["run"],
                    ["backtest"],
                    ["demo"],
                    ["registry", "list"],
                    ["contract", "accept"],
                    ["server"],
                )
            ]
            rows.append(
                (
                    "--help, slowest of 7 commands (median of 3 each)",
                    max(helps),
                    "< 0.5 s",
                    "ok" if max(helps) < 0.5 else "MISSED",
                )
            )
            config = work / "roots.yaml"
            config.write_text(f"validation:\n  allowed_roots: [{data}]\n")
            errors = {
                "missing file": ct("run", "--data", str(work / "nope.csv")),
                "outside allowed roots": ct(
                    "run", "--data", str(work / "x.csv"), "--config", str(config)
                ),
                "config error": ct(
                    "run", "--data", str(files[0]), "--config", str(ROOT / "pyproject.toml")
                ),
            }
            (work / "x.csv").write_text("a\n1\n")
            for name, command in errors.items():
                seconds = three_walls(lambda _, c=command: c, env, check=False)[1]
                rows.append(
                    (
                        f"pre-flight: {name} (median of 3)",
                        seconds,
                        "< 1.5 s",
                        "ok" if seconds < 1.5 else "MISSED",
                    )
                )
            cold = {**env, "CT_WARM": "0"}
            warm_tmp = work / "w"  # the warm process's socket folder (TMPDIR), stopped below
            warm_tmp.mkdir()
            hot = {**env, "CT_WARM": "1", "TMPDIR": str(warm_tmp)}
            pure = wall(
                [
                    sys.executable,
                    "-c",
                    PURE_STEP,
                    str(files[0]),
                    str(files[1]),
                    str(work / "pure-registry"),
                ],
                env,
            )

            def step(i: int, where: dict[str, str], name: str) -> list[str]:
                """Run i's second step (batch 2 after batch 1 trained a champion, untimed)."""
                state = str(work / f"state-{name}-{i}")
                wall(ct("run", "--data", str(files[0]), "--state-dir", state), where)
                return ct("run", "--data", str(files[1]), "--state-dir", state)

            # the first warm command starts the warm process (and learns what a step imports)
            wall(ct("run", "--data", str(files[0]), "--state-dir", str(work / "w0")), hot)
            runs: dict[str, list[float]] = {}
            flows: dict[str, float] = {}
            for name, where in (("own process", cold), ("warm process", hot)):
                runs[name] = sorted(wall(step(i, where, name), where) for i in range(3))
                flows[name], _ = task_run_seconds(url, env, "continuous-training")
            for name, times in runs.items():
                target = "<= 4 s" if name == "warm process" else ""
                ok = "ok" if times[1] <= 4 else "MISSED"
                rows.append(
                    (
                        f"run --data, 800 rows, {name} (median of 3)",
                        times[1],
                        target,
                        ok if target else "",
                    )
                )
                ok = "ok" if flows[name] <= 1.5 else "MISSED"
                rows.append(
                    (
                        "  its flow run time (Prefect's)",
                        flows[name],
                        target and "<= 1.5 s",
                        ok if target else "",
                    )
                )
            rows.append(("  the same step without Prefect (floor)", pure, "", ""))
            demos: dict[str, list[float]] = {}
            for name, where in (("own process", cold), ("warm process", hot)):
                demos[name] = three_walls(
                    lambda i, n=name: ct("demo", "--out", str(work / f"demo-{n[:3]}-{i}")), where
                )
                low, mid, high = demos[name]
                target = "<= 15 s" if name == "warm process" else ""
                rows.append(
                    (
                        f"demo, 12 batches x 800 rows, {name} (median; {low:.1f}-{high:.1f})",
                        mid,
                        target,
                        ("ok" if mid <= 15 else "MISSED") if target else "",
                    )
                )
            env = hot
            long_data = work / "long"
            write_stream("demo", long_data, batches=args.batches, rows=365)
            long_s = wall(
                ct(
                    "backtest",
                    "--data",
                    str(long_data),
                    "--target",
                    "churned",
                    "--order-by",
                    "event_time",
                    "--out",
                    str(work / "long-out"),
                ),
                env,
            )
            flow_s, tasks_s = task_run_seconds(url, env, "backtest")
            overhead = (flow_s - tasks_s) / args.batches
            rows.append((f"backtest, {args.batches} batches x 365 rows", long_s, "", ""))
            rows.append(("  CT work (task-run time Prefect recorded)", tasks_s, "", ""))
            rows.append(
                (
                    "  overhead per batch beyond the CT work",
                    overhead,
                    "<= 0.3 s",
                    "ok" if overhead <= 0.3 else "MISSED",
                )
            )
            share = (flow_s - tasks_s) / long_s
            rows.append(("  overhead as a share of the backtest's wall time", share, "", ""))
        finally:
            for where in (work / "w").glob("ct-warm-*"):  # the warm process, by its PID
                warm.stop_all(where=where)
            stop(server)
    print(f"Local Prefect server started in {server_start:.1f} s (paid once, not per command).\n")
    print(f"| {'what':62} | {'seconds':>8} | {'target':>8} | {'':6} |")
    print(f"|{'-' * 64}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")
    for name, value, target, verdict in rows:
        shown = f"{value:.0%}" if "share" in name else f"{value:.2f}"
        print(f"| {name:62} | {shown:>8} | {target:>8} | {verdict:6} |")
    ratio = runs["warm process"][1] / runs["own process"][1]
    demo_ratio = demos["warm process"][1] / demos["own process"][1]
    print(
        f"\nWarm process vs each command in its own process, same run: `run --data` {ratio:.2f}x "
        f"the time, the demo {demo_ratio:.2f}x."
    )


if __name__ == "__main__":
    main()
