"""How long the gate's paired tests take on large test sets, against a plain numpy pass.

On 1,000,000 paired predictions (binary labels, two models' probabilities): McNemar, the paired
t-test, Wilcoxon and Diebold-Mariano (target < 0.5 s each) and DeLong; on 100,000 rows, 2,000
paired bootstrap resamples of the ROC AUC difference (target < 10 s), with the gate's own
`weighted_auc`. Each test is timed on the arrays the gate hands it (correct/incorrect for McNemar,
the per-row log-loss improvement for the others); its baseline is one plain numpy pass over the same
arrays, timed in the same run: the mean of the per-row difference, or one `np.argsort` of the scores
(or of |d| for the rank test). Seconds are the median of 3-7 repetitions, after an untimed warm-up
call for the operations on 1,000,000 rows. A second table times `compare()` end to end (metric
rows, input checks, the test, the decision) for the same tests.

Usage: `.venv/bin/python benchmarks/gate_speed.py` (about 3 minutes).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from scipy import special
from timing import median_seconds

from tasks.gate.bootstrap import paired_bootstrap
from tasks.gate.decision import compare
from tasks.gate.delong import delong_paired
from tasks.gate.metrics import accuracy_rows, log_loss_rows, weighted_auc
from tasks.gate.paired_tests import diebold_mariano, mcnemar, paired_t, wilcoxon

ALPHA = 0.05
N = 1_000_000
N_BOOTSTRAP = 100_000
RESAMPLES = 2_000


def predictions(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two models' P(class 1); the candidate is slightly better (logit margin +0.05)."""
    y = (rng.random(n) < 0.3).astype(np.int64)
    sign = 2 * y - 1
    champion = special.expit(sign * (1.26 + 1.5 * rng.standard_normal(n)))
    candidate = special.expit(sign * (1.31 + 1.5 * rng.standard_normal(n)))
    return y, champion, candidate


def main() -> None:
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    y, base, cand = predictions(rng, N)
    base_ok = accuracy_rows(y, base) > 0
    cand_ok = accuracy_rows(y, cand) > 0
    base_loss, cand_loss = log_loss_rows(y, base), log_loss_rows(y, cand)
    d = base_loss - cand_loss
    yb, bb, cb = y[:N_BOOTSTRAP], base[:N_BOOTSTRAP], cand[:N_BOOTSTRAP]

    def auc_effect(weights: np.ndarray) -> np.ndarray:
        return weighted_auc(yb, cb, weights) - weighted_auc(yb, bb, weights)

    def bootstrap() -> object:
        return paired_bootstrap(
            auc_effect,
            N_BOOTSTRAP,
            alpha=ALPHA,
            n_resamples=RESAMPLES,
            rng=np.random.default_rng(1),
        )

    mean_bool = ("mean of the difference", lambda: np.mean(cand_ok.view(np.int8) - base_ok))
    mean_loss = ("mean of the difference", lambda: np.mean(base_loss - cand_loss))
    sort_abs = ("np.argsort(|d|)", lambda: np.argsort(np.abs(d)))
    sort_scores = ("np.argsort(scores)", lambda: np.argsort(cand))
    sort_bootstrap = ("np.argsort(scores)", lambda: np.argsort(cb))

    def signed_rank() -> object:  # one call, two rows (two baselines)
        return wilcoxon(d, alpha=ALPHA)

    # (operation, rows, test, (baseline name, baseline), repetitions, target seconds or 0)
    cases: list[tuple[str, int, Callable[[], object], tuple[str, Callable[[], object]], int, float]]
    cases = [
        ("McNemar exact", N, lambda: mcnemar(base_ok, cand_ok, alpha=ALPHA), mean_bool, 7, 0.5),
        (
            "McNemar mid-p",
            N,
            lambda: mcnemar(base_ok, cand_ok, alpha=ALPHA, mid_p=True),
            mean_bool,
            7,
            0.5,
        ),
        ("paired t", N, lambda: paired_t(d, alpha=ALPHA), mean_loss, 7, 0.5),
        ("Wilcoxon", N, signed_rank, mean_loss, 5, 0.5),
        ("Wilcoxon (rank baseline)", N, signed_rank, sort_abs, 5, 0.5),
        ("Diebold-Mariano", N, lambda: diebold_mariano(d, alpha=ALPHA), mean_loss, 7, 0.5),
        ("DeLong", N, lambda: delong_paired(y, base, cand, alpha=ALPHA), sort_scores, 5, 0.0),
        (
            f"bootstrap ROC AUC, {RESAMPLES:,} resamples",
            N_BOOTSTRAP,
            bootstrap,
            sort_bootstrap,
            3,
            10.0,
        ),
    ]
    timed: dict[Callable[[], object], float] = {}  # a call shared by two rows is timed once

    def seconds(call: Callable[[], object], repeats: int, warm_up: bool) -> float:
        if call not in timed:
            timed[call] = median_seconds(call, repeats, warm_up=warm_up)
        return timed[call]

    rows = []
    for name, n, test, (baseline_name, baseline), repeats, target in cases:
        took = seconds(test, repeats, warm_up=n != N_BOOTSTRAP)
        rows.append((name, n, took, baseline_name, seconds(baseline, 7, True), target))

    print(f"Gate speed: median of 3-7 repetitions; alpha {ALPHA}.\n")
    head = (
        f"| {'operation':34} | {'rows':>9} | {'seconds':>8} | {'baseline':24} | "
        f"{'baseline s':>10} | {'ratio':>8} | {'target':>8} | met? |"
    )
    print(head)
    print("|" + "|".join("-" * len(part) for part in head.split("|")[1:-1]) + "|")
    for name, n, took, baseline_name, base_s, target in rows:
        goal = f"< {target:g} s" if target else "-"
        met = ("yes" if took < target else "NO") if target else "-"
        print(
            f"| {name:34} | {n:>9,} | {took:8.4f} | {baseline_name:24} | {base_s:10.5f} | "
            f"{took / base_s:7.0f}x | {goal:>8} | {met:4} |"
        )

    print("\n`compare()` end to end (metric rows, input checks, the test, the decision):\n")
    head = f"| {'compare(...)':52} | {'rows':>9} | {'seconds':>8} |"
    print(head)
    print("|" + "|".join("-" * len(part) for part in head.split("|")[1:-1]) + "|")

    def gate(yy: np.ndarray, a: np.ndarray, b: np.ndarray, **kw: str) -> Callable[[], object]:
        return lambda: compare(yy, a, b, **kw)

    calls: list[tuple[str, int, Callable[[], object], int]] = [
        ("metric='accuracy', test='mcnemar-exact'", N, gate(y, base, cand, metric="accuracy"), 5),
        ("metric='log_loss', test='paired-t'", N, gate(y, base, cand, metric="log_loss"), 5),
        (
            "metric='log_loss', test='wilcoxon'",
            N,
            gate(y, base, cand, metric="log_loss", test="wilcoxon"),
            3,
        ),
        (
            "metric='log_loss', test='diebold-mariano'",
            N,
            gate(y, base, cand, metric="log_loss", test="diebold-mariano"),
            5,
        ),
        ("metric='roc_auc', test='delong'", N, gate(y, base, cand, metric="roc_auc"), 3),
        (
            "metric='roc_auc', test='bootstrap' (2,000 resamples)",
            N_BOOTSTRAP,
            gate(yb, bb, cb, metric="roc_auc", test="bootstrap"),
            3,
        ),
    ]
    for name, n, call, repeats in calls:
        took = median_seconds(call, repeats, warm_up=n == N)
        print(f"| {name:52} | {n:>9,} | {took:8.3f} |")
    print(f"\nElapsed {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
