"""The commands of `python flows/ct.py`, run after the arguments are parsed and pre-flight passed.

Every command runs the real flows. Before the first flow runs, `prefect_backend` picks the Prefect
backend and says which: your configured server (PREFECT_API_URL), else the local server (started
in the background by the first command that needs it, then reused), or with `--prefect ephemeral`
a temporary in-process one.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from blocks.errors import RegistryError
from flows.cli import warm
from flows.cli.console import Output
from flows.cli.prefect_server import RECORDER_ENV, LocalServer, answers
from flows.cli.preflight import load_config
from tasks.config import CTConfig
from tasks.errors import CTError
from tasks.format import fmt
from tasks.report import SHOWN_COLUMNS, backtest_table, shown_headings, summarize_backtest


class HideExpectedTracebacks(logging.Filter):
    """ct's own errors already say what is wrong: drop their tracebacks from Prefect's run logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], CTError | RegistryError):
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_expected_errors() -> None:
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(HideExpectedTracebacks())
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO is internals


# ---------------------------------------------------------------- Prefect backend
def _ephemeral_server_settings() -> dict[Any, Any]:
    """`flows.cli.prefect_server.RECORDER_ENV` as settings, passed on to the server process ct starts."""
    import prefect.settings as ps

    return {getattr(ps, name): value for name, value in RECORDER_ENV.items()}


@contextlib.contextmanager
def prefect_backend(mode: str, out: Output) -> Iterator[str]:
    """Use the configured server, else the local one (started in the background the first time,
    then reused by every command), or, by flag, a temporary in-process server."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )

    _quiet_expected_errors()
    # No telemetry (there may be no internet), and no flow heartbeats: they detect crashed runs
    # for workers, but here this process is the run, and each heartbeat thread costs ~1 s to join.
    updates: dict[Any, Any] = {
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
    }
    configured = PREFECT_API_URL.value()
    restore: set[Any] = set()
    if mode not in {"auto", "ephemeral"}:
        updates[PREFECT_API_URL] = mode
        label = f"Prefect server at {mode} (--prefect)"
    elif mode == "ephemeral":
        restore.add(PREFECT_API_URL)
        label = "a temporary Prefect server (--prefect ephemeral)"
    elif configured:
        label = f"Prefect server at {configured} (from your Prefect settings)"
    else:
        server = LocalServer.here()
        updates[PREFECT_API_URL] = server.url
        ui = server.url.removesuffix("/api")
        if answers(server.url):
            label = f"the local Prefect server at {ui} (runs are kept in its UI)"
        else:
            out.line(
                f"Prefect: no server answers at {ui}; starting one in the background (the first "
                f"time takes ~20 s; its log: {server.log_file})"
            )
            pid = _start_server(server, out)
            label = (
                f"started the local Prefect server at {ui} (pid {pid}); later commands reuse "
                "it. Stop it with `python flows/ct.py server stop`"
            )
    if PREFECT_API_URL in restore or not updates.get(PREFECT_API_URL, configured):
        updates |= _ephemeral_server_settings()
    with temporary_settings(updates=updates, restore_defaults=restore):
        yield label


def _start_server(server: LocalServer, out: Output) -> int:
    try:
        if out.live:
            with out.console.status("Starting the local Prefect server..."):
                return server.start()
        return server.start()
    except TimeoutError as exc:
        raise CTError(str(exc)) from exc


def _cmd_server(args: argparse.Namespace, out: Output) -> int:
    server = LocalServer.here()
    ui = server.url.removesuffix("/api")
    pid = server.pid
    up = answers(server.url)
    if args.action == "status":
        if up:
            owner = f"pid {pid}, started by ct" if pid else "not started by ct"
            out.line(f"A Prefect server answers at {ui} ({owner}); its UI shows the runs.")
        else:
            out.line(f"No Prefect server answers at {ui}; the next command starts one.")
        ready = warm.running()
        if ready:
            pids = ", ".join(map(str, ready))
            out.line(
                f"Warm processes (pid {pids}): commands fork from them instead of importing; "
                f"each exits after {warm.IDLE_SECONDS / 60:.0f} min without commands."
            )
        else:
            out.line("No warm process: the next command starts one (unless CT_WARM=0).")
        return 0
    if args.action == "start":
        if up:
            out.line(f"A Prefect server already answers at {ui}.")
            return 0
        pid = _start_server(server, out)
        out.line(f"Started the local Prefect server at {ui} (pid {pid}; log {server.log_file}).")
        return 0
    ended = warm.stop_all()
    if ended:
        out.line(f"Stopped ct's warm processes (pid {', '.join(map(str, ended))}).")
    stopped = server.stop()
    if stopped is not None:
        out.line(f"Stopped the local Prefect server (pid {stopped}).")
    elif up:
        out.line(
            f"The server at {ui} was not started by ct (no {server.pid_file}); stop it where it "
            "was started."
        )
        return 1
    else:
        out.line(f"No Prefect server is running at {ui}.")
    return 0


# ---------------------------------------------------------------- commands
def _warm_up(config: CTConfig) -> None:
    """Start the quality suite's background process first, so that its seconds of imports overlap
    this process's (Prefect, scikit-learn) instead of following them."""
    if config.validation.quality_suite:
        from tasks import gx_suite

        gx_suite.warm_up()


def _backtest(
    files: list[str], config: CTConfig, folder: Path, args: argparse.Namespace, out: Output
) -> list[dict[str, Any]]:
    """Run the backtest flow with ct's progress display."""
    _warm_up(config)
    with prefect_backend(args.prefect, out) as label:
        out.line(f"Prefect: {label}")
        from flows.backtest import backtest

        with out.batches(len(files), "backtest"):
            return backtest(files, config, str(folder), plots=args.plots)


def _out_dir(out: str | None) -> Path:
    return (
        Path(out) if out else Path(".ct") / "backtests" / datetime.now().strftime("%Y%m%d-%H%M%S")
    )


def _print_backtest(rows: list[dict[str, Any]], folder: Path, out: Output) -> None:
    table = Table(title="Backtest: one CT step per batch", title_justify="left")
    metric = str(rows[-1]["metric_name"]) if rows else "accuracy"
    columns, headers = list(SHOWN_COLUMNS), shown_headings(metric)
    for header in headers:
        table.add_column(header, justify="right" if header not in {"decision"} else "left")
    failures: list[str] = []
    for row in rows:
        cells = []
        for column in columns:
            value = row[column]
            if column == "champion_version" and value is not None:
                value = f"v{value}"
            if column == "outcome" and str(value).startswith(("failed:", "refused:")):
                kind, _, why = str(value).partition(": ")
                failures.append(f"batch {row['batch']} {kind}: {why}")
                value = f"{kind.upper()} (below)"
            cells.append(fmt(value))
        table.add_row(*cells)
    out.print(table)
    for line in failures:
        out.warn(line)
    out.line(summarize_backtest(backtest_table(rows)).sentence())
    out.line(
        f"Wrote {folder / 'backtest.csv'} and {folder / 'backtest.png'}; registry in "
        f"{folder / 'registry'}."
    )


def _cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from tasks.streams import get_stream, write_stream

    folder = _out_dir(args.out)
    stream = get_stream(args.stream)
    files = write_stream(
        args.stream, folder / "data", batches=args.batches, rows=args.rows, seed=args.seed
    )
    overrides: dict[str, Any] = {"state_dir": str(folder)}
    if args.stream != "demo":
        base = CTConfig.from_yaml(args.config).dataset if args.config else None
        overrides["dataset"] = {
            **(base.model_dump() if base else {}),
            "name": base.name if base else args.stream,
            "target": stream.target,
            "time_column": stream.time_column,
        }
    config = load_config(args.config, **overrides)
    out.line(
        f"Stream {stream.name!r} ({stream.description}): {len(files)} batches of "
        f"{args.rows or stream.rows} rows in {folder / 'data'}"
    )
    rows = _backtest([str(f) for f in files], config, folder, args, out)
    _print_backtest(rows, folder, out)
    return 0


def _cmd_demo_data(args: argparse.Namespace, out: Output) -> int:
    from tasks.streams import write_stream

    files = write_stream(
        args.stream, args.out_dir, batches=args.batches, rows=args.rows, seed=args.seed
    )
    out.line(f"Wrote {len(files)} batches to {args.out_dir}: {files[0].name} ... {files[-1].name}")
    return 0


def _cmd_run(args: argparse.Namespace, out: Output) -> int:
    overrides = {"state_dir": args.state_dir} if args.state_dir else {}
    config = load_config(args.config, **overrides)
    _warm_up(config)
    from flows.ct import continuous_training

    with prefect_backend(args.prefect, out) as label:
        out.line(f"Prefect: {label}")
        with out.step(f"CT step on {args.data}"):
            step = continuous_training(args.data, config)
    drift = (
        "-"
        if step.drift is None
        else ("DRIFT " + ", ".join(step.drifted_columns) if step.drift else "none")
    )
    out.line(
        f"{step.source}: {step.rows} rows | champion before: {fmt(step.champion_version)} "
        f"({step.metric_name} on this batch {fmt(step.champion_metric)}) | drift: {drift} | "
        f"gate p: {fmt(step.p_value)} | {step.outcome} | champion now: {fmt(step.champion_after)}"
    )
    if step.new_classes:
        out.line(
            f"New classes {step.new_classes}: kept; the candidate learns them "
            "(ct.label.new_class emitted)."
        )
    if step.quarantined:
        out.line(
            f"{step.quarantined} rows quarantined (kept with the reason in {step.quarantine_path})."
        )
    return 0


def _cmd_backtest(args: argparse.Namespace, out: Output) -> int:
    from flows.backtest import batch_files

    folder = _out_dir(args.out)
    base = CTConfig.from_yaml(args.config) if args.config else None
    dataset: dict[str, Any] = {
        "name": base.dataset.name
        if base
        else Path(args.data).stem.replace(" ", "_")[:64] or "data",
        "target": args.target,
        "time_column": args.order_by,
    }
    if base:
        dataset = {
            **base.dataset.model_dump(),
            **{k: v for k, v in dataset.items() if v is not None},
        }
    else:
        dataset |= {"numeric": None, "categorical": None}
    config = load_config(args.config, state_dir=str(folder), dataset=dataset)
    files = batch_files(
        args.data, out_dir=folder, batch_rows=args.batch_rows, order_by=args.order_by
    )
    out.line(f"{args.data}: {len(files)} batches")
    rows = _backtest(files, config, folder, args, out)
    _print_backtest(rows, folder, out)
    return 0


def _cmd_contract(args: argparse.Namespace, out: Output) -> int:
    import json

    from flows.ct import continuous_training
    from tasks.release import open_registry

    overrides = {"state_dir": args.state_dir} if args.state_dir else {}
    config = load_config(args.config, **overrides)
    if args.action == "show":
        name = args.name or config.dataset.name
        registry = open_registry(config)
        champion = registry.champion(name)
        if champion is None:
            raise CTError(f"{name}: no champion yet, so no contract; run a CT step first")
        out.line(f"Contract of {name} (champion v{champion.version}):")
        out.json(json.dumps(champion.metadata["schema"]["spec"]))
        for record in registry.read_log(name, "contract", last=5):
            out.line(
                f"  {record['at']}: {record['outcome']} {record.get('batch_id', '')} "
                f"{record.get('rule', record.get('reason', ''))}"
            )
        return 0
    with prefect_backend(args.prefect, out) as label:
        out.line(f"Prefect: {label}")
        step = continuous_training(args.data, config, accept_contract=args.reason)
    if not step.promoted:
        out.line(
            f"{step.source}: the model trained under the new contract did not beat the floor "
            f"(gate p {fmt(step.p_value)}); the contract is unchanged. Try a larger batch."
        )
        return 1
    out.line(
        f"{step.source}: new contract accepted; champion now v{step.champion_after} "
        f"(was {fmt(step.champion_version)}). Reason recorded in the audit log."
    )
    return 0


def _registry(args: argparse.Namespace) -> Any:  # a ModelRegistry
    from blocks.registry import ModelRegistry
    from tasks.release import open_registry

    if args.block:
        return ModelRegistry.load(args.block)
    if args.registry:
        return ModelRegistry(url=args.registry)
    return open_registry(load_config(args.config))


def _registry_list(registry: Any, args: argparse.Namespace, out: Output) -> int:
    """`registry list`: every version with its aliases, when it was made and the test it passed."""
    names = [args.name] if args.name else registry.names()
    if not names:
        out.line(f"No models in {registry.url} yet.")
        return 0
    table = Table(title=f"Registry {registry.url}", title_justify="left")
    for header in ("model", "version", "alias", "created (UTC)", "gate", "p", "batch"):
        table.add_column(header)
    for name in names:
        aliases = registry.aliases(name)
        for version in registry.versions(name):
            mv = registry.get(name, version=version)
            decision = mv.metadata.get("decision") or {}
            marks = ", ".join(a for a, v in aliases.items() if v == version)
            table.add_row(
                name,
                f"v{version}",
                marks,
                mv.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                f"{decision.get('test', '-')} on {decision.get('metric', '-')}",
                fmt(decision.get("p_value")),
                str(mv.metadata["lineage"].get("batch_id", "-")),
            )
    out.print(table)
    return 0


def _registry_move(registry: Any, args: argparse.Namespace, out: Output) -> int:
    """`registry promote|rollback`: a human moves the champion (compare-and-swap), with the
    reason as the proof, and delivery hears of it as of any promotion."""
    from blocks.proof import Proof

    with prefect_backend(args.prefect, out):
        from prefect.events import emit_event

        from tasks.release import model_resource

        if args.action == "promote":
            current = registry.champion(args.name)
            expected = (
                args.expected
                if args.expected is not None
                else (current.version if current else None)
            )
            proof = Proof(by="human", action="manual promotion", passed=True, reason=args.reason)
            entry = registry.promote(
                args.name, args.version, expected_champion=expected, proof=proof
            )
        else:
            entry = registry.rollback(args.name, reason=args.reason)
        emit_event(
            event="ct.model.promoted",
            resource=model_resource(args.name, origin="cli"),
            payload={
                "name": args.name,
                "version": entry.version,
                "previous_champion": entry.previous,
                "decision": {"promote": True, "manual": True, "reason": entry.reason},
                "proof": None if entry.proof is None else entry.proof.model_dump(mode="json"),
            },
        )
    out.line(f"{args.name}: champion v{entry.previous} -> v{entry.version} ({entry.reason}).")
    return 0


def _cmd_registry(args: argparse.Namespace, out: Output) -> int:
    import json

    registry = _registry(args)
    if args.action == "list":
        return _registry_list(registry, args, out)
    if args.action == "show":
        mv = registry.get(args.name, version=args.version, alias=args.alias)
        out.json(json.dumps(mv.metadata, default=str))
        return 0
    return _registry_move(registry, args, out)


COMMANDS: dict[str, Callable[[argparse.Namespace, Output], int]] = {
    "demo": _cmd_demo,
    "demo-data": _cmd_demo_data,
    "run": _cmd_run,
    "backtest": _cmd_backtest,
    "registry": _cmd_registry,
    "contract": _cmd_contract,
    "server": _cmd_server,
}
