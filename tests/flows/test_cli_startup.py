"""The command line answers before it loads what it does not need (issue 15).

`--help` and pre-flight errors never import Prefect, scikit-learn, skops or great-expectations; a
local Prefect server is started once in the background and reused; a backtest shows ct's progress,
not Prefect's per-task lines (those come back with -v). How fast is measured in
benchmarks/startup.py, not here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from tasks.demo import demo_batch
from tests.support.devstack import free_port

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("prefect", "sklearn", "skops", "great_expectations", "lightgbm", "xgboost", "numba")
PROBE = f"""
import sys
from flows.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print("HEAVY:", heavy, "CODE:", code)
"""


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process and report which heavy packages it imported."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env or {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"},
    )


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["run", "--help"],
        ["backtest", "--help"],
        ["demo", "--help"],
        ["demo-data", "--help"],
        ["registry", "list", "--help"],
        ["contract", "accept", "--help"],
        ["server", "--help"],
    ],
)
def test_help_imports_nothing_heavy(command):
    result = probe(*command)
    assert "usage: python flows/ct.py" in result.stdout
    assert "HEAVY: [] CODE: 0" in result.stdout, result.stdout[-300:]


@pytest.fixture
def files(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    good = landing / "good.csv"
    demo_batch(1, rows=300).to_csv(good, index=False)
    big = landing / "big.csv"
    big.write_text("x\n" * 2000)
    outside = tmp_path / "outside.csv"
    outside.write_text(good.read_text())
    config = tmp_path / "ct.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nvalidation:\n  allowed_roots: [{landing}]\n"
        "  max_bytes: 1000\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("gate:\n  alpah: 0.1\n")
    blocked = tmp_path / "blocked.yaml"
    (tmp_path / "a-file").write_text("not a folder")
    blocked.write_text(f"registry:\n  url: {tmp_path / 'a-file' / 'registry'}\n")
    used = tmp_path / "used"  # an earlier backtest's --out
    (used / "registry").mkdir(parents=True)
    return {
        "used": used,
        "good": good,
        "big": big,
        "outside": outside,
        "config": config,
        "broken": broken,
        "blocked": blocked,
        "tmp": tmp_path,
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f: ["run", "--data", str(f["tmp"] / "nope.csv")], "file not found"),
        (lambda f: ["run", "--data", str(f["tmp"])], "is a directory"),
        (
            lambda f: ["run", "--data", str(f["outside"]), "--config", str(f["config"])],
            "is outside the allowed roots",
        ),
        (
            lambda f: ["run", "--data", str(f["big"]), "--config", str(f["config"])],
            "over the limit of 1,000 bytes",
        ),
        (lambda f: ["run", "--data", str(f["good"]), "--config", str(f["broken"])], "alpah"),
        (
            lambda f: ["run", "--data", str(f["good"]), "--config", str(f["blocked"])],
            "is not a writable folder",
        ),
        (lambda f: ["backtest", "--data", str(f["tmp"] / "x.csv"), "--target", "y"], "not found"),
        (
            lambda f: ["demo", "--out", str(f["used"])],
            "already holds an earlier backtest (registry/)",
        ),
        (
            lambda f: [
                "backtest",
                "--data",
                str(f["good"]),
                "--target",
                "y",
                "--out",
                str(f["used"]),
            ],
            "pass a new --out folder",
        ),
    ],
)
def test_preflight_errors_come_before_prefect(files, make, message):
    result = probe(*make(files))
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error: "), result.stderr
    assert message in line, line
    assert "HEAVY: [] CODE: 1" in result.stdout, result.stdout


def test_a_backtest_shows_ct_progress_not_prefect_lines(tmp_path):
    """In a pipe (CI), one plain line per batch with the rate and time left; -v brings back
    Prefect's per-task lines."""
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    command = [sys.executable, "flows/ct.py", "demo", "--batches", "3", "--rows", "300"]
    quiet = subprocess.run(
        [*command, "--out", str(tmp_path / "q")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert quiet.returncode == 0, quiet.stderr
    lines = [line for line in quiet.stdout.splitlines() if line.startswith("batch ")]
    assert [line.split(":")[0] for line in lines] == ["batch 1/3", "batch 2/3", "batch 3/3"]
    assert all("s/batch, ~" in line and "s left]" in line for line in lines)
    assert "Finished in state" not in quiet.stdout + quiet.stderr
    verbose = subprocess.run(
        [*command, "--out", str(tmp_path / "v"), "-v"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verbose.returncode == 0, verbose.stderr
    assert "Finished in state" in verbose.stdout + verbose.stderr


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited process nobody has reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_local_server_is_started_once_and_reused_then_stopped(tmp_path):
    home = tmp_path / "prefect-home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(home),
        "CT_PREFECT_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
    }
    batch = tmp_path / "batch.csv"
    demo_batch(1, rows=300).to_csv(batch, index=False)
    pid_file = home / f"ct-server-{port}.pid"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "flows/ct.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )

    try:
        status = cli("server", "status")
        assert "No Prefect server answers" in status.stdout, status
        first = cli("run", "--data", str(batch), "--state-dir", str(tmp_path / "state"))
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines()[0].startswith(
            f"Prefect: no server answers at http://127.0.0.1:{port}; starting one"
        ), first.stdout
        pid = int(pid_file.read_text())
        second = cli("run", "--data", str(batch), "--state-dir", str(tmp_path / "state"))
        assert second.returncode == 0, second.stderr
        assert "starting one" not in second.stdout
        assert f"the local Prefect server at http://127.0.0.1:{port}" in second.stdout
        assert int(pid_file.read_text()) == pid  # the same server
        assert "started by ct" in cli("server", "status").stdout
        stopped = cli("server", "stop")
        assert f"Stopped the local Prefect server (pid {pid})" in stopped.stdout, stopped
        assert not running(pid)
    finally:
        if pid_file.exists():  # stop it by its PID whatever happened above
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid_file.read_text()), 9)
