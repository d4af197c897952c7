"""Which gate mode fits which stream: backtests of every policy on streams with known structure.

Each of 9 generated streams (tasks/streams.py: the demo, and `flips`, `regions`, `slow-drift`,
`stable`, each for classification and regression: 15 batches of 400 rows after a first batch of
1,200) is backtested with the real CT step (`python flows/ct.py demo --stream S --seed K`, a local
Prefect server) under each policy: `batch` (the paired test on the batch's held-back rows, the
default), `shadow` (a challenger judged on later batches) and `both` (the batch test as a screen,
then shadow evidence). "never" is the never-updated first model and "always" always-retrain (the
newest candidate, promoted or not: `metric_always`), scored by the same backtests on the same
batches.

The prequential metric is the serving champion's on each batch after the first, before anything
learns from it, averaged over the batches and then over the seeds: accuracy for classification
(higher is better; points are accuracy points x 100), MAE for regression (lower is better; points
are percent of the never-updated model's MAE). The table marks the best policy per stream and
checks, for every mode, the rule a default must keep: within 0.5 points of the best, and never
more than 0.5 points worse than never-updated, on every stream. Seeds 1-3 by default (seed 0 is
the demo's own). Generated streams only: the defaults are chosen with the real streams beside
them (benchmarks/real_streams.py, docs/decisions/001-one-decider.md).

Usage: `.venv/bin/python benchmarks/policies.py` (about 50 minutes on 2 cores; `--streams a,b`,
`--modes a,b`, `--seeds 1,2,3`, `--jobs N`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from backtests import backtest_server, retried_on_503

ROOT = Path(__file__).resolve().parents[1]
STREAMS = [
    "demo",
    "flips",
    "regions",
    "slow-drift",
    "stable",
    "flips-regression",
    "regions-regression",
    "slow-drift-regression",
    "stable-regression",
]
MODES = ["batch", "shadow", "both"]
DEFAULT = "batch"  # what CTConfig().gate.mode is; the rule below is checked for it


HGB = {
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
}


def mode_config(mode: str, stream: str) -> str:
    """The YAML config of a policy: a gate mode; `hgb-` first for HistGradientBoosting as the
    model (e.g. `hgb-batch`); `-h<N>` last for a training window of N history batches (e.g.
    `batch-h0`: the per-batch gate, candidates trained on the new batch only)."""
    hgb = mode.startswith("hgb-")
    gate_mode, _, history = mode.removeprefix("hgb-").partition("-h")
    text = f"gate:\n  mode: {gate_mode}\n"
    if hgb:
        task = "regression" if stream.endswith("regression") else "classification"
        text += f"model:\n  estimator: {HGB[task]}\n"
    if history:
        text += f"retrain:\n  history_batches: {int(history)}\n"
    return text


def run(stream: str, mode: str, seed: int, work: Path, env: dict[str, str]) -> pd.DataFrame:
    out = work / f"{stream}-{mode}-{seed}"
    if (out / "backtest.csv").is_file():  # kept from an earlier run (--keep): not run again
        return pd.read_csv(out / "backtest.csv")
    config = work / f"{stream}-{mode}.yaml"
    config.write_text(mode_config(mode, stream))
    result = retried_on_503(lambda: _backtest(stream, config, out, seed, env), out)
    if result.returncode != 0:
        raise RuntimeError(f"{stream} {mode} seed {seed}: {result.stderr[-800:]}")
    return pd.read_csv(out / "backtest.csv")


def _backtest(
    stream: str, config: Path, out: Path, seed: int, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "flows/ct.py",
            "demo",
            "--stream",
            stream,
            "--config",
            str(config),
            "--out",
            str(out),
            "--seed",
            str(seed),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def keeps_rule(below_best: float, below_never: float) -> bool:
    """The rule a default must keep on a stream (gaps in points)."""
    return below_best <= 0.5 and below_never <= 0.5


def points(value: float, reference: float, metric: str) -> float:
    """A metric difference in 'points': accuracy x 100; MAE in percent of `reference`."""
    if metric == "accuracy":
        return 100.0 * value
    return -100.0 * value / reference  # lower MAE is better: more points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", help="comma-separated subset of: " + ", ".join(STREAMS))
    parser.add_argument(
        "--modes",
        help="comma-separated subset of: "
        + ", ".join(MODES)
        + "; hgb-<mode> uses HistGradientBoosting as the model, <mode>-h<N> (e.g. batch-h0) "
        "trains on N history batches instead of the default",
    )
    parser.add_argument("--jobs", type=int, default=2, help="backtests at once (2)")
    parser.add_argument(
        "--seeds",
        default="1,2,3",
        help="comma-separated stream seeds, averaged (default 1,2,3; seed 0 was used while "
        "designing gate.mode auto, so it is left out of the verdict)",
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="run in DIR and keep every backtest there (DIR/<stream>-<mode>-<seed>/backtest.csv); "
        "a backtest already there is read, not run again (code that changes a decision needs a "
        "fresh DIR)",
    )
    args = parser.parse_args()
    streams = args.streams.split(",") if args.streams else STREAMS
    modes = args.modes.split(",") if args.modes else MODES
    seeds = [int(x) for x in args.seeds.split(",")]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ct-policies-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with backtest_server(work) as env:
            cells = [(s, m, seed) for s in streams for m in modes for seed in seeds]
            with ThreadPoolExecutor(args.jobs) as pool:
                tables = dict(
                    zip(
                        cells,
                        pool.map(lambda c: run(c[0], c[1], c[2], work, env), cells),
                        strict=True,
                    )
                )
    print(
        "Prequential metric of the serving champion (every batch after the first, before "
        "learning from it), and promotions after the first, per policy; the mean over seeds "
        f"{', '.join(map(str, seeds))}. Points: accuracy x 100 or percent of the never-updated "
        "model's MAE.\n"
    )
    head = "| stream | metric | never | always |" + "".join(f" {m} |" for m in modes)
    head += " best | default rule |"
    print(head)
    print("|" + "---|" * (len(modes) + 6))
    gaps: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}  # (below best, vs never)
    for stream in streams:
        # per seed: the mean over batches 2.. (before learning from each); then over seeds
        later = {
            key: table[table["batch"] > 1] for key, table in tables.items() if key[0] == stream
        }
        metric = str(later[(stream, modes[0], seeds[0])]["metric_name"].iloc[0])
        never = sum(float(later[(stream, modes[0], s)]["metric_static"].mean()) for s in seeds)
        never /= len(seeds)
        always = sum(float(later[(stream, modes[0], s)]["metric_always"].mean()) for s in seeds)
        always /= len(seeds)
        means = {
            m: sum(float(later[(stream, m, s)]["metric_champion"].mean()) for s in seeds)
            / len(seeds)
            for m in modes
        }
        promotions = {
            m: sum(int(tables[(stream, m, s)]["promoted"].sum()) - 1 for s in seeds) / len(seeds)
            for m in modes
        }
        score = {m: points(v, never, metric) for m, v in means.items()}
        # "never retrain" and "always retrain" are policies too (with no gate)
        baselines = {"never": points(never, never, metric), "always": points(always, never, metric)}
        never_points = baselines["never"]
        best = max([*score, *baselines], key=lambda m: score.get(m, baselines.get(m, 0.0)))
        top = score.get(best, baselines.get(best, 0.0))
        for m in modes:
            gaps[m].append((top - score[m], never_points - score[m]))
        cells_text = "".join(
            f" {means[m]:.3f} ({promotions[m]:.1f}){' *' if m == best else ''} |" for m in modes
        )
        rule = "-"
        if DEFAULT in gaps:
            gap_best, gap_never = gaps[DEFAULT][-1]
            ok = keeps_rule(gap_best, gap_never)
            rule = (
                f"{'ok' if ok else 'MISSED'} ({gap_best:.1f} below best, {gap_never:+.1f} vs never)"
            )
        never_text = f"{never:.3f}{' *' if best == 'never' else ''}"
        always_text = f"{always:.3f}{' *' if best == 'always' else ''}"
        print(
            f"| {stream} | {metric} | {never_text} | {always_text} |{cells_text} {best} | {rule} |"
        )
    print(
        "\n(n) = promotions after the first, mean over seeds. The rule a default must keep, per "
        "mode: within 0.5 points of the best policy, and at most 0.5 points below never-updated, "
        "on every stream.\n"
    )
    print("| mode | streams where the rule holds | worst: below best | worst: below never |")
    print("|---|---|---|---|")
    for m in modes:
        held = sum(keeps_rule(b, n) for b, n in gaps[m])
        worst_best = max(b for b, _ in gaps[m])
        worst_never = max(n for _, n in gaps[m])
        print(f"| {m} | {held} of {len(streams)} | {worst_best:.1f} | {worst_never:+.1f} |")
    print(f"\nElapsed {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
