"""What CT buys on real public data: backtests of the gate modes, the estimator and the training
window on the three real streams of ../shared/data/streams (SOURCES.md there).

Streams: `chicago_ridership` (target `ridership`, regression, `--order-by date --batch-rows 182`,
32 batches), `us_births_by_state` (`births`, regression, `--order-by date --batch-rows 10220`,
37 batches) and `employment_massachusetts` (`employed`, 0/1 classification, `--batch-rows 10000`
in file order, 28 batches: a no-drift control, where CT must lose nothing and promote rarely).
Each is decompressed once to DATA/<stream>.csv, then backtested with the real CT step
(`python flows/ct.py backtest ...`) against one local Prefect server, once per config:

- A, the gate modes with the default model and window: `batch`, `shadow`, `both`;
- B, HistGradientBoosting{Regressor,Classifier} as the model: `hgb-batch`;
- C, the training window and holdout under mode batch: `batch-h0`, `batch-h5`, `batch-ho0.2`,
  `batch-ho0.5`.

Config names are `[hgb-]<mode>[-h<N>][-ho<F>]`.

Per backtest, over batches 2.. (after the first champion): the mean metric of the serving
champion before it learns from the batch ("CT"), of the never-updated first model ("never") and
of always-retrain (backtest.csv's `metric_always`: the newest candidate, promoted or not); MAE for
regression (lower is better), accuracy for classification. "kept %" is (CT - never) / (always -
never), the share of always-retrain's gain CT keeps; it is flagged when always-retrain is itself
no better than never, or better by under 0.2 %. "promotions" counts promotions after batch 1;
"versions" is the registry's highest version. A promotion at batch t serves from t+1 until the
next promotion's batch (inclusive: that batch is scored before the step); it "held up" if its mean
metric over those batches is at least as good as the never-updated model's over the same batches
(a promotion at the last batch serves nothing and is not judged). "seconds" is the backtest's
wall time (two backtests run at once by default: quote ratios, not seconds).

Usage: `.venv/bin/python benchmarks/real_streams.py --keep DIR` (every stream and config, about
60 minutes on 2 cores; `--streams a,b`, `--configs a,b`, `--jobs N` (2), `--keep DIR`: run in
DIR, one folder per <stream>-<config>, and a folder already holding backtest.csv is read, not run
again). The tables go to stdout (and to `--summary FILE` if given). The results and the choice
they support: docs/decisions/002-defaults-on-real-streams.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from backtests import backtest_server, retried_on_503

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "streams"


@dataclass(frozen=True)
class Stream:
    target: str
    order_by: str | None
    batch_rows: int
    task: str  # "regression" or "classification": picks the HistGradientBoosting class


STREAMS = {
    "chicago_ridership": Stream("ridership", "date", 182, "regression"),
    "us_births_by_state": Stream("births", "date", 10220, "regression"),
    "employment_massachusetts": Stream("employed", None, 10000, "classification"),
}
#: In the order they are run: every stream gets group A before any stream gets group B, then C.
GROUPS = {
    "A": ["batch", "shadow", "both"],
    "B": ["hgb-batch"],
    "C": ["batch-h0", "batch-h5", "batch-ho0.2", "batch-ho0.5"],
}
CONFIGS = [c for group in GROUPS.values() for c in group]
HGB = {
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
}


@dataclass(frozen=True)
class Variant:
    mode: str
    hgb: bool = False
    history: int | None = None
    holdout: float | None = None


def parse(name: str) -> Variant:
    """`[hgb-]<mode>[-h<N>][-ho<F>]`, e.g. `hgb-batch`, `batch-h0`, `batch-ho0.2`."""
    parts = name.split("-")
    hgb = parts[0] == "hgb"
    if hgb:
        parts = parts[1:]
    mode, history, holdout = parts[0], None, None
    for part in parts[1:]:
        if part.startswith("ho"):
            holdout = float(part[2:])
        elif part.startswith("h"):
            history = int(part[1:])
        else:
            raise ValueError(f"config {name!r}: unknown part {part!r}")
    if mode not in {"batch", "shadow", "both"}:
        raise ValueError(f"config {name!r}: unknown gate mode {mode!r}")
    return Variant(mode, hgb, history, holdout)


def config_yaml(name: str, stream: Stream) -> str:
    """The CTConfig YAML of a variant on a stream (the gate mode always set explicitly)."""
    v = parse(name)
    text = f"gate:\n  mode: {v.mode}\n"
    if v.hgb:
        text += f"model:\n  estimator: {HGB[stream.task]}\n"
    retrain = []
    if v.history is not None:
        retrain.append(f"  history_batches: {v.history}\n")
    if v.holdout is not None:
        retrain.append(f"  holdout_fraction: {v.holdout}\n")
    if retrain:
        text += "retrain:\n" + "".join(retrain)
    return text


def csv_of(stream: str, data: Path) -> Path:
    """The stream as plain CSV (`--data` reads no .gz today), decompressed once."""
    path = data / f"{stream}.csv"
    if not path.is_file():
        data.mkdir(parents=True, exist_ok=True)
        with gzip.open(SOURCE / f"{stream}.csv.gz", "rb") as src, path.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return path


@dataclass
class Cell:
    table: pd.DataFrame | None
    seconds: float | None
    error: str | None = None


def command(stream: str, name: str, work: Path, data: Path, url: str) -> list[str]:
    s = STREAMS[stream]
    config = work / "configs" / f"{stream}-{name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(config_yaml(name, s))
    cmd = [
        sys.executable,
        "flows/ct.py",
        "backtest",
        "--data",
        str(csv_of(stream, data)),
        "--target",
        s.target,
    ]
    if s.order_by:
        cmd += ["--order-by", s.order_by]
    cmd += ["--batch-rows", str(s.batch_rows), "--out", str(work / f"{stream}-{name}")]
    return [*cmd, "--config", str(config), "--prefect", url]


def run(stream: str, name: str, work: Path, data: Path, env: dict[str, str], url: str) -> Cell:
    out = work / f"{stream}-{name}"
    timing = out / "seconds.txt"
    if (out / "backtest.csv").is_file():  # kept from an earlier run (--keep): not run again
        seconds = float(timing.read_text()) if timing.is_file() else None
        return Cell(pd.read_csv(out / "backtest.csv"), seconds)
    cmd = command(stream, name, work, data, url)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    seconds = 0.0

    def backtest() -> subprocess.CompletedProcess[str]:
        nonlocal seconds
        started = time.perf_counter()
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        (logs / f"{stream}-{name}.stdout").write_text(result.stdout)
        (logs / f"{stream}-{name}.stderr").write_text(result.stderr)
        return result

    result = retried_on_503(backtest, out)
    with (work / "commands.txt").open("a") as log:
        log.write(
            json.dumps({"cell": f"{stream}-{name}", "rc": result.returncode, "seconds": seconds})
            + "\n  "
            + " ".join(cmd)
            + "\n"
        )
    if result.returncode != 0 or not (out / "backtest.csv").is_file():
        lines = [x for x in (result.stderr or result.stdout).splitlines() if x.strip()]
        return Cell(None, seconds, " / ".join(lines[-3:])[-600:] or f"exit {result.returncode}")
    timing.write_text(f"{seconds:.1f}\n")
    return Cell(pd.read_csv(out / "backtest.csv"), seconds)


def later(table: pd.DataFrame) -> pd.DataFrame:
    """Batches 2.., with both the champion's and the never-updated model's metric."""
    rows = table[table["batch"] > 1]
    return rows.dropna(subset=["metric_champion", "metric_static"])


def held_up(table: pd.DataFrame, lower: bool) -> tuple[int, int, int]:
    """(held, judged, unjudged) over the promotions after batch 1."""
    rows = later(table).set_index("batch")
    promoted = table["promoted"].astype(str).str.lower() == "true"
    at = sorted(int(b) for b in table.loc[promoted & (table["batch"] > 1), "batch"])
    last = int(table["batch"].max())
    held = judged = unjudged = 0
    for i, t in enumerate(at):
        until = at[i + 1] if i + 1 < len(at) else last
        served = rows.loc[(rows.index > t) & (rows.index <= until)]
        if served.empty:
            unjudged += 1
            continue
        judged += 1
        ct, never = served["metric_champion"].mean(), served["metric_static"].mean()
        held += bool(ct <= never if lower else ct >= never)
    return held, judged, unjudged


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def row(stream: str, name: str, cells: dict[tuple[str, str], Cell]) -> str:
    cell = cells[(stream, name)]
    seconds = fmt(cell.seconds, 0)
    if cell.table is None:
        return f"| {name} | failed: {cell.error} | | | | | | | {seconds} |"
    table = cell.table
    rows = later(table)
    metric = (
        str(table["metric_name"].dropna().iloc[0]) if table["metric_name"].notna().any() else "?"
    )
    lower = metric != "accuracy" and metric not in {"balanced_accuracy", "f1", "roc_auc"}
    ct, never = float(rows["metric_champion"].mean()), float(rows["metric_static"].mean())
    both = rows.dropna(subset=["metric_always"])
    always = float(both["metric_always"].mean())
    always_ct = float(both["metric_champion"].mean())
    always_never = float(both["metric_static"].mean())
    kept = "-"
    if not both.empty:
        span = always - always_never
        if abs(span) > 1e-12:
            share = 100.0 * (always_ct - always_never) / span
            worse = (span > 0) if lower else (span < 0)  # always-retrain no better than never
            kept = f"{share:.0f}%" + (" (always < never)" if worse else "")
            if not worse and abs(span) < 0.002 * abs(always_never):
                kept += " (always ~ never)"  # a gain under 0.2 %: the ratio is noise
    promoted = table["promoted"].astype(str).str.lower() == "true"
    promotions = int((promoted & (table["batch"] > 1)).sum())
    held, judged, unjudged = held_up(table, lower)
    held_text = f"{held}/{judged}" + (f" (+{unjudged} unjudged)" if unjudged else "")
    versions = table["new_version"].max()
    versions_text = "-" if pd.isna(versions) else str(int(versions))
    failed = table["outcome"].astype(str).str.startswith("failed").sum()
    refused = (table["refused"].astype(str).str.lower() == "true").sum()
    note = (f" ({failed} failed steps)" if failed else "") + (
        f" ({refused} refused)" if refused else ""
    )
    return (
        f"| {name}{note} | {fmt(ct)} | {fmt(never)} | {fmt(always)} | {kept} | {promotions} "
        f"| {held_text} | {versions_text} | {seconds} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", help="comma-separated subset of: " + ", ".join(STREAMS))
    parser.add_argument(
        "--configs",
        help="comma-separated config variants (default: all, in group order: "
        + "; ".join(f"{g}: {', '.join(c)}" for g, c in GROUPS.items())
        + "); any [hgb-]<mode>[-h<N>][-ho<F>] is accepted",
    )
    parser.add_argument("--jobs", type=int, default=2, help="backtests at once (2)")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="run in DIR and keep every backtest there (DIR/<stream>-<config>/backtest.csv, "
        "its wall time in seconds.txt, the commands in DIR/commands.txt, logs in DIR/logs); a "
        "backtest already there is read, not run again",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=str(ROOT / ".ct" / "streams"),
        help="where the decompressed CSVs are kept (default .ct/streams/)",
    )
    parser.add_argument("--summary", metavar="FILE", help="also write the tables to FILE")
    args = parser.parse_args()
    streams = args.streams.split(",") if args.streams else list(STREAMS)
    configs = args.configs.split(",") if args.configs else CONFIGS
    for name in configs:
        parse(name)
    data = Path(args.data).resolve()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ct-real-") as tmp:
        work = Path(args.keep).resolve() if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for stream in streams:
            csv_of(stream, data)
        with backtest_server(work, log=work / "server.log") as env:
            url = env["PREFECT_API_URL"]
            # run order: a config on every stream before the next config
            cells = [(s, c) for c in configs for s in streams]

            def one(key: tuple[str, str]) -> Cell:
                cell = run(key[0], key[1], work, data, env, url)
                state = "failed" if cell.table is None else "done"
                print(
                    f"{key[0]} {key[1]}: {state} in {fmt(cell.seconds, 0)} s",
                    file=sys.stderr,
                    flush=True,
                )
                return cell

            with ThreadPoolExecutor(args.jobs) as pool:
                results = dict(zip(cells, pool.map(one, cells), strict=True))
    lines = [
        "Mean metric over batches 2.. (the serving champion before learning from each batch), "
        "never-updated first model and always-retrain on the same batches; MAE for regression "
        "(lower is better), accuracy for classification (higher is better).",
        "",
    ]
    for stream in streams:
        s = STREAMS[stream]
        metric = "MAE" if s.task == "regression" else "accuracy"
        lines += [
            f"### {stream} (target `{s.target}`, {metric}, {s.batch_rows} rows per batch)",
            "",
            "| config | CT mean | never | always | kept % | promotions | held up | versions | seconds |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name in configs:
            lines.append(row(stream, name, results))
        lines.append("")
    lines.append(f"Elapsed {time.perf_counter() - started:.0f} s.")
    text = "\n".join(lines)
    print(text)
    if args.summary:
        Path(args.summary).write_text(text + "\n")


if __name__ == "__main__":
    main()
