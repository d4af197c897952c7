"""ct's warm process (flows/cli/warm.py, issue 15): a command forks from a process that has ct imported,
runs on the caller's terminal, and answers exactly what it answers in its own process.

Real processes throughout: the CLI is run as a user runs it, the warm process it starts is a real
background process (stopped here by its PID), the CT steps run on the session's Prefect server.
How much faster it is is measured in benchmarks/startup.py, not here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from flows.cli import warm
from tasks.demo import demo_batch
from tests.flows.test_cli_startup import PROBE, running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def warm_env() -> Iterator[tuple[dict[str, str], Path]]:
    """CT_WARM on, its sockets in a folder of this module's own (TMPDIR; short, as a socket path
    must be); every warm process started here is stopped by its PID at the end."""
    tmp = Path(tempfile.mkdtemp(prefix="ctw-", dir="/tmp"))
    env = {
        **os.environ,
        "CT_WARM": "1",
        "CT_WARM_IDLE": "300",
        "TMPDIR": str(tmp),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    yield env, tmp
    for where in tmp.glob("ct-warm-*"):  # by PID: SIGTERM, then SIGKILL
        warm.stop_all(where=where)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("batches")
    files = []
    for number in (1, 2):
        path = folder / f"batch-{number:02d}.csv"
        demo_batch(number, rows=300).to_csv(path, index=False)
        files.append(path)
    return files


def cli(env: dict[str, str], *args: str, probe: bool = False) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process; with `probe`, one that also reports its heavy imports."""
    command = [sys.executable, "-c", PROBE] if probe else [sys.executable, "flows/ct.py"]
    return subprocess.run(
        [*command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400
    )


def result_lines(output: str) -> list[str]:
    """The lines that state a step's result (not which process or server ran it)."""
    return [line for line in output.splitlines() if " rows | champion before:" in line]


def warm_pids(tmp: Path) -> list[int]:
    return [int(p.read_text()) for p in tmp.glob("ct-warm-*/*.pid")]


def test_commands_fork_from_one_warm_process_and_answer_as_in_their_own(
    warm_env, batches, tmp_path
):
    env, tmp = warm_env
    own = {**env, "CT_WARM": "0"}
    expected = []
    for batch in batches:
        done = cli(own, "run", "--data", str(batch), "--state-dir", str(tmp_path / "own"))
        assert done.returncode == 0, done.stderr
        expected += result_lines(done.stdout)
    assert not warm_pids(tmp)  # CT_WARM=0 started none

    outputs = []
    for batch in batches:
        done = cli(
            env,
            "-v",
            "run",
            "--data",
            str(batch),
            "--state-dir",
            str(tmp_path / "warm"),
            probe=True,
        )
        assert done.returncode == 0, done.stderr
        # the caller parsed and checked, then handed over: it imported nothing heavy itself
        assert "HEAVY: [] CODE: 0" in done.stdout, done.stdout
        outputs.append(done.stdout)
    assert "ct: starting a warm process" in outputs[0]
    assert "starting a warm process" not in outputs[1]
    [pid] = warm_pids(tmp)
    forks = [line for out in outputs for line in out.splitlines() if "running in a fork" in line]
    assert len(forks) == 2 and all(f"of the warm process (pid {pid})" in f for f in forks), forks
    # the same champion, drift, p-value and decision, batch by batch
    assert [line for out in outputs for line in result_lines(out)] == expected

    [learned] = (tmp / f"ct-warm-{os.getuid()}").glob("*-learned.txt")
    names = learned.read_text().split()
    assert "prefect.flow_engine" in names  # imported by the first run, preloaded for the next
    assert not [n for n in names if n.split(".")[0] in {"flows", "tasks", "blocks", "webhooks"}]


def test_errors_and_exit_codes_reach_the_caller(warm_env, tmp_path):
    env, _ = warm_env
    batch = tmp_path / "no-target.csv"
    demo_batch(1, rows=300).drop(columns=["churned"]).to_csv(batch, index=False)
    done = cli(env, "run", "--data", str(batch), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 1, done
    assert "error:" in done.stderr and "no-target.csv" in done.stderr, done.stderr


def start_step(env: dict[str, str], batch: Path, state: Path) -> tuple[subprocess.Popen[str], int]:
    """A `run` handed to the warm process, once its flow has begun; (the caller, the fork's PID)."""
    client = subprocess.Popen(
        [
            sys.executable,
            "flows/ct.py",
            "-v",
            "run",
            "--data",
            str(batch),
            "--state-dir",
            str(state),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    fork = None
    assert client.stdout is not None
    for line in client.stdout:
        if "running in a fork (pid " in line:
            fork = int(line.split("running in a fork (pid ")[1].split(")")[0])
        if "Beginning flow run" in line:  # the step has started
            break
    assert fork is not None
    return client, fork


def gone(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not running(pid)


@pytest.mark.parametrize("how", ["ctrl-c", "caller killed"])
def test_the_command_in_the_fork_ends_with_its_caller(warm_env, batches, tmp_path, how):
    env, _ = warm_env
    client, fork = start_step(env, batches[0], tmp_path / "state")
    try:
        if how == "ctrl-c":
            client.send_signal(signal.SIGINT)  # passed on to the fork
            rest = client.communicate(timeout=120)[0]
            assert client.returncode == 130, rest
            assert "Interrupted." in rest
        else:
            client.kill()  # no handler runs: the fork sees its caller's end of the socket close
            client.wait()
        assert gone(fork)
    finally:
        if client.poll() is None:
            client.kill()
        if running(fork):
            os.kill(fork, signal.SIGKILL)


def test_server_stop_stops_the_warm_processes(warm_env):
    env, tmp = warm_env
    pids = warm_pids(tmp)
    assert pids  # started by the tests above
    status = cli(env, "server", "status")
    assert f"Warm processes (pid {pids[0]})" in status.stdout, status.stdout
    stopped = cli(env, "server", "stop")
    assert f"Stopped ct's warm processes (pid {pids[0]})" in stopped.stdout, stopped.stdout
    assert not any(running(pid) for pid in pids)
    assert not warm_pids(tmp)


def test_changed_code_gets_a_new_warm_process(tmp_path):
    for name in warm.SOURCES:
        (tmp_path / name).mkdir()
    module = tmp_path / "tasks" / "step.py"
    module.write_text("VALUE = 1\n")
    before = warm.fingerprint(tmp_path)
    assert warm.fingerprint(tmp_path) == before
    module.write_text("VALUE = 22\n")
    assert warm.fingerprint(tmp_path) != before


def test_the_warm_ups_leave_one_thread():
    """A fork of a process with threads can deadlock: each warm-up must start none."""
    code = (
        "import sys, threading\n"
        "from flows.cli import warm\n"
        "for name in warm.WARM_UPS:\n"
        "    module, _, function = name.partition(':')\n"
        "    __import__(module, fromlist=[function]).__dict__[function]()\n"
        "print(threading.active_count())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.stdout.strip() == "1", done
