"""The warm process itself: import once, listen on the key's socket, fork per command.

The client side (is one running, start one, hand a command over, stop them) and the wire protocol
are in `flows/cli/warm.py`, which the command line imports; this module is what the warm process
runs (`python -m flows.cli.warm_server KEY`), and the one place that imports the command line's
entry point to run a command in a fork, so the command line and the warm process import each
other in no circle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import sysconfig
import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from flows.cli import warm
from flows.cli.warm import (
    IDLE_SECONDS,
    PRELOAD,
    ROOT,
    WARM_UPS,
    connect,
    learned_file,
    paths,
    receive,
    send,
)


def _installed(names: set[str]) -> list[str]:
    """The modules among `names` that are libraries (stdlib or site-packages), not ct's or the
    user's own code."""
    paths = sysconfig.get_paths()
    roots = tuple({paths[k] + os.sep for k in ("purelib", "platlib", "stdlib", "platstdlib")})
    return sorted(
        name for name in names if str(getattr(sys.modules[name], "__file__", "")).startswith(roots)
    )


def _import_all(names: Sequence[str]) -> None:
    """Import each module; one that starts a thread makes forks unsafe: it is struck from the
    learned list and this process ends (the command runs in its own process; the next one starts
    a warm process without it)."""
    import importlib

    for name in names:
        if name in sys.modules:
            continue
        with contextlib.suppress(Exception):
            importlib.import_module(name)
        if threading.active_count() > 1:
            kept = [m for m in _learned() if m != name]
            with contextlib.suppress(OSError):
                learned_file().write_text("".join(f"{m}\n" for m in kept))
        _single_threaded(name)


def _single_threaded(after: str) -> None:
    if threading.active_count() > 1:
        raise RuntimeError(f"{after} started a thread: forks would not be safe")


def _learned() -> list[str]:
    """The installed modules earlier commands imported (once each, in the order first seen)."""
    with contextlib.suppress(OSError):
        return list(dict.fromkeys(learned_file().read_text().split()))
    return []


def _reap(children: set[int]) -> None:
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                continue
        children.discard(pid)


def _watch(conn: socket.socket, finished: threading.Event) -> None:
    """In the fork, a thread: when the caller goes away (killed, or its terminal closed), the
    command is interrupted as by Ctrl-C, rather than running on for no one."""
    with contextlib.suppress(OSError):
        conn.recv(1)  # the caller sends nothing more: this returns when it closes its end
    if not finished.is_set():
        os.kill(os.getpid(), signal.SIGINT)


def _child(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> NoReturn:
    """In the fork: become the caller's process (fds, cwd, environment), run the command, report,
    and exit; never returns into the warm process's loop."""
    warm.CHILD = True
    finished = threading.Event()
    before = set(sys.modules)
    code = 1
    try:
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        with contextlib.suppress(Exception):
            sys.stdout.reconfigure(line_buffering=os.isatty(1))  # type: ignore[union-attr]
        send(conn, {"pid": os.getpid(), "warm": os.getppid()})
        threading.Thread(target=_watch, args=(conn, finished), daemon=True).start()
        code = _command(request["argv"])
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        code = 130
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is over: nothing to interrupt
        finished.set()
        _finish(conn, code, before)
    os._exit(code)


def _command(argv: list[str]) -> int:
    """Run the CLI as a fresh process would, with this caller's settings."""
    import prefect.context
    import prefect.logging.configuration

    prefect.context.refresh_global_settings_context()
    prefect.logging.configuration.setup_logging(incremental=False)
    from flows.cli.main import main

    sys.argv = [str(ROOT / "flows" / "ct.py"), *argv]
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def _finish(conn: socket.socket, code: int, before: set[str]) -> None:
    """What a process does at exit (Prefect drains its logs and events), then the exit code to the
    caller; the installed modules this command imported go to the learned list."""
    import atexit

    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    new = _installed(set(sys.modules) - before)
    with contextlib.suppress(OSError), open(learned_file(), "a") as learned:
        learned.write("".join(f"{m}\n" for m in new))
    with contextlib.suppress(OSError):
        send(conn, {"exit": code})


def serve(key: str) -> None:
    """Import, listen on the key's socket, fork per command; exit after IDLE_SECONDS idle."""
    sock_path, pid_file, _ = paths(key)
    started = time.perf_counter()
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    _import_all(PRELOAD)
    for name in WARM_UPS:
        module, _, function = name.partition(":")
        getattr(sys.modules[module], function)()
        _single_threaded(name)
    _import_all(_learned())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(sock_path))
    except OSError:
        if connect(sock_path) is not None:  # another warm process with this key won the race
            return
        sock_path.unlink(missing_ok=True)
        listener.bind(str(sock_path))
    listener.listen(16)
    listener.settimeout(1.0)
    pid_file.write_text(str(os.getpid()))
    print(f"warm process {key} ready in {time.perf_counter() - started:.1f} s", flush=True)

    def leave(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    children: set[int] = set()
    idle_since = time.monotonic()
    try:
        while True:
            _reap(children)
            if children:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_SECONDS:
                return
            try:
                conn, _ = listener.accept()
            except TimeoutError:  # idle: load what the last commands imported, for the next
                _import_all(_learned())
                continue
            with conn:
                conn.settimeout(None)
                request, fds = receive(conn, fds=3)
                if request is None or len(fds) != 3:
                    for fd in fds:
                        os.close(fd)
                    continue
                pid = os.fork()
                if pid == 0:
                    try:
                        listener.close()
                        _child(conn, request, fds)
                    finally:
                        os._exit(70)  # whatever happened, the fork never serves
                for fd in fds:
                    os.close(fd)
                children.add(pid)
                idle_since = time.monotonic()
    finally:
        listener.close()
        sock_path.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)


if __name__ == "__main__":  # `python -m flows.cli.warm_server KEY`: serve from the module itself
    from flows.cli import warm_server

    warm_server.serve(sys.argv[1])
