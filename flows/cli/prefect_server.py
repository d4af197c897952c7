"""How ct runs a Prefect server of its own: the settings, and one local server in the background.

On SQLite, some of the server's write requests read before they write (creating a task run or
a subflow run). When another connection commits in between, SQLite answers "database is locked"
at once, the server answers HTTP 503, and the client waits about 2 s before retrying
(PrefectHQ/prefect#18934). The commits that collide are mostly the server's own: its task-run
recorder and event persister write what the steps emit. As Prefect ships them, they commit every
event or every 20, several times a second under a CT step. Every server ct starts batches both,
one commit per 5 s at most (task runs and events reach the UI up to 5 s later; the event
persister's own default interval is 5 s): `benchmarks/server_settings.py` and
`benchmarks/prefect_floor.py` measure the 503s this saves. The CLI's background and temporary
servers, `make server`, the test server, the local stack and the benchmarks all use these.

A temporary (ephemeral) server costs 10-30 s of start-up in every command, so when no server is
configured or answering, the CLI starts `prefect server start` once, in the background on
127.0.0.1 (port `CT_PREFECT_PORT`, default 4200), records its PID and log under PREFECT_HOME,
and every later command finds it answering. `python flows/ct.py server status|stop` manage it.

No Prefect import here: the CLI uses this before Prefect loads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

#: Seconds at most before the server writes what it was sent (task runs, events).
RECORDED_WITHIN = 5
RECORDER_ENV: dict[str, str] = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "1000",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": str(RECORDED_WITHIN),
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "1000",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": str(RECORDED_WITHIN),
}
#: Starting a server creates its database the first time (migrations): give it time.
START_TIMEOUT = 180.0


def local_port() -> int:
    return int(os.environ.get("CT_PREFECT_PORT", "4200"))


def local_url() -> str:
    return f"http://127.0.0.1:{local_port()}/api"


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()


def answers(url: str, timeout: float = 0.5) -> bool:
    """Does a Prefect API answer its health check at `url`?"""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def alive(pid: int) -> bool:
    """Does the process live? An exited child of this very process lingers as a zombie until
    reaped: it counts as ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class LocalServer:
    """The background server ct started (or would start) on this machine."""

    url: str
    pid_file: Path
    log_file: Path

    @classmethod
    def here(cls) -> LocalServer:
        home = prefect_home()
        port = local_port()
        return cls(local_url(), home / f"ct-server-{port}.pid", home / f"ct-server-{port}.log")

    @property
    def pid(self) -> int | None:
        """The PID ct recorded, if that process still lives."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def start(self) -> int:
        """Start `prefect server start` detached, with ct's recorder settings; return its PID once
        it answers. Raises TimeoutError (with the log's last lines) if it never does."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **RECORDER_ENV,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # there may be no internet
            "PREFECT_UI_API_URL": self.url,
        }
        env.pop("PREFECT_API_URL", None)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(local_port()),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: it outlives this command
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if answers(self.url):
                return process.pid
            if process.poll() is not None:
                break
            time.sleep(0.25)
        tail = self.log_file.read_text(errors="replace").strip().splitlines()[-5:]
        raise TimeoutError(
            f"the Prefect server did not answer at {self.url} (see {self.log_file}): "
            + " | ".join(tail)
        )

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the server ct started (its process group): SIGTERM, then SIGKILL. Returns its PID,
        or None when ct has no running server recorded."""
        pid = self.pid
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.pid is not None:
                time.sleep(0.1)
            if self.pid is None:
                break
        self.pid_file.unlink(missing_ok=True)
        return pid
