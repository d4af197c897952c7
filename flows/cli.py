"""The `python flows/ct.py` command line: the demo backtest, one CT step, a backtest of your data.

Every command runs the real flows. Before the first flow runs, the CLI picks the Prefect backend and
says which: your configured server (PREFECT_API_URL), else a local server on 127.0.0.1:4200 if one
answers, else a temporary (ephemeral) one, which costs several seconds of start-up per command.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from blocks.registry import RegistryError
from flows.prefect_server import RECORDER_ENV
from tasks.config import CTConfig
from tasks.errors import CTError
from tasks.format import fmt
from tasks.report import SHOWN_COLUMNS, backtest_table, shown_headings, summarize_backtest

LOCAL_SERVER = "http://127.0.0.1:4200/api"
_WIDTH = None if sys.stdout.isatty() else 120  # pipes and CI get a readable, unwrapped table
console = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)

EPILOG = """\
examples:
  python flows/ct.py                                   backtest the built-in demo stream
  python flows/ct.py demo-data demo/                   write the demo stream as one CSV per batch
  python flows/ct.py run --data demo/batch-01.csv      one CT step (the first one trains a champion)
  python flows/ct.py run --data demo/batch-02.csv      ...then drift, retrain, gate, promote or reject
  python flows/ct.py backtest --data sales.parquet --target churned --order-by ts --batch-rows 5000
  python flows/ct.py contract show demo                 the champion's data contract
  python flows/ct.py contract accept --data new.csv --reason "upstream renamed age"
                                                       after refused batches: a new contract

state (registry, history) lives in .ct/ unless the config's state_dir says otherwise.
Prefect: start a server once with `make server` (127.0.0.1:4200) and every command reuses it
(faster, and the runs stay in its UI); otherwise each command starts a temporary server.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python flows/ct.py",
        description=(
            "Continuous training on Prefect: validate a new labelled batch, measure drift against "
            "the champion, retrain, promote only when a paired test on unseen rows says the "
            "candidate is better. With no command: backtest the built-in demo stream."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    prefect = [_prefect_option()]

    demo = commands.add_parser(
        "demo",
        parents=prefect,
        help="backtest CT over the built-in demo stream (the default) or another generated one",
        description="Generate a stream (the demo: known drift at batch 6 and from batch 9; or "
        "one shaped like real data, --stream) and backtest the CT policy over it in a fresh "
        "registry.",
    )
    _demo_options(demo)
    demo.add_argument("--out", metavar="DIR", help="output folder (default .ct/backtests/<time>)")
    demo.add_argument("--config", metavar="YAML", help="CTConfig file (default: built-in)")

    data = commands.add_parser(
        "demo-data",
        help="write a generated stream as one CSV per batch",
        description="Write batch-01.csv, batch-02.csv, ... to try `run` and `backtest` on files.",
    )
    data.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the CSV files into")
    _demo_options(data)

    run = commands.add_parser(
        "run",
        parents=prefect,
        help="run one CT step on a labelled batch",
        description="Load, validate, measure drift, retrain, gate, and register/promote or "
        "reject. The first step on an empty registry trains the first champion, which must beat "
        "the majority class. Exit code 0 whether promoted or rejected; 1 on bad input.",
    )
    run.add_argument("--data", required=True, metavar="PATH", help="CSV or Parquet file")
    run.add_argument(
        "--config", metavar="YAML", help="CTConfig file (default: built-in demo config)"
    )
    run.add_argument("--state-dir", metavar="DIR", help="override state_dir (default .ct)")

    bt = commands.add_parser(
        "backtest",
        parents=prefect,
        help="replay a CSV/Parquet history in time order, one CT step per batch",
        description="Cut the data into batches (or take a folder's files as batches), then run "
        "the same CT step on each, in a fresh registry inside --out. Writes backtest.csv and "
        "backtest.png (CT vs the never-updated first model).",
    )
    bt.add_argument(
        "--data", required=True, metavar="PATH", help="CSV/Parquet file, or a folder of them"
    )
    bt.add_argument(
        "--target",
        required=True,
        metavar="COL",
        help="target column: labels of any type (classification) or numbers (regression); "
        "the task is inferred unless the config sets dataset.task",
    )
    bt.add_argument(
        "--order-by", metavar="COL", help="time column to sort by (default: file order)"
    )
    bt.add_argument(
        "--batch-rows", type=int, default=1000, metavar="N", help="rows per batch (default 1000)"
    )
    bt.add_argument("--out", metavar="DIR", help="output folder (default .ct/backtests/<time>)")
    bt.add_argument(
        "--config", metavar="YAML", help="CTConfig file; --target/--order-by override it"
    )
    contract = commands.add_parser(
        "contract",
        help="show the champion's data contract, or accept a new one from a batch",
        description="The contract is what a batch must be for the champion to read it: columns, "
        "types, the task and its labels, and the rules you declared (closed classes, bounds, "
        "non-null features). Values outside what the champion saw are drift, never refused. "
        "When batches are refused because the data changed for good (a column renamed, a type "
        "changed), `accept` takes a new contract from a batch that shows the change: it trains a "
        "model on it under the new contract, gates it against the floor as for a first model, "
        "and promotes it; the reason goes to the champion's audit log.",
    )
    steps = contract.add_subparsers(dest="action", metavar="ACTION", required=True)
    show_contract = steps.add_parser("show", help="the champion's contract as JSON")
    show_contract.add_argument("name", nargs="?", help="model name (default: the config's)")
    show_contract.add_argument("--config", metavar="YAML", help="CTConfig file")
    show_contract.add_argument("--state-dir", metavar="DIR", help="override state_dir")
    accept = steps.add_parser(
        "accept", parents=prefect, help="accept a new contract from a batch (a CT step)"
    )
    accept.add_argument("--data", required=True, metavar="PATH", help="CSV or Parquet file")
    accept.add_argument(
        "--reason", required=True, help="why the old contract no longer holds (audit log)"
    )
    accept.add_argument("--config", metavar="YAML", help="CTConfig file")
    accept.add_argument("--state-dir", metavar="DIR", help="override state_dir")
    reg = commands.add_parser(
        "registry",
        help="list, show, promote or roll back model versions",
        description="Inspect and operate the model registry. Promotions are compare-and-swap: "
        "they fail with a clear message if the champion moved meanwhile.",
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--registry",
        metavar="URL",
        help="registry folder or URL (default: from --config, else .ct/registry)",
    )
    where.add_argument(
        "--block", metavar="NAME", help="a saved ct-model-registry block to use instead"
    )
    where.add_argument(
        "--config", metavar="YAML", help="CTConfig file whose registry settings to use"
    )
    actions = reg.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", parents=[where], help="versions of every model (or --name)"
    )
    listing.add_argument("--name", help="only this model")
    show = actions.add_parser("show", parents=[where], help="one version's metadata as JSON")
    show.add_argument("name")
    pick = show.add_mutually_exclusive_group()
    pick.add_argument("--version", type=int, help="version number")
    pick.add_argument("--alias", default=None, help="alias (default: champion)")
    promote = actions.add_parser(
        "promote", parents=[where, *prefect], help="make a version the champion (compare-and-swap)"
    )
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.add_argument(
        "--expected",
        type=int,
        metavar="N",
        help="the champion you expect now (default: whatever it is when read)",
    )
    promote.add_argument("--reason", default="manual promotion", help="why, for the audit log")
    rollback = actions.add_parser(
        "rollback", parents=[where, *prefect], help="make the previous champion the champion again"
    )
    rollback.add_argument("name")
    rollback.add_argument("--reason", default="manual rollback", help="why, for the audit log")
    parser.add_argument("--version", action="version", version="ct 0.1.0")
    return parser


def _prefect_option() -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--prefect",
        default="auto",
        metavar="MODE",
        help="Prefect backend: 'auto' (PREFECT_API_URL, else a server on 127.0.0.1:4200 if one "
        "answers, else ephemeral), 'ephemeral' (a temporary server), or an API URL",
    )
    return shared


#: The generated streams (tasks/streams.py), named here so that --help imports nothing heavy;
#: tests/flows/test_streams.py checks that the two lists agree.
STREAM_NAMES = (
    "demo",
    "range-growth",
    "indicator",
    "new-class",
    "string-labels",
    "seven-classes",
    "regression",
)


def _demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stream",
        default="demo",
        choices=STREAM_NAMES,
        metavar="NAME",
        help="which generated stream (default demo): "
        + ", ".join(STREAM_NAMES)
        + "; each is described in tasks/streams.py",
    )
    parser.add_argument(
        "--batches", type=int, metavar="N", help="batches (default: the stream's, 12 for demo)"
    )
    parser.add_argument(
        "--rows", type=int, metavar="N", help="rows per batch (default: the stream's, 800 for demo)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


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
def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def ephemeral_server_settings() -> dict[Any, Any]:
    """`flows.prefect_server.RECORDER_ENV` as settings, passed on to the server process ct starts."""
    import prefect.settings as ps

    return {getattr(ps, name): value for name, value in RECORDER_ENV.items()}


@contextlib.contextmanager
def prefect_backend(mode: str = "auto") -> Iterator[str]:
    """Use the configured server, else a local one that answers, else an ephemeral server."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )

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
    elif _answers(LOCAL_SERVER):
        updates[PREFECT_API_URL] = LOCAL_SERVER
        label = f"the local Prefect server at {LOCAL_SERVER} (runs are kept in its UI)"
    else:
        label = (
            "a temporary Prefect server (ephemeral: several seconds of start-up; start one with "
            "`make server` and every command reuses it and keeps its runs)"
        )
    if PREFECT_API_URL in restore or not updates.get(PREFECT_API_URL, configured):
        updates |= ephemeral_server_settings()
    with temporary_settings(updates=updates, restore_defaults=restore):
        yield label


# ---------------------------------------------------------------- commands
def _config(path: str | None, **overrides: Any) -> CTConfig:
    config = CTConfig.from_yaml(path) if path else CTConfig()
    if not overrides:
        return config
    data = config.model_dump()
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if key:
            data[section][key] = value
        else:
            data[section] = value
    return CTConfig.model_validate(data)


def _out_dir(out: str | None) -> Path:
    return (
        Path(out) if out else Path(".ct") / "backtests" / datetime.now().strftime("%Y%m%d-%H%M%S")
    )


def _print_backtest(rows: list[dict[str, Any]], out: Path) -> None:
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
    console.print(table)
    for line in failures:
        err.print(f"[red]{line}[/]", soft_wrap=True)
    console.print(summarize_backtest(backtest_table(rows)).sentence(), soft_wrap=True)
    console.print(
        f"Wrote {out / 'backtest.csv'} and {out / 'backtest.png'}; registry in {out / 'registry'}."
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from flows.backtest import backtest
    from tasks.streams import get_stream, write_stream

    out = _out_dir(args.out)
    stream = get_stream(args.stream)
    files = write_stream(
        args.stream, out / "data", batches=args.batches, rows=args.rows, seed=args.seed
    )
    overrides: dict[str, Any] = {"state_dir": str(out)}
    if args.stream != "demo":
        base = CTConfig.from_yaml(args.config).dataset if args.config else None
        overrides["dataset"] = {
            **(base.model_dump() if base else {}),
            "name": base.name if base else args.stream,
            "target": stream.target,
            "time_column": stream.time_column,
        }
    config = _config(args.config, **overrides)
    console.print(
        f"Stream {stream.name!r} ({stream.description}): {len(files)} batches of "
        f"{args.rows or stream.rows} rows in {out / 'data'}"
    )
    with prefect_backend(args.prefect) as label:
        console.print(f"Prefect: {label}")
        rows = backtest([str(f) for f in files], config, str(out))
    _print_backtest(rows, out)
    return 0


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from tasks.streams import write_stream

    files = write_stream(
        args.stream, args.out_dir, batches=args.batches, rows=args.rows, seed=args.seed
    )
    console.print(
        f"Wrote {len(files)} batches to {args.out_dir}: {files[0].name} ... {files[-1].name}"
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from flows.ct import continuous_training

    overrides = {"state_dir": args.state_dir} if args.state_dir else {}
    config = _config(args.config, **overrides)
    with prefect_backend(args.prefect) as label:
        console.print(f"Prefect: {label}")
        step = continuous_training(args.data, config)
    drift = (
        "-"
        if step.drift is None
        else ("DRIFT " + ", ".join(step.drifted_columns) if step.drift else "none")
    )
    console.print(
        f"{step.source}: {step.rows} rows | champion before: {fmt(step.champion_version)} "
        f"({step.metric_name} on this batch {fmt(step.champion_metric)}) | drift: {drift} | "
        f"gate p: {fmt(step.p_value)} | {step.outcome} | champion now: {fmt(step.champion_after)}"
    )
    if step.new_classes:
        console.print(
            f"New classes {step.new_classes}: kept; the candidate learns them "
            "(ct.label.new_class emitted)."
        )
    if step.quarantined:
        console.print(
            f"{step.quarantined} rows quarantined (kept with the reason in {step.quarantine_path})."
        )
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from flows.backtest import backtest, batch_files

    out = _out_dir(args.out)
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
    config = _config(args.config, state_dir=str(out), dataset=dataset)
    files = batch_files(args.data, out_dir=out, batch_rows=args.batch_rows, order_by=args.order_by)
    console.print(f"{args.data}: {len(files)} batches")
    with prefect_backend(args.prefect) as label:
        console.print(f"Prefect: {label}")
        rows = backtest(files, config, str(out))
    _print_backtest(rows, out)
    return 0


def _cmd_contract(args: argparse.Namespace) -> int:
    import json

    from flows.ct import continuous_training
    from tasks.release import open_registry

    overrides = {"state_dir": args.state_dir} if args.state_dir else {}
    config = _config(args.config, **overrides)
    if args.action == "show":
        name = args.name or config.dataset.name
        registry = open_registry(config)
        champion = registry.champion(name)
        if champion is None:
            raise CTError(f"{name}: no champion yet, so no contract; run a CT step first")
        console.print(f"Contract of {name} (champion v{champion.version}):")
        console.print_json(json.dumps(champion.metadata["schema"]["spec"]))
        for record in registry.read_log(name, "contract", last=5):
            console.print(
                f"  {record['at']}: {record['outcome']} {record.get('batch_id', '')} "
                f"{record.get('rule', record.get('reason', ''))}"
            )
        return 0
    with prefect_backend(args.prefect) as label:
        console.print(f"Prefect: {label}")
        step = continuous_training(args.data, config, accept_contract=args.reason)
    if not step.promoted:
        console.print(
            f"{step.source}: the model trained under the new contract did not beat the floor "
            f"(gate p {fmt(step.p_value)}); the contract is unchanged. Try a larger batch."
        )
        return 1
    console.print(
        f"{step.source}: new contract accepted; champion now v{step.champion_after} "
        f"(was {fmt(step.champion_version)}). Reason recorded in the audit log."
    )
    return 0


def _registry(args: argparse.Namespace) -> Any:
    from blocks.registry import ModelRegistry
    from tasks.release import open_registry

    if args.block:
        return ModelRegistry.load(args.block)
    if args.registry:
        return ModelRegistry(url=args.registry)
    return open_registry(_config(args.config))


def _cmd_registry(args: argparse.Namespace) -> int:
    import json

    registry = _registry(args)
    if args.action == "list":
        names = [args.name] if args.name else registry.names()
        if not names:
            console.print(f"No models in {registry.url} yet.")
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
        console.print(table)
        return 0
    if args.action == "show":
        mv = registry.get(args.name, version=args.version, alias=args.alias)
        console.print_json(json.dumps(mv.metadata, default=str))
        return 0
    with prefect_backend(args.prefect):
        from prefect.events import emit_event

        from tasks.release import model_resource

        if args.action == "promote":
            current = registry.champion(args.name)
            expected = (
                args.expected
                if args.expected is not None
                else (current.version if current else None)
            )
            entry = registry.promote(
                args.name, args.version, expected_champion=expected, reason=args.reason
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
            },
        )
    console.print(f"{args.name}: champion v{entry.previous} -> v{entry.version} ({entry.reason}).")
    return 0


COMMANDS = {
    "demo": _cmd_demo,
    "demo-data": _cmd_demo_data,
    "run": _cmd_run,
    "backtest": _cmd_backtest,
    "registry": _cmd_registry,
    "contract": _cmd_contract,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; ct's own errors end as one line on stderr and exit code 1."""
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0] not in COMMANDS and words[0] not in {"-h", "--help", "--version"}):
        words = ["demo", *words]  # no command: the demo backtest, with any options given
    args = _parser().parse_args(words)
    started = time.perf_counter()
    _quiet_expected_errors()
    try:
        code = COMMANDS[args.command](args)
    except (CTError, RegistryError) as exc:
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        return 1
    elapsed = time.perf_counter() - started
    if elapsed > 1.0:
        console.print(f"Done in {elapsed:.1f} s.")
    return code
