"""Shared by the benchmarks that backtest through the command line (policies.py,
real_streams.py): one local Prefect server for all their backtests, and a backtest run once more
when the server's write lock outlasted the client's retries."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/support: the dev stack
from flows.cli import warm
from tests.support.devstack import free_port, start_prefect_server, stop


@contextlib.contextmanager
def backtest_server(work: Path, *, log: Path | None = None) -> Iterator[dict[str, str]]:
    """A Prefect server on a free port of 127.0.0.1 with its home in `work`; yields the
    environment the backtests run in (the caller's, without its PREFECT_ and CT_ settings).
    The backtests fork from ct's warm process, whose socket folder is kept in `work` (TMPDIR) so
    that it is stopped, by its PID, with the server at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CT_"))}
    (work / "w").mkdir(parents=True, exist_ok=True)
    env |= {
        "PREFECT_HOME": str(work / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "CT_WARM": "1",
        "TMPDIR": str(work / "w"),
    }
    server = start_prefect_server(port, env, log=log)
    print(f"Prefect server PID {server.pid} on port {port}", file=sys.stderr, flush=True)
    try:
        yield env | {"PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    finally:
        for where in (work / "w").glob("ct-warm-*"):
            warm.stop_all(where=where)
        stop(server)


def retried_on_503(
    backtest: Callable[[], subprocess.CompletedProcess[str]], out: Path
) -> subprocess.CompletedProcess[str]:
    """Run a backtest; run it once more, in a fresh `out`, if it failed on a 503. Two backtests
    against one SQLite server: a 503 can outlast the client's retries outside a CT step (the step
    itself is run again by the backtest)."""
    result = backtest()
    if result.returncode != 0 and "503" in result.stderr:
        shutil.rmtree(out, ignore_errors=True)
        result = backtest()
    return result
