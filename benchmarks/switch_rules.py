"""Variants of gate.mode auto's switch rule, replayed on the lineage records real auto backtests logged.

Every `auto` backtest keeps, in its registry's selection log, every lineage's score on every batch
(tasks/selection.py). No lineage depends on which one is served, so any switch rule can be replayed
on those records exactly (benchmarks/selection.py checks that the real `auto` equals the replay of
its own rule). This script replays the level `alpha` and the fewest batches `n` a test needs, over
the window `auto` uses, and the level of the change test (`gate.change_alpha`; 0: none), on each
seed set, against issue 14's bar: the best of never-updated, always, batch, shadow, both (their
backtests from the same DIR) and the variant itself.

Usage: `.venv/bin/python benchmarks/switch_rules.py DIR --seed-sets 1,2,3/4,5/6,7` after
`benchmarks/policies.py --keep DIR --modes always,batch,shadow,both,auto --seeds ...` for each set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from policies import STREAMS, keeps_rule, points
from selection import Rule, gains_of, served_values, switch_when_significant

from tasks.config import GateConfig
from tasks.selection import LINEAGES


def lineage_records(runs: Path, stream: str, seed: int) -> tuple[str, dict[str, np.ndarray]]:
    """The metric name and every lineage's score per batch, from the auto backtest's registry."""
    registry = runs / f"{stream}-auto-{seed}" / "registry"
    (model,) = [p for p in registry.iterdir() if p.is_dir()]
    records = [
        json.loads(p.read_text())["record"]
        for p in sorted((model / "logs" / "selection").glob("*.json"))
    ]
    return records[0]["metric"], {k: np.array([r["metrics"][k] for r in records]) for k in LINEAGES}


def served_mean(rule: Rule, metric: str, values: dict[str, np.ndarray]) -> float:
    """The selection's mean, starting from never (the lineages in tasks.selection's order)."""
    return float(np.mean(served_values(rule, gains_of(metric, values), values, LINEAGES)))


def policy_means(runs: Path, stream: str, seeds: list[int]) -> dict[str, float]:
    def later(policy: str, seed: int) -> pd.DataFrame:
        table = pd.read_csv(runs / f"{stream}-{policy}-{seed}" / "backtest.csv")
        return table[table["batch"] > 1]

    means = {
        p: float(np.mean([later(p, s)["metric_champion"].mean() for s in seeds]))
        for p in ("always", "batch", "shadow", "both")
    }
    means["never"] = float(np.mean([later("always", s)["metric_static"].mean() for s in seeds]))
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--seed-sets", default="1,2,3/4,5/6,7")
    args = parser.parse_args()
    seed_sets = [[int(s) for s in part.split(",")] for part in args.seed_sets.split("/")]
    gate = GateConfig()
    print(
        f"Switch rules over the last {gate.select_window} batches; auto's default: alpha "
        f"{gate.select_alpha}, 2 batches, change test at {gate.change_alpha}. Streams (of 9) where "
        "issue 14's rule holds, and the misses (points below the best).\n"
    )
    print(
        "| alpha | fewest batches | batches with the same model | change test | "
        + " | ".join(f"seeds {'-'.join(map(str, s))}" for s in seed_sets)
        + " | in all |"
    )
    print("|---|---|---|---|" + "---|" * (len(seed_sets) + 1))
    records = {
        (st, s): lineage_records(args.runs, st, s) for ss in seed_sets for s in ss for st in STREAMS
    }
    bars = {
        (st, i): policy_means(args.runs, st, ss) for i, ss in enumerate(seed_sets) for st in STREAMS
    }
    default = (gate.select_alpha, 2, False, gate.change_alpha)
    variants = [default]
    variants += [(gate.select_alpha, 2, False, c) for c in (0.0, 0.01, 0.0001)]
    variants += [(a, n, False, c) for c in (0.0, 0.001) for a in (0.1, 0.2, 0.3) for n in (2, 3, 4)]
    variants += [(a, 2, True, c) for c in (0.0, 0.001) for a in (0.1, 0.2, 0.3)]
    variants = list(dict.fromkeys(variants))  # the default once, first
    for alpha, fewest, skip_equal, change in variants:
        rule = switch_when_significant(
            alpha, gate.select_window, fewest, skip_equal, change_alpha=change
        )
        cells, total = [], 0
        for i, seeds in enumerate(seed_sets):
            held, missed = 0, []
            for stream in STREAMS:
                metric = records[(stream, seeds[0])][0]
                value = float(np.mean([served_mean(rule, *records[(stream, s)]) for s in seeds]))
                means = bars[(stream, i)] | {"variant": value}
                never = means["never"]
                top = max(points(v, never, metric) for v in means.values())
                score = points(value, never, metric)
                below_best, below_never = top - score, points(never, never, metric) - score
                if keeps_rule(below_best, below_never):
                    held += 1
                else:
                    missed.append(f"{stream} {below_best:.1f}")
            total += held
            cells.append(f"{held} of 9 ({', '.join(missed) or '-'})")
        print(
            f"| {alpha} | {fewest} | {'left out' if skip_equal else 'counted (d = 0)'} | "
            f"{change or 'none'}{' (default)' if (alpha, fewest, skip_equal, change) == default else ''} | "
            + " | ".join(cells)
            + f" | {total} of {9 * len(seed_sets)} |"
        )


if __name__ == "__main__":
    main()
