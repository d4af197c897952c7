"""Variants of gate.mode auto's switch rule, replayed on the lineage records real auto backtests logged.

Every `auto` backtest keeps, in its registry's selection log, every lineage's score on every batch
(tasks/selection.py). No lineage depends on which one is served, so any switch rule can be replayed
on those records exactly. The lineages `never`, `always` and `batch` are those policies run for real
inside the same step (tests/flows/test_challenger.py checks them against the modes' own backtests),
so their records are the bar's never, always and batch; shadow and both come from their own
backtests in the same DIR.

First, per seed set, the default rule: every stream's mean over seeds of never, always, batch,
shadow, both and the real `auto` backtests, with issue 14's verdict (within 0.5 points of the best,
at most 0.5 below never-updated), and a check that the real `auto` served, batch by batch, what the
replay of its rule serves. Then the variants: the level `alpha` and the fewest batches `n` of the
switch test over the window `auto` uses, the level of the change test (`gate.change_alpha`; none:
the rule before it), and a t-test level split over the distinct contenders (Bonferroni).

Usage: `.venv/bin/python benchmarks/switch_rules.py DIR --seed-sets 1,2,3/4,5/6,7` after
`benchmarks/policies.py --keep DIR --modes shadow,both,auto --seeds ...` for each set (about 20
minutes per seed of the 9 streams on 2 cores; this script takes a minute).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from policies import STREAMS, keeps_rule, points
from selection import (
    Rule,
    change_at,
    default_probation,
    default_rule,
    gains_of,
    largest_gap,
    served_values,
    switch_when_significant,
    walk,
)

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


def ran_with(runs: Path, stream: str, seed: int) -> str:
    """The probation the auto backtest's step had: "" (its records have no `dropped` field: the
    step before probation) or "first" (on leaving never, the rule since)."""
    registry = runs / f"{stream}-auto-{seed}" / "registry"
    (model,) = [p for p in registry.iterdir() if p.is_dir()]
    first = min((model / "logs" / "selection").glob("*.json"))
    return "first" if "dropped" in json.loads(first.read_text())["record"] else ""


def served_mean(rule: Rule, metric: str, values: dict[str, np.ndarray]) -> float:
    """The selection's mean, starting from never (the lineages in tasks.selection's order)."""
    return float(np.mean(served_values(rule, gains_of(metric, values), values, LINEAGES)))


def bar_means(
    runs: Path, stream: str, seeds: list[int], records: dict[tuple[str, int], Any]
) -> dict[str, float]:
    """Each policy's mean over seeds of its mean over batches after the first: never, always and
    batch from the lineage records, shadow and both from their backtests, auto the replay of its
    default rule on the records (exactly what its step serves: check_real_auto)."""

    def later(policy: str, seed: int) -> pd.DataFrame:
        table = pd.read_csv(runs / f"{stream}-{policy}-{seed}" / "backtest.csv")
        return table[table["batch"] > 1]

    means = {
        p: float(np.mean([records[(stream, s)][1][p].mean() for s in seeds]))
        for p in ("never", "always", "batch")
    }
    for p in ("shadow", "both"):
        means[p] = float(np.mean([later(p, s)["metric_champion"].mean() for s in seeds]))
    means["auto"] = float(
        np.mean([served_mean(default_rule(), *records[(stream, s)]) for s in seeds])
    )
    return means


def check_real_auto(runs: Path, records: dict[tuple[str, int], Any]) -> str:
    """The real auto backtests serve what the replay of their rule serves (the default, with
    probation if their step had it)."""
    with_probation = {key: ran_with(runs, *key) for key in records}
    largest, batches = largest_gap(
        [
            (
                pd.read_csv(runs / f"{stream}-auto-{seed}" / "backtest.csv"),
                served_values(
                    default_rule(with_probation[(stream, seed)]),
                    gains_of(metric, values),
                    values,
                    LINEAGES,
                ),
            )
            for (stream, seed), (metric, values) in records.items()
        ]
    )
    return (
        f"The real auto backtests against the replay of their rule: {batches} batches of "
        f"{len(records)} backtests ({sum(map(bool, with_probation.values()))} run with "
        f"probation), largest difference {largest:.3g}."
    )


#: The replay's probation variants, as the variants' table names them.
PROBATION = {"first": "leaving never", "every": "every switch"}

SHOWN = ("never", "always", "batch", "shadow", "both", "auto")


def along_the_path(metric: str, values: dict[str, np.ndarray]) -> tuple[int, int, int]:
    """Along the default rule's own path: the switches, the batches where the change test fired,
    and the lineages probation dropped."""
    gate = GateConfig()
    gains = gains_of(metric, values)
    path = walk(default_rule(), gains, LINEAGES)
    switches = sum(a != b for (a, _), (b, _) in itertools.pairwise(path))
    fired = sum(
        change_at(gains, t, path[t - 1][0], gate.select_window, gate.change_alpha)
        for t in range(1, len(path))
    )
    return switches, fired, sum(dropped is not None for _, dropped in path)


def verdict_table(
    seeds: list[int], bars: dict[str, dict[str, float]], metrics: dict[str, str]
) -> tuple[list[str], dict[str, int]]:
    """The per-stream table of one seed set, and the streams where each policy holds the rule."""
    held = dict.fromkeys(SHOWN, 0)
    lines = [
        f"Seeds {', '.join(map(str, seeds))}:\n",
        "| stream | metric | " + " | ".join(SHOWN) + " | best | default rule |",
        "|---|---|" + "---|" * (len(SHOWN) + 2),
    ]
    for stream, means in bars.items():
        metric, never = metrics[stream], means["never"]
        score = {k: points(means[k], never, metric) for k in SHOWN}
        best = max(SHOWN, key=lambda k: score[k])
        for k in SHOWN:
            held[k] += keeps_rule(score[best] - score[k], score["never"] - score[k])
        below_best, below_never = score[best] - score["auto"], score["never"] - score["auto"]
        verdict = "ok" if keeps_rule(below_best, below_never) else "MISSED"
        cells = " | ".join(f"{means[k]:.3f}{' *' if k == best else ''}" for k in SHOWN)
        lines.append(
            f"| {stream} | {metric} | {cells} | {best} | {verdict} ({below_best:.1f} below best, "
            f"{below_never:+.1f} vs never) |"
        )
    return lines, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--seed-sets", default="1,2,3/4,5/6,7")
    args = parser.parse_args()
    seed_sets = [[int(s) for s in part.split(",")] for part in args.seed_sets.split("/")]
    gate = GateConfig()
    records = {
        (st, s): lineage_records(args.runs, st, s) for ss in seed_sets for s in ss for st in STREAMS
    }
    bars = {
        (st, i): bar_means(args.runs, st, ss, records)
        for i, ss in enumerate(seed_sets)
        for st in STREAMS
    }
    print(check_real_auto(args.runs, records) + "\n")
    print(
        "The serving champion's metric over every batch after the first, before anything learned "
        "from it; the mean over seeds. Points: accuracy x 100, or percent of never-updated's MAE.\n"
    )
    metrics = {st: records[(st, seed_sets[0][0])][0] for st in STREAMS}
    held_per_set = []
    for i, seeds in enumerate(seed_sets):
        lines, held = verdict_table(seeds, {st: bars[(st, i)] for st in STREAMS}, metrics)
        print("\n".join(lines) + "\n")
        held_per_set.append(held)
    print("Streams where issue 14's rule holds, per policy (the best of all six is the bar):\n")
    print(
        "| policy | "
        + " | ".join(f"seeds {'-'.join(map(str, s))}" for s in seed_sets)
        + " | in all |"
    )
    print("|---|" + "---|" * (len(seed_sets) + 1))
    for k in SHOWN[1:]:
        counts = [h[k] for h in held_per_set]
        print(
            f"| {k} | "
            + " | ".join(f"{c} of 9" for c in counts)
            + f" | {sum(counts)} of {9 * len(seed_sets)} |"
        )
    print(
        "\nAlong auto's own path, summed over seeds "
        f"{', '.join(str(s) for ss in seed_sets for s in ss)}: its switches, the batches where "
        f"the served lineage's change test fired (at {gate.change_alpha}), and the lineages "
        "probation dropped:\n"
    )
    print("| stream | backtests | batches | switches | change test fired | dropped |")
    print("|---|---|---|---|---|---|")
    for stream in STREAMS:
        keys = [k for k in records if k[0] == stream]
        counts = np.sum([along_the_path(*records[k]) for k in keys], axis=0)
        batches = sum(len(records[k][1]["never"]) for k in keys)
        print(f"| {stream} | {len(keys)} | {batches} | " + " | ".join(map(str, counts)) + " |")
    print()
    print(
        f"Switch rules over the last {gate.select_window} batches; auto's default: alpha "
        f"{gate.select_alpha}, 2 batches, change test at {gate.change_alpha}, probation "
        f"{'on' if gate.select_probation else 'off'}. Streams (of 9) where issue 14's rule holds, "
        "and the misses (points below the best).\n"
    )
    print(
        "| switch test's level | fewest batches | batches with the same model | change test | "
        "probation | "
        + " | ".join(f"seeds {'-'.join(map(str, s))}" for s in seed_sets)
        + " | in all |"
    )
    print("|---|---|---|---|---|" + "---|" * (len(seed_sets) + 1))
    default = (gate.select_alpha, 2, False, gate.change_alpha, False, default_probation())
    variants = [default]
    variants += [
        (gate.select_alpha, 2, False, gate.change_alpha, False, p) for p in ("", *PROBATION)
    ]
    variants += [(gate.select_alpha, 2, False, c, False, "") for c in (0.0, 0.01, 0.0001)]
    variants += [
        (a, n, False, c, False, pr)
        for pr in ("", "first")
        for c in (0.0, 0.001)
        for a in (0.1, 0.2, 0.3)
        for n in (2, 3, 4)
    ]
    variants += [(a, 2, True, c, False, "") for c in (0.0, 0.001) for a in (0.1, 0.2, 0.3)]
    variants += [(a, 2, False, 0.001, True, "") for a in (0.2, 0.3, 0.4, 0.5)]
    variants = list(dict.fromkeys(variants))  # the default once, first
    for alpha, fewest, skip_equal, change, split, probation in variants:
        rule = switch_when_significant(
            alpha,
            gate.select_window,
            fewest,
            skip_equal,
            change_alpha=change,
            split=split,
            probation=probation,
        )
        cells, total = [], 0
        for i, seeds in enumerate(seed_sets):
            held, missed = 0, []
            for stream in STREAMS:
                metric = records[(stream, seeds[0])][0]
                value = float(np.mean([served_mean(rule, *records[(stream, s)]) for s in seeds]))
                bar = {k: v for k, v in bars[(stream, i)].items() if k != "auto"}
                means = bar | {"variant": value}
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
        level = f"{alpha} / contenders" if split else str(alpha)
        same = "left out" if skip_equal else "counted (d = 0)"
        mark = (
            " (default)" if (alpha, fewest, skip_equal, change, split, probation) == default else ""
        )
        print(
            f"| {level} | {fewest} | {same} | {change or 'none'} | "
            f"{PROBATION.get(probation, 'off')}{mark} | "
            + " | ".join(cells)
            + f" | {total} of {9 * len(seed_sets)} |"
        )


if __name__ == "__main__":
    main()
