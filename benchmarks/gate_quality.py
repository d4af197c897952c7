"""How often the gate promotes a candidate that is NO better, and how often one that is.

A seeded Monte-Carlo simulation of the gate's paired tests (the functions `compare()` calls:
`tasks.gate.paired_tests`, `delong_paired`, `paired_bootstrap`), beside the naive rule "promote when
the candidate's score is better".

Each simulated test set has binary labels (prevalence 0.3) and two models. A model's logit in favour
of the observed label on row i is mu + sigma * e_i, so e_i is its error on that row (mu, sigma give
accuracy 0.80, ROC AUC 0.88); its predicted P(class 1) is the sigmoid of that logit. Accuracy tests
(McNemar) see paired correct/incorrect outcomes, the row tests (t, Wilcoxon, Diebold-Mariano) the
per-row log-loss improvement, the AUC tests (DeLong, bootstrap) the probabilities as scores. Under
H0 both models' errors have the same distribution (the models are exchangeable), so the true
improvement is exactly 0 on every metric. Scenarios for the errors e:

* i   independent rows, the two models' errors independent;
* ii  independent rows, the two models' errors correlated 0.9 (a shared latent noise);
* iii time-ordered rows: each model's error is AR(1) in time with rho 0.5 (models independent).

Part a is the false-promotion rate at n = 100, 1,000 and 10,000 rows; part b the promotion rate at
n = 1,000 (scenario i) as the candidate's mu rises (power). The bootstrap uses fewer resamples than
the gate's 2,000 (`--resamples`, 200 by default); its p-value (1 + #{effect* <= 0}) / (B + 1) is
valid for any B. The AUC effect under the bootstrap weights is computed by `PairedAuc`, which gives
the same numbers as `tasks.gate.metrics.weighted_auc` (checked in every batch) in less time.

Part c chooses regression's default gate metric (issue 13): squared error (MSE) or absolute
error (MAE) per row. The truth is y = f + noise, each model predicts f + its own error u ~ N(0,
s^2) (s = 0.5 noise sd); the candidate's error sd is (1 - delta) s. Noise: Gaussian, Student t
with 3 degrees of freedom (heavy tails, as demand and prices have), Gaussian with 5 % of the rows
10 times as noisy (data errors, one-off events), or Gaussian AR(1) rho 0.5 in time. Under H0 (delta = 0) both losses have equal means, so false promotions are measured at
alpha; power is the promotion rate at n = 300 held-back rows for the paired t-test and
Diebold-Mariano (what `test: auto` picks on time-ordered rows). The improvement itself is in
different units for the two metrics, so power is what decides.

Part d measures the challenger's anytime-valid test (tasks/gate/sequential.py, issue 14) as the
shadow mode uses it: a stream of up to 10 batches of 500 rows, looked at after every batch; the
per-row log-loss improvements of the binary models above, the two models' errors correlated 0.9
on each row (they learned from overlapping data) and independent across rows or AR(1) in time with
rho 0.5 or 0.9. Beside it, the naive rule: a paired t-test on all rows so far
after every batch, promoting at the first p < alpha. False promotions when the challenger is no
better (<= alpha + Monte-Carlo error?), and, for a challenger better by 0.02 in log loss, the
power within the 10 batches and the median rows seen until promotion.

Usage: `.venv/bin/python benchmarks/gate_quality.py` (about 9 CPU-minutes: 5 minutes on 2 idle
cores). Options: `--quick` (200 trials, a smoke test), `--trials N`, `--jobs N`, `--seed N`,
`--regression` (part c only, under a minute), `--sequential` (part d only).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass

import numpy as np
from scipy import signal, special, stats
from timing import map_jobs

from tasks.gate.bootstrap import default_block_length, paired_bootstrap, resample_weights
from tasks.gate.delong import delong_paired
from tasks.gate.metrics import accuracy_rows, log_loss_rows, weighted_auc
from tasks.gate.paired_tests import diebold_mariano, mcnemar, paired_t, wilcoxon

ALPHA = 0.05
PREVALENCE = 0.3
BASE_ACCURACY = 0.80
SIGMA = 1.5
MU = SIGMA * float(stats.norm.ppf(BASE_ACCURACY))
SHARED = 0.9  # scenario ii: correlation of the two models' errors on the same row
PHI = 0.5  # scenario iii: AR(1) coefficient of each model's error in time
SIZES = (100, 1_000, 10_000)
POWER_N = 1_000
ACCURACY_GAINS = (0.0, 0.01, 0.02, 0.03, 0.05)
ROWS_PER_BATCH = 200_000  # trials x rows simulated at once

SCENARIOS = ("i independent", "ii correlated", "iii AR(1)")


@dataclass(frozen=True)
class Test:
    name: str
    metric: str
    meant_for: tuple[int, ...]  # scenario indices where its false-promotion rate should be <= alpha


TESTS = (
    Test("mcnemar-exact", "accuracy", (0, 1)),
    Test("mcnemar-midp", "accuracy", (0, 1)),
    Test("paired-t", "log loss", (0, 1)),
    Test("wilcoxon", "log loss", (0, 1)),
    Test("diebold-mariano", "log loss", (0, 1, 2)),
    Test("bootstrap (iid)", "ROC AUC", (0, 1)),
    Test("block bootstrap", "ROC AUC", (0, 1, 2)),
    Test("delong", "ROC AUC", (0, 1)),
    Test("naive: higher score", "accuracy", ()),
    Test("naive: lower loss", "log loss", ()),
    Test("naive: higher score", "ROC AUC", ()),
)
POWER_TESTS = tuple(i for i, t in enumerate(TESTS) if t.name != "block bootstrap")
SHORT = {
    ("diebold-mariano", "log loss"): "DM",
    ("bootstrap (iid)", "ROC AUC"): "bootstrap",
    ("naive: higher score", "accuracy"): "naive acc",
    ("naive: lower loss", "log loss"): "naive loss",
    ("naive: higher score", "ROC AUC"): "naive AUC",
}


@dataclass(frozen=True)
class Batch:
    """Trials `start` .. `start + count` of one cell: a scenario, a size and a candidate shift."""

    part: int  # 0 false promotions, 1 power
    scenario: int
    n: int
    shift: int  # index into ACCURACY_GAINS
    start: int
    count: int
    seed: int
    resamples: int
    tests: tuple[int, ...]


class PairedAuc:
    """Bootstrap effect: ROC AUC of the candidate minus the champion's under each weight row.

    Equals `weighted_auc(y, cand, w) - weighted_auc(y, base, w)` (ties count half) but sorts the
    scores once and works on the transposed weights, so rows are gathered contiguously.
    """

    def __init__(self, y: np.ndarray, champion: np.ndarray, candidate: np.ndarray) -> None:
        self.pos = np.flatnonzero(y == 1)
        neg = np.flatnonzero(y != 1)
        self.candidate = self._prepare(candidate, neg)
        self.champion = self._prepare(champion, neg)

    def _prepare(
        self, scores: np.ndarray, neg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        neg_sorted = neg[np.argsort(scores[neg], kind="stable")]
        below, pos = scores[neg_sorted], scores[self.pos]
        return neg_sorted, np.searchsorted(below, pos, "left"), np.searchsorted(below, pos, "right")

    @staticmethod
    def _pairs(
        wt: np.ndarray, wpos: np.ndarray, model: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> np.ndarray:
        neg_sorted, left, right = model
        below = np.zeros((neg_sorted.size + 1, wt.shape[1]))
        np.cumsum(wt[neg_sorted], axis=0, out=below[1:])
        counted = below[left] if np.array_equal(left, right) else 0.5 * (below[left] + below[right])
        return np.einsum("ic,ic->c", wpos, counted)

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        wt = np.ascontiguousarray(weights.T)
        wpos = wt[self.pos]
        positives = wpos.sum(axis=0)
        total = positives * (wt.sum(axis=0) - positives)
        diff = self._pairs(wt, wpos, self.candidate) - self._pairs(wt, wpos, self.champion)
        return np.divide(diff, total, out=np.full_like(diff, np.nan), where=total > 0)


def shift_for(gain: float) -> float:
    """Rise in the candidate's mu that raises its accuracy by `gain`."""
    return SIGMA * float(stats.norm.ppf(BASE_ACCURACY + gain)) - MU


def true_values(mu: float) -> tuple[float, float, float]:
    """Population accuracy, log loss and ROC AUC of a model whose logit is mu + SIGMA * N(0, 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    log_loss = float(np.sum(w * np.logaddexp(0.0, -(mu + SIGMA * x))) / math.sqrt(2 * math.pi))
    # A positive's score beats a negative's when q_pos + q_neg > 0.
    auc = float(stats.norm.cdf(math.sqrt(2.0) * mu / SIGMA))
    return float(stats.norm.cdf(mu / SIGMA)), log_loss, auc


def errors(rng: np.random.Generator, scenario: int, trials: int, n: int) -> np.ndarray:
    """(2, trials, n) standard-normal errors of champion and candidate under a scenario."""
    e = rng.standard_normal((2, trials, n))
    if scenario == 1:
        shared = rng.standard_normal((trials, n))
        e = math.sqrt(SHARED) * shared + math.sqrt(1.0 - SHARED) * e
    elif scenario == 2:
        e[..., 1:] *= math.sqrt(1.0 - PHI**2)  # e[0] ~ N(0, 1): the series starts stationary
        e = signal.lfilter([1.0], [1.0, -PHI], e, axis=-1)
    return e


def simulate(
    rng: np.random.Generator, scenario: int, trials: int, n: int, shift: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (trials, n) and the champion's and candidate's P(class 1) (trials, n)."""
    y = (rng.random((trials, n)) < PREVALENCE).astype(np.int64)
    e = errors(rng, scenario, trials, n)
    sign = 2 * y - 1
    champion = special.expit(sign * (MU + SIGMA * e[0]))
    candidate = special.expit(sign * (MU + shift + SIGMA * e[1]))
    return y, champion, candidate


def run_batch(batch: Batch) -> tuple[Batch, np.ndarray]:
    """Promotions per test (indices into TESTS) over the batch's trials."""
    rng = np.random.default_rng(
        [batch.seed, batch.part, batch.scenario, batch.n, batch.shift, batch.start]
    )
    shift = shift_for(ACCURACY_GAINS[batch.shift])
    y, base, cand = simulate(rng, batch.scenario, batch.count, batch.n, shift)
    shape = y.shape
    base_ok = accuracy_rows(y.ravel(), base.ravel()).reshape(shape) > 0
    cand_ok = accuracy_rows(y.ravel(), cand.ravel()).reshape(shape) > 0
    improvement = log_loss_rows(y.ravel(), base.ravel()) - log_loss_rows(y.ravel(), cand.ravel())
    improvement = improvement.reshape(shape)
    block = default_block_length(batch.n)
    wanted = set(batch.tests)
    promoted = np.zeros(len(TESTS), np.int64)
    for k in range(batch.count):
        d = improvement[k]
        effect = PairedAuc(y[k], base[k], cand[k])
        if k == 0:  # the fast AUC effect must equal the gate's weighted_auc
            w = resample_weights(batch.n, 4, np.random.default_rng(k), block=None)
            expected = weighted_auc(y[k], cand[k], w) - weighted_auc(y[k], base[k], w)
            assert np.allclose(effect(w), expected, rtol=0, atol=1e-12), "PairedAuc is wrong"
        auc_base, auc_cand, dl = delong_paired(y[k], base[k], cand[k], alpha=ALPHA)
        p: dict[int, bool] = {
            0: mcnemar(base_ok[k], cand_ok[k], alpha=ALPHA).p_value < ALPHA,
            1: mcnemar(base_ok[k], cand_ok[k], alpha=ALPHA, mid_p=True).p_value < ALPHA,
            2: paired_t(d, alpha=ALPHA).p_value < ALPHA,
            3: wilcoxon(d, alpha=ALPHA).p_value < ALPHA,
            4: diebold_mariano(d, alpha=ALPHA).p_value < ALPHA,
            7: dl.p_value < ALPHA,
            8: cand_ok[k].mean() > base_ok[k].mean(),
            9: d.mean() > 0,
            10: auc_cand > auc_base,
        }
        for index, blocks in ((5, None), (6, block)):
            if index in wanted:
                result = paired_bootstrap(
                    effect,
                    batch.n,
                    alpha=ALPHA,
                    n_resamples=batch.resamples,
                    block=blocks,
                    rng=rng,
                    chunk=100,
                )
                p[index] = result.p_value < ALPHA
        for index in wanted:
            promoted[index] += bool(p[index])
    return batch, promoted


def batches(trials: int, seed: int, resamples: int) -> list[Batch]:
    out = []
    cells = [(0, s, n, 0, tuple(range(len(TESTS)))) for s in range(3) for n in SIZES]
    cells += [(1, 0, POWER_N, g, POWER_TESTS) for g in range(len(ACCURACY_GAINS))]
    for part, scenario, n, shift, tests in cells:
        per = max(1, min(trials, ROWS_PER_BATCH // n))
        for start in range(0, trials, per):
            count = min(per, trials - start)
            out.append(Batch(part, scenario, n, shift, start, count, seed, resamples, tests))
    return sorted(out, key=lambda b: -b.n * b.count)  # big batches first: better load balance


def diagnostics(seed: int) -> str:
    """What the scenarios look like: cross-model and lag-1 correlations of the loss improvement."""
    rng = np.random.default_rng([seed, 99])
    lines = []
    for scenario in (1, 2):
        y, base, cand = simulate(rng, scenario, 20, 10_000, 0.0)
        lb = log_loss_rows(y.ravel(), base.ravel()).reshape(y.shape)
        lc = log_loss_rows(y.ravel(), cand.ravel()).reshape(y.shape)
        ab = accuracy_rows(y.ravel(), base.ravel()).reshape(y.shape)
        ac = accuracy_rows(y.ravel(), cand.ravel()).reshape(y.shape)
        if scenario == 1:
            cross = np.mean([np.corrcoef(lb[k], lc[k])[0, 1] for k in range(len(y))])
            lines.append(
                f"scenario ii: correlation of the two models' per-row log losses {cross:.2f}"
            )
        else:
            d, a = lb - lc, ac - ab
            lag_d = np.mean([np.corrcoef(d[k, 1:], d[k, :-1])[0, 1] for k in range(len(y))])
            lag_a = np.mean([np.corrcoef(a[k, 1:], a[k, :-1])[0, 1] for k in range(len(y))])
            lines.append(
                f"scenario iii: lag-1 autocorrelation of the log-loss improvement {lag_d:.2f}, "
                f"of the accuracy difference {lag_a:.2f}"
            )
    return "\n".join(lines)


def cell(promoted: int, trials: int) -> tuple[str, bool]:
    rate = promoted / trials
    mcse = math.sqrt(rate * (1.0 - rate) / trials)
    ok = rate <= ALPHA + 2.0 * mcse
    return f"{rate:.3f} ± {mcse:.3f} {'OK' if ok else 'TOO HIGH'}", ok


def meant_for(test: Test) -> str:
    if not test.meant_for:
        return "none (not a test)"
    return ", ".join(SCENARIOS[s].split()[0] for s in test.meant_for)


REGRESSION_NOISE = ("Gaussian", "Student t3", "5 % outliers", "AR(1) 0.5")
OUTLIER_SHARE, OUTLIER_SCALE = 0.05, 10.0
REGRESSION_ERROR_SD = 0.5
REGRESSION_SIZES = (100, 1_000)
REGRESSION_POWER_N = 300
REGRESSION_DELTAS = (0.1, 0.2, 0.3)


def regression_noise(rng: np.random.Generator, kind: int, trials: int, n: int) -> np.ndarray:
    """(trials, n) noise in the truth: Gaussian (sd 1), Student t3 (sd 1), Gaussian with 5 % of
    rows 10 times as noisy (data errors, one-off events), or Gaussian AR(1) in time."""
    if kind == 1:
        return rng.standard_t(3, (trials, n)) / math.sqrt(3.0)  # t3 has variance 3
    e = rng.standard_normal((trials, n))
    if kind == 2:
        return e * np.where(rng.random((trials, n)) < OUTLIER_SHARE, OUTLIER_SCALE, 1.0)
    if kind == 3:
        e[:, 1:] *= math.sqrt(1.0 - PHI**2)
        e = signal.lfilter([1.0], [1.0, -PHI], e, axis=-1)
    return e


def regression_promotions(
    rng: np.random.Generator, kind: int, trials: int, n: int, delta: float
) -> dict[tuple[str, str], int]:
    """Promotions per (metric, test) over `trials` simulated test sets of `n` rows."""
    noise = regression_noise(rng, kind, trials, n)
    champion = noise - REGRESSION_ERROR_SD * rng.standard_normal((trials, n))
    candidate = noise - (1.0 - delta) * REGRESSION_ERROR_SD * rng.standard_normal((trials, n))
    counts: dict[tuple[str, str], int] = {}
    for metric, loss in (("mse", np.square), ("mae", np.abs)):
        d = loss(champion) - loss(candidate)  # residual = truth - prediction
        counts[(metric, "paired-t")] = sum(
            paired_t(d[k], alpha=ALPHA).p_value < ALPHA for k in range(trials)
        )
        counts[(metric, "DM")] = sum(
            diebold_mariano(d[k], alpha=ALPHA).p_value < ALPHA for k in range(trials)
        )
    return counts


def regression_part(trials: int, seed: int) -> None:
    """Part c: false promotions and power of MSE vs MAE as regression's gate metric."""
    rng = np.random.default_rng([seed, 3])
    print(
        "\n## c. Regression: squared (MSE) vs absolute (MAE) error as the gate's metric\n\n"
        f"Model error sd {REGRESSION_ERROR_SD} (noise sd 1); {trials} trials per cell; promote = "
        "one-sided p < alpha. Paired t is meant for independent rows, DM for all three.\n"
    )
    head = f"| {'noise':12} | {'metric':6} | {'test':8} |" + "".join(
        f" {f'H0, n = {n:,}':14} |" for n in REGRESSION_SIZES
    )
    head += "".join(f" {f'power d={d:.1f}':12} |" for d in REGRESSION_DELTAS)
    print(head)
    print("|" + "|".join("-" * len(part) for part in head.split("|")[1:-1]) + "|")
    ratios: list[str] = []
    for kind, noise in enumerate(REGRESSION_NOISE):
        null = {n: regression_promotions(rng, kind, trials, n, 0.0) for n in REGRESSION_SIZES}
        power = {
            d: regression_promotions(rng, kind, trials, REGRESSION_POWER_N, d)
            for d in REGRESSION_DELTAS
        }
        for metric in ("mse", "mae"):
            for test in ("paired-t", "DM"):
                row = f"| {noise:12} | {metric:6} | {test:8} |"
                for n in REGRESSION_SIZES:
                    text, _ = cell(null[n][(metric, test)], trials)
                    row += f" {text.split(' OK')[0].split(' TOO')[0]:14} |"
                for d in REGRESSION_DELTAS:
                    row += f" {power[d][(metric, test)] / trials:12.3f} |"
                print(row)
        middle = REGRESSION_DELTAS[len(REGRESSION_DELTAS) // 2]
        mse, mae = power[middle][("mse", "DM")], power[middle][("mae", "DM")]
        ratios.append(f"{noise} {mae / max(mse, 1):.2f}x")
    print(
        f"\nDM power of MAE relative to MSE at d = {REGRESSION_DELTAS[len(REGRESSION_DELTAS) // 2]}"
        f" (n = {REGRESSION_POWER_N}): " + ", ".join(ratios) + "."
    )


SEQ_BATCHES, SEQ_ROWS = 10, 500
SEQ_RHOS = (0.0, 0.5, 0.9)
SEQ_GAIN = 0.02  # log-loss improvement of the better challenger


def shift_for_log_loss(gain: float) -> float:
    """Rise in the candidate's mu that lowers its population log loss by `gain`."""
    from scipy import optimize

    base = true_values(MU)[1]
    return float(optimize.brentq(lambda s: base - true_values(MU + s)[1] - gain, 0.0, 5.0))


def stream_improvements(
    rng: np.random.Generator, rho: float, rows: int, shift: float
) -> np.ndarray:
    """Per-row log-loss improvement (champion's loss minus challenger's) over a stream. The two
    models' errors are correlated 0.9 on each row (champion and challenger learned from
    overlapping data, so they mostly agree), and AR(1) in time with coefficient rho."""
    y = (rng.random(rows) < PREVALENCE).astype(np.int64)
    shared = rng.standard_normal(rows)
    e = math.sqrt(SHARED) * shared + math.sqrt(1.0 - SHARED) * rng.standard_normal((2, rows))
    if rho:
        e[:, 1:] *= math.sqrt(1.0 - rho**2)
        e = signal.lfilter([1.0], [1.0, -rho], e, axis=-1)
    sign = 2 * y - 1
    champion = special.expit(sign * (MU + SIGMA * e[0]))
    challenger = special.expit(sign * (MU + shift + SIGMA * e[1]))
    return log_loss_rows(y, champion) - log_loss_rows(y, challenger)


def sequential_trial(args: tuple[int, float, float, int]) -> tuple[str, int, int, int, int]:
    """(rule, promoted, rows until promotion or -1) for one stream, both rules, as counts."""
    from tasks.gate.sequential import Evidence

    seed, rho, shift, trial = args
    rng = np.random.default_rng([seed, 4, int(rho * 100), int(shift > 0), trial])
    d = stream_improvements(rng, rho, SEQ_BATCHES * SEQ_ROWS, shift)
    evidence = Evidence(version=2, j=1, alpha=ALPHA, block_rows=50, min_blocks=10, tau_ratio=0.3)
    seq_at = naive_at = -1
    for batch in range(SEQ_BATCHES):
        part = d[batch * SEQ_ROWS : (batch + 1) * SEQ_ROWS]
        if seq_at < 0:
            evidence = evidence.add(str(batch), part)
            verdict = evidence.verdict(SEQ_BATCHES)
            if verdict == "promote":
                seq_at = (batch + 1) * SEQ_ROWS
            elif verdict != "continue":
                seq_at = -2  # dropped
        if naive_at < 0 and paired_t(d[: (batch + 1) * SEQ_ROWS], alpha=ALPHA).p_value < ALPHA:
            naive_at = (batch + 1) * SEQ_ROWS
    return ("", int(seq_at > 0), seq_at, int(naive_at > 0), naive_at)


def sequential_part(trials: int, seed: int, jobs: int) -> None:
    """Part d: the challenger's test under optional stopping, beside the naive repeated t-test."""
    shift = shift_for_log_loss(SEQ_GAIN)
    print(
        "\n## d. The challenger's anytime-valid test, looked at after every batch\n\n"
        f"Up to {SEQ_BATCHES} batches of {SEQ_ROWS} rows; 50-row blocks, at least 10 before a "
        f"decision, tau = 0.3 sd; {trials} streams per cell; alpha {ALPHA} (a first challenger's "
        f"share: 6 alpha / pi^2 = {6 * ALPHA / math.pi**2:.4f}). Naive: a paired t-test on all "
        "rows so far after every batch, promote at the first p < alpha.\n"
    )
    print(
        "| rows' errors | false promotions: sequential | naive repeated t-test "
        f"| power, {SEQ_GAIN} better: sequential | median rows to promote | naive power |"
    )
    print("|---|---|---|---|---|---|")
    from tasks.gate.sequential import challenger_alpha

    for rho in SEQ_RHOS:
        cells = []
        for gain_shift in (0.0, shift):
            work = [(seed, rho, gain_shift, t) for t in range(trials)]
            results = map_jobs(sequential_trial, work, jobs)
            seq = sum(r[1] for r in results)
            naive = sum(r[3] for r in results)
            rows_to = sorted(r[2] for r in results if r[1])
            cells.append((seq, naive, rows_to))
        (null_seq, null_naive, _), (alt_seq, alt_naive, rows_to) = cells
        alpha_1 = challenger_alpha(ALPHA, 1)
        mcse = math.sqrt(alpha_1 * (1 - alpha_1) / trials)
        ok = "OK" if null_seq / trials <= alpha_1 + 2 * mcse else "TOO HIGH"
        median = f"{rows_to[len(rows_to) // 2]:,}" if rows_to else "-"
        label = "independent" if rho == 0 else f"AR(1) rho {rho}"
        print(
            f"| {label} | {null_seq / trials:.3f} ± {mcse:.3f} {ok} | {null_naive / trials:.3f} "
            f"| {alt_seq / trials:.3f} | {median} | {alt_naive / trials:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000, help="trials per cell (2000)")
    parser.add_argument("--quick", action="store_true", help="200 trials: a smoke test")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples (200)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regression", action="store_true", help="part c only")
    parser.add_argument("--sequential", action="store_true", help="part d only")
    args = parser.parse_args()
    trials = 200 if args.quick else args.trials
    started = time.perf_counter()
    if args.regression or args.sequential:
        if args.regression:
            regression_part(trials, args.seed)
        if args.sequential:
            sequential_part(trials, args.seed, args.jobs)
        print(f"\nElapsed {time.perf_counter() - started:.0f} s.")
        return

    counts: dict[tuple[int, int, int, int], np.ndarray] = {}
    work = batches(trials, args.seed, args.resamples)
    results = map_jobs(run_batch, work, args.jobs)
    for batch, promoted in results:
        key = (batch.part, batch.scenario, batch.n, batch.shift)
        counts[key] = counts.get(key, np.zeros(len(TESTS), np.int64)) + promoted

    print(
        f"Gate quality: {trials} trials per cell, alpha {ALPHA}, seed {args.seed}, "
        f"bootstrap with {args.resamples} resamples (the gate uses 2,000), block length "
        f"n^(1/3) = {', '.join(str(default_block_length(n)) for n in SIZES)}."
    )
    print(
        f"Models: accuracy {BASE_ACCURACY:.2f}, ROC AUC {true_values(MU)[2]:.3f}, log loss "
        f"{true_values(MU)[1]:.3f}; prevalence {PREVALENCE}. Promote = one-sided p < alpha."
    )
    print(diagnostics(args.seed))
    print(
        "\n## a. False-promotion rate, candidate exactly as good as the champion\n\n"
        "Rate ± Monte-Carlo standard error; OK when rate <= alpha + 2 MCSE. Scenarios: "
        "i independent rows and errors, ii errors correlated 0.9, iii AR(1) rho 0.5 in time.\n"
    )
    head = f"| {'test':20} | {'metric':8} | {'meant for':17} | {'scenario':14} |"
    head += "".join(f" {f'n = {n:,}':22} |" for n in SIZES)
    print(head)
    print("|" + "|".join("-" * len(part) for part in head.split("|")[1:-1]) + "|")
    surprises, expected = [], []
    for t, test in enumerate(TESTS):
        for s, scenario in enumerate(SCENARIOS):
            row = f"| {test.name:20} | {test.metric:8} | {meant_for(test):17} | {scenario:14} |"
            for n in SIZES:
                text, ok = cell(int(counts[(0, s, n, 0)][t]), trials)
                row += f" {text:22} |"
                if not ok and s in test.meant_for:
                    surprises.append(f"{test.name} ({test.metric}), scenario {scenario}, n={n:,}")
                elif not ok and test.meant_for:
                    expected.append(f"{test.name} {scenario.split()[0]} n={n:,}")
            print(row)
    print(
        "\nToo high where the test is meant to hold: "
        + ("; ".join(surprises) if surprises else "none")
    )
    print("Too high where the test is not meant to hold (expected): " + "; ".join(expected))

    print(
        f"\n## b. Power: promotion rate vs the true improvement, n = {POWER_N:,}, scenario i\n\n"
        f"Rates over {trials} trials (MCSE <= {0.5 / math.sqrt(trials):.3f}); the true "
        "improvements are the population values of the shifted candidate. Tests on accuracy: "
        "McNemar; on log loss: t, Wilcoxon, DM; on ROC AUC: bootstrap, DeLong.\n"
    )
    names = [SHORT.get((TESTS[t].name, TESTS[t].metric), TESTS[t].name) for t in POWER_TESTS]
    names = [f"{name:>5}" for name in names]
    head = f"| {'accuracy':>8} | {'log loss':>8} | {'ROC AUC':>7} |" + "".join(
        f" {name} |" for name in names
    )
    print(head)
    print("|" + "|".join("-" * len(part) for part in head.split("|")[1:-1]) + "|")
    base_values = true_values(MU)
    for g, gain in enumerate(ACCURACY_GAINS):
        values = true_values(MU + shift_for(gain))
        row = (
            f"| {values[0] - base_values[0]:+8.3f} | {base_values[1] - values[1]:+8.4f} "
            f"| {values[2] - base_values[2]:+7.4f} |"
        )
        for t, name in zip(POWER_TESTS, names, strict=True):
            row += f" {counts[(1, 0, POWER_N, g)][t] / trials:>{len(name)}.3f} |"
        print(row)
    regression_part(trials, args.seed)
    sequential_part(trials, args.seed, args.jobs)
    print(f"\nElapsed {time.perf_counter() - started:.0f} s with {args.jobs} process(es).")


if __name__ == "__main__":
    main()
