"""The `python flows/ct.py` command line: parse, check, then run.

Arguments are parsed and the cheap checks made (the config, the data path, the registry) before
anything heavy is imported: `--help` and a mistyped path answer in well under a second, not after
Prefect, scikit-learn and a server have started. The commands themselves are in
`flows/cli/commands.py`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TypeAlias

from blocks.errors import RegistryError
from tasks.errors import CTError

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

  python flows/ct.py server status                      the local Prefect server every command reuses

state (registry, history) lives in .ct/ unless the config's state_dir says otherwise.
Prefect: the first command starts a local server in the background (127.0.0.1:4200) and every
later command reuses it (its UI keeps the runs); `server stop` stops it, `--prefect ephemeral`
uses a temporary one instead. -v shows Prefect's own log lines.
start-up: the first command also starts a warm process that keeps ct, Prefect and scikit-learn
imported; later commands fork from it instead of importing them again (about 5 s less each).
CT_WARM=0 runs each command in its own process; `server stop` stops the warm processes too.
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
    for add in (
        _add_demo,
        _add_demo_data,
        _add_run,
        _add_backtest,
        _add_contract,
        _add_registry,
        _add_server,
    ):
        add(commands, prefect)
    parser.add_argument("--version", action="version", version="ct 0.1.0")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show Prefect's own log lines (by default: ct's progress and one line per batch)",
    )
    return parser


#: What `add_subparsers` returns: each `_add_<command>` adds its command to it.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_demo(commands: Commands, prefect: list[argparse.ArgumentParser]) -> None:
    """`demo`: backtest a generated stream."""
    demo = commands.add_parser(
        "demo",
        parents=prefect,
        help="backtest CT over the built-in demo stream (the default) or another generated one",
        description="Generate a stream (the demo: known drift at batch 6 and from batch 9; or "
        "one shaped like real data, --stream) and backtest the CT policy over it in a fresh "
        "registry.",
    )
    _demo_options(demo)
    _backtest_outputs(demo, config_help="CTConfig file (default: built-in)")


def _backtest_outputs(parser: argparse.ArgumentParser, *, config_help: str) -> None:
    """What `demo` and `backtest` share: the output folder, the config and the drift plots."""
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output folder, not one an earlier backtest used (default .ct/backtests/<time>)",
    )
    parser.add_argument("--config", metavar="YAML", help=config_help)
    parser.add_argument("--plots", action="store_true", help="also draw each step's drift plot")


def _add_demo_data(commands: Commands, prefect: list[argparse.ArgumentParser]) -> None:
    """`demo-data`: write a generated stream as CSV files."""
    data = commands.add_parser(
        "demo-data",
        help="write a generated stream as one CSV per batch",
        description="Write batch-01.csv, batch-02.csv, ... to try `run` and `backtest` on files.",
    )
    data.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the CSV files into")
    _demo_options(data)


def _add_run(commands: Commands, prefect: list[argparse.ArgumentParser]) -> None:
    """`run`: one CT step on a labelled batch."""
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


def _add_backtest(commands: Commands, prefect: list[argparse.ArgumentParser]) -> None:
    """`backtest`: replay a history, one CT step per batch."""
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
    _backtest_outputs(bt, config_help="CTConfig file; --target/--order-by override it")


def _add_contract(commands: Commands, prefect: list[argparse.ArgumentParser]) -> None:
    """`contract show|accept`: the data contract."""
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


def _add_registry(commands: Commands, prefect: list[argparse.ArgumentParser]) -> None:
    """`registry list|show|promote|rollback`."""
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


def _add_server(commands: Commands, prefect: list[argparse.ArgumentParser]) -> None:
    """`server start|status|stop`: the local Prefect server."""
    server = commands.add_parser(
        "server",
        help="the local Prefect server and warm processes every command reuses: start, status, "
        "stop",
        description="When no Prefect server is configured (PREFECT_API_URL) or answering, the "
        "first command starts one in the background on 127.0.0.1 (port CT_PREFECT_PORT, default "
        "4200) and later commands reuse it; its runs stay in its UI. These manage it; `status` "
        "also lists ct's warm processes (ct imported once, a fork per command) and `stop` stops "
        "them.",
    )
    server.add_argument(
        "action",
        choices=["start", "status", "stop"],
        metavar="ACTION",
        help="start | status | stop",
    )


def _prefect_option() -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--prefect",
        default="auto",
        metavar="MODE",
        help="Prefect backend: 'auto' (PREFECT_API_URL, else the local server on 127.0.0.1:4200, "
        "started in the background the first time and reused), 'ephemeral' (a temporary "
        "in-process server, 10-30 s of start-up per command), or an API URL",
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
    "flips",
    "regions",
    "slow-drift",
    "stable",
    "flips-regression",
    "regions-regression",
    "slow-drift-regression",
    "stable-regression",
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


COMMANDS = ("demo", "demo-data", "run", "backtest", "registry", "contract", "server")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; ct's own errors end as one line on stderr and exit code 1."""
    words = list(sys.argv[1:] if argv is None else argv)
    flags = [w for w in words if w in {"-v", "--verbose"}]
    rest = [w for w in words if w not in {"-v", "--verbose"}]
    if not rest or (rest[0] not in COMMANDS and rest[0] not in {"-h", "--help", "--version"}):
        rest = ["demo", *rest]  # no command: the demo backtest, with any options given
    args = _parser().parse_args([*flags, *rest])
    started = time.perf_counter()
    if not args.verbose:
        # Prefect's console lines (a line per task run) stay in the run logs, not on the screen;
        # set before Prefect loads its logging configuration
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from flows.cli.console import Output

    out = Output(verbose=args.verbose)
    try:
        from flows.cli.preflight import preflight

        preflight(args)
        from flows.cli import warm

        handed = None
        if args.command != "server" and warm.enabled():
            handed = warm.hand_over(words, out.line, verbose=args.verbose)
        if handed is not None:
            code = handed
        else:
            from flows.cli import commands

            code = commands.COMMANDS[args.command](args, out)
    except (CTError, RegistryError) as exc:
        out.error(str(exc))
        return 1
    elapsed = time.perf_counter() - started
    if elapsed > 1.0 and not warm.CHILD:  # in the warm process's fork, the caller times it
        out.line(f"Done in {elapsed:.1f} s.")
    return code
