"""The whole event-driven setup on one machine: a Prefect server, the `ct-process` work pool with
every deployment of prefect.yaml, a process worker and the webhook receiver, all on 127.0.0.1.

`python -m tests.support.devstack [--state-dir DIR]` starts it, prints where everything is and how to send
a signed webhook, and stops every process it started on Ctrl-C. The end-to-end test and
`benchmarks/events.py` use the same `LocalStack`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from flows.cli.prefect_server import RECORDER_ENV

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
#: No telemetry (there may be no internet), and batched task-run recording (flows/cli/prefect_server.py).
SERVER_SETTINGS = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", **RECORDER_ENV}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
    """Poll `check` until it returns something true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def start_prefect_server(
    port: int,
    env: dict[str, str],
    timeout: float = 180,
    *,
    settings: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """A Prefect server on 127.0.0.1:`port` with ct's recorder settings (or `settings` instead),
    in a session of its own, once it answers its health check (the benchmarks' server; stop it
    with `stop`). Its output goes to `log` if given."""
    output = contextlib.nullcontext(subprocess.DEVNULL) if log is None else log.open("ab")
    with output as out:
        server = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env={**env, **(RECORDER_ENV if settings is None else settings)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for(lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200, timeout, url)
    except BaseException:
        stop(server)
        raise
    return server


#: What the server logs for each request it answers with 503 (with PREFECT_API_LOG_RETRYABLE_ERRORS).
RETRYABLE = "Encountered retryable exception"


@dataclass
class CountingServer:
    """A benchmark's local server with given settings, whose 503s are counted from its log."""

    process: subprocess.Popen[bytes]
    #: The environment a client of this server runs with (PREFECT_HOME, PREFECT_API_URL, ...).
    env: dict[str, str]
    log: Path

    def busy(self) -> int:
        """How many requests it has answered with 503 so far."""
        return self.log.read_text(errors="replace").count(RETRYABLE)


def start_counting_server(folder: Path, settings: dict[str, str]) -> CountingServer:
    """`start_prefect_server` with `settings` instead of ct's, its home and log in `folder`, and
    its retryable errors logged; the caller's PREFECT_* and CT_* variables are left out."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CT_"))}
    env |= {
        "PREFECT_HOME": str(folder / "home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
    }
    port = free_port()
    log = folder / "server.log"
    process = start_prefect_server(port, env, settings=settings, log=log)
    client = env | {"PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PYTHONPATH": str(ROOT)}
    return CountingServer(process, client, log)


def signed_headers(
    secret: str, body: bytes, *, message_id: str | None = None, when: datetime | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers a sender puts on `body` (for the tests and the benchmark)."""
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    when = when or datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, when, body.decode(errors="replace")),
        "content-type": "application/json",
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (a worker wants a second one), then SIGKILL what is left; then
    the same for the processes it had started in sessions of their own (a process worker's flow
    runs), which its group's signals do not reach and which would outlive it."""
    import psutil  # type: ignore[import-untyped]  # distributed's dependency

    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            continue
    _end([p for p in descendants if p.is_running()], terminate=True)


def _end(processes: list[Any], *, terminate: bool) -> None:
    """End psutil processes: SIGTERM first when `terminate` (else they get 10 s to end on their
    own), SIGKILL what is left after 10 s, then wait for it."""
    import psutil

    if terminate:
        for process in processes:
            process.terminate()
    _, left = psutil.wait_procs(processes, timeout=10)
    for process in left:
        process.kill()
    psutil.wait_procs(left, timeout=10)


class _StoppedOnExit:
    """`with` stops what `__enter__` started, by `close()`, however the block ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalPostgres(_StoppedOnExit):
    """A throwaway PostgreSQL cluster on 127.0.0.1 for a Prefect server many clients write to at
    once (a fleet's workers): on SQLite, writers take turns, and a write that waits too long is a
    503 the client retries 2 s later. Uses the machine's PostgreSQL binaries (`initdb`,
    `postgres`), run as the `postgres` user when this is root, as PostgreSQL requires.
    `url` is the server's `PREFECT_API_DATABASE_CONNECTION_URL`. Its data live in a temporary
    folder of their own (that user must reach it), removed when the cluster is stopped by PID."""

    def __init__(self) -> None:
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="ct-postgres-"))
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/prefect"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binaries() -> Path | None:
        """The folder of PostgreSQL's server programs, or None if this machine has none."""
        import shutil

        found = shutil.which("initdb")
        if found:
            return Path(found).resolve().parent
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        return versions[-1].parent if versions else None

    def __enter__(self) -> LocalPostgres:
        bin_dir = self.binaries()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server programs (initdb) on this machine")
        user = "postgres" if os.geteuid() == 0 else None
        data = self.folder / "data"
        if user:
            import shutil

            shutil.chown(self.folder, user)
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            user=user,
            timeout=120,
        )
        with open(self.folder / "postgres.log", "wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.folder),
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=user,
                start_new_session=True,
            )

        def ready() -> bool:
            import asyncio

            import asyncpg  # type: ignore[import-untyped]

            async def create() -> None:
                conn = await asyncpg.connect(
                    host="127.0.0.1", port=self.port, user="postgres", database="postgres"
                )
                try:
                    await conn.execute("CREATE DATABASE prefect")
                finally:
                    await conn.close()

            try:
                asyncio.run(create())
            except (OSError, asyncpg.PostgresError):  # not up yet, or starting up
                return False
            return True

        try:
            wait_for(ready, 60, "PostgreSQL", every=0.5)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        import shutil

        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        shutil.rmtree(self.folder, ignore_errors=True)


class LocalStack(_StoppedOnExit):
    """Start with `with LocalStack(folder) as stack:`; everything stops when the block ends."""

    def __init__(
        self,
        folder: Path,
        *,
        deploy: bool = True,
        secret: str | None = None,
        server_settings: dict[str, str] | None = None,
    ):
        self.folder = Path(folder)
        self.deploy = deploy
        self.secret = secret or "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.api_port, self.hook_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.api_port}/api"
        self.hooks = f"http://127.0.0.1:{self.hook_port}"
        self.landing = self.folder / "landing"
        self.state_dir = self.folder / "state"
        self.serving_dir = self.folder / "serving"
        self.logs = self.folder / "logs"
        self.procs: list[subprocess.Popen[bytes]] = []
        base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        self.server_env = (
            base
            | SERVER_SETTINGS
            | {
                "PREFECT_HOME": str(self.folder / "prefect-home"),
                "PREFECT_LOGGING_TO_API_ENABLED": "false",
            }
            | (server_settings or {})
        )
        self.client_env = self.server_env | {
            "PREFECT_API_URL": self.api,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "CT_HOME": str(ROOT),
            "CT_STATE_DIR": str(self.state_dir),
            "CT_SERVING_DIR": str(self.serving_dir),
            "CT_LANDING": str(self.landing),
        }

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def __enter__(self) -> LocalStack:
        for folder in (self.landing, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        try:
            self._start(
                "server",
                [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.api_port)],
                self.server_env,
            )
            wait_for(
                lambda: httpx.get(f"{self.api}/health", timeout=1).status_code == 200,
                120,
                "the server",
            )
            if self.deploy:
                for command in (
                    [*PREFECT, "work-pool", "create", "ct-process", "--type", "process"],
                    [*PREFECT, "--no-prompt", "deploy", "--all"],
                ):
                    subprocess.run(
                        command,
                        cwd=ROOT,
                        env=self.client_env,
                        check=True,
                        capture_output=True,
                        timeout=300,
                    )
                self._start(
                    "worker", [*PREFECT, "worker", "start", "--pool", "ct-process"], self.client_env
                )
            self._start(
                "receiver",
                [sys.executable, "-m", "webhooks.receiver"],
                self.client_env
                | {
                    "CT_WEBHOOK_SECRET": self.secret,
                    "CT_WEBHOOK_ALLOWED_ROOTS": str(self.landing),
                    "CT_WEBHOOK_PORT": str(self.hook_port),
                },
            )
            wait_for(
                lambda: httpx.get(f"{self.hooks}/health", timeout=1).status_code == 200,
                60,
                "the receiver",
            )
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every process started for the stack, then whatever still points at its server
        (a flow run's own child that was starting while its parent stopped), after 10 s."""
        import psutil

        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()
        left = []
        for pid in self.leftovers():
            try:
                left.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        _end(left, terminate=False)

    def leftovers(self) -> list[int]:
        """PIDs of processes still pointed at this stack's server (e.g. a flow run its worker
        started): none should be left once it is closed."""
        import psutil

        found = []
        for process in psutil.process_iter():
            try:
                if process.environ().get("PREFECT_API_URL") == self.api:
                    found.append(process.pid)
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.devstack", description=__doc__)
    parser.add_argument(
        "--folder", default=".ct/devstack", help="where state, logs and the landing folder go"
    )
    args = parser.parse_args()
    with LocalStack(Path(args.folder).resolve()) as stack:
        print(
            f"Prefect UI and API: {stack.api.removesuffix('/api')}  (export PREFECT_API_URL={stack.api})"
        )
        print(f"Webhook receiver:   {stack.hooks}/hooks/data   secret: {stack.secret}")
        print(
            f"Drop batches in:    {stack.landing}    state: {stack.state_dir}    logs: {stack.logs}"
        )
        print("Ctrl-C stops everything.")
        try:
            while all(p.poll() is None for p in stack.procs):
                time.sleep(1)
            print("a process ended; see the logs", file=sys.stderr)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
