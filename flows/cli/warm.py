"""ct's warm process: Prefect, pandas, scikit-learn and ct imported once, a fork per command.

A CT step on 800 rows is about a second of work, but a fresh Python process spends 4-5 s importing
Prefect, pandas, pandera, scikit-learn, skops and great-expectations before it can start, and a
data scientist runs `python flows/ct.py run ...` dozens of times a day. So the first command
starts one process in the background that imports all of that and then waits on a Unix socket;
every later command parses its arguments and runs its pre-flight checks here (cheap), then hands
its argv, working directory, environment and its own stdin/stdout/stderr (file descriptors,
passed over the socket) to the warm process, which forks. The fork runs the command with the
same code path as an in-process run (`flows.cli.main.main`) on this terminal, and reports its exit
code. The fork gets a copy of everything imported; nothing the commands do is shared between
them, as between two fresh processes. This is the pattern of CPython's own
`multiprocessing.forkserver`, kept alive between commands.

What keeps it correct:
- **Same code.** A warm process is keyed by a fingerprint of ct's source files (path, size,
  modification time), the installed packages (the site-packages folder's modification time), the
  Python executable and the Prefect/ct environment variables read at import: change any and the
  next command starts a new warm process; an old one exits after `IDLE_SECONDS` without commands.
- **Fork safety.** Forking a process that runs threads (or has used OpenMP) can deadlock the
  child. The warm process only imports, never trains or predicts, and checks that it still has
  one thread before each fork; imports that start a thread end it (the command runs here instead).
- **Fresh settings.** The fork applies the caller's environment, then rebuilds Prefect's settings
  and logging configuration from it (`-v` and `PREFECT_*` take effect as in a fresh process).
- **Only the caller's user.** The socket lives in a folder only its owner can enter.
- **Learning what a command imports.** Libraries import more on first use (Prefect's engines,
  pandera's dask and hypothesis hooks, an estimator's library): each fork records the installed
  modules it imported, and the warm process imports them too, so the next command finds them
  loaded. ct's own modules are never learned this way (they are covered by the fingerprint).

`CT_WARM=0` runs every command in its own process, as before; `python flows/ct.py server stop`
stops the warm processes with the Prefect server. No heavy import here: the CLI uses this before
anything heavy is loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flows.cli.prefect_server import alive

ROOT = Path(__file__).resolve().parents[2]
#: ct's source folders whose files key a warm process.
SOURCES = ("flows", "tasks", "blocks", "webhooks")
#: What the warm process imports before its first fork, and the warm-ups it calls (each must
#: leave it single-threaded).
PRELOAD = ("flows.cli.commands", "flows.ct", "flows.backtest", "great_expectations")
WARM_UPS = ("tasks.drift.kernels:warm_up",)
#: Seconds a warm process waits for a command before it exits.
IDLE_SECONDS = float(os.environ.get("CT_WARM_IDLE", "900"))
#: Seconds the first command waits for a new warm process to be ready before running itself.
START_TIMEOUT = 120.0
#: Environment variables that the CLI sets per command: not part of the key (the fork applies them).
PER_COMMAND = frozenset({"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"})
_HEADER = struct.Struct("!Q")

#: True in a fork of the warm process (the command runs here: no hand-over, no second timing line).
CHILD = False


def enabled() -> bool:
    return os.environ.get("CT_WARM", "1").lower() not in {"0", "false", "no", "off"} and not CHILD


def folder() -> Path:
    """The per-user folder of sockets, PID files and logs (short: a socket path has ~100 bytes)."""
    path = Path(tempfile.gettempdir()) / f"ct-warm-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{path} must belong to you alone (mode 700): remove it")
    return path


def fingerprint(root: Path = ROOT) -> str:
    """What a warm process was started with; a different one needs a new process."""
    files = []
    for name in SOURCES:
        for path in sorted((root / name).rglob("*.py")):
            info = path.stat()
            files.append((str(path.relative_to(root)), info.st_size, info.st_mtime_ns))
    purelib = Path(sysconfig.get_paths()["purelib"])
    env = sorted(
        (k, v)
        for k, v in os.environ.items()
        if k.startswith(("PREFECT_", "CT_", "PYTHON")) and k not in PER_COMMAND
    )
    blob = json.dumps(
        [sys.executable, str(root), files, purelib.stat().st_mtime_ns, env, sys.path[1:]]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _root_key() -> str:
    return hashlib.sha256(f"{sys.executable}|{ROOT}".encode()).hexdigest()[:8]


def paths(key: str) -> tuple[Path, Path, Path]:
    """(socket, PID file, log) of the warm process with this key."""
    base = folder() / f"{_root_key()}-{key}"
    return base.with_suffix(".sock"), base.with_suffix(".pid"), base.with_suffix(".log")


def learned_file() -> Path:
    return folder() / f"{_root_key()}-learned.txt"


# ---------------------------------------------------------------- client: the CLI's side
def connect(sock_path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(sock_path))
    except OSError:
        conn.close()
        return None
    return conn


def send(conn: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    body = json.dumps(message).encode()
    header = _HEADER.pack(len(body))
    if fds:
        socket.send_fds(conn, [header], list(fds))
    else:
        conn.sendall(header)
    conn.sendall(body)


def receive(conn: socket.socket, fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One message (None when the other side closed first), and any descriptors sent with it."""
    received: list[int] = []
    if fds:
        data, received, _, _ = socket.recv_fds(conn, _HEADER.size, fds)
    else:
        data = conn.recv(_HEADER.size)
    while data and len(data) < _HEADER.size:
        more = conn.recv(_HEADER.size - len(data))
        if not more:
            break
        data += more
    if len(data) < _HEADER.size:
        return None, received
    (size,) = _HEADER.unpack(data)
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            return None, received
        body += chunk
    return json.loads(body), received


def _start(key: str) -> subprocess.Popen[bytes]:
    log = paths(key)[2]
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.cli.warm_server", key],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command, and not in its terminal's group
        )


def _ready(key: str, notice: Any) -> socket.socket | None:
    """A connection to the warm process with this key, started (and waited for) if need be;
    None if it could not start (the command then runs in its own process)."""
    sock_path = paths(key)[0]
    conn = connect(sock_path)
    if conn is not None:
        return conn
    notice(
        "ct: starting a warm process (imports once, ~5 s; later commands skip that). "
        "`python flows/ct.py server stop` ends it, CT_WARM=0 turns it off."
    )
    process = _start(key)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        conn = connect(sock_path)
        if conn is not None:
            return conn
        if process.poll() is not None:  # it failed (its log says why); maybe another won
            return connect(sock_path)
        time.sleep(0.05)
    return None


def hand_over(argv: Sequence[str], notice: Any, *, verbose: bool = False) -> int | None:
    """Run the command in a fork of the warm process, on this terminal; its exit code, or None
    when no warm process could take it (the caller then runs it itself)."""
    try:
        key = fingerprint()
        conn = _ready(key, notice)
    except OSError:
        return None
    if conn is None:
        return None
    with conn:
        request = {
            "argv": list(argv),
            "cwd": os.getcwd(),
            "env": dict(os.environ),
        }
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            send(conn, request, fds=[0, 1, 2])
            started, _ = receive(conn)
        except OSError:
            return None
        if started is None:  # the warm process refused (e.g. it found a thread): run here
            return None
        pid = int(started["pid"])
        if verbose:
            notice(f"ct: running in a fork (pid {pid}) of the warm process (pid {started['warm']})")
        return _wait(conn, pid)


def _wait(conn: socket.socket, pid: int) -> int:
    """The fork's exit code; Ctrl-C and SIGTERM here are passed on to it (it is not in this
    terminal's process group)."""

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                done, _ = receive(conn)
                break
            except InterruptedError:
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if done is None:
        print("ct: the warm process ended the command without an exit code", file=sys.stderr)
        return 1
    return int(done["exit"])


def running(where: Path | None = None) -> list[int]:
    """The PIDs of every warm process of this user that still lives (in `where`, a folder a
    caller's TMPDIR made, else in this process's); the PID files of those that ended are dropped."""
    found = []
    for pid_file in sorted((where or folder()).glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and alive(pid):
            found.append(pid)
        else:
            pid_file.unlink(missing_ok=True)
    return found


def stop_all(timeout: float = 10.0, where: Path | None = None) -> list[int]:
    """Stop every warm process of this user (SIGTERM, then SIGKILL); commands already running in
    their forks finish. Returns their PIDs."""
    pids = running(where)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    running(where)  # drops the PID files of those that ended
    return pids
