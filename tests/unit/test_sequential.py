"""The challenger's anytime-valid test (issue 14): the mixture against numerical integration, the
alpha split, the blocks, and its error rate under optional stopping by a small simulation (the full
measurement is benchmarks/gate_quality.py, part d)."""

import math

import numpy as np
import pytest
from scipy import integrate, signal, stats

from tasks.gate.sequential import Evidence, block_means, challenger_alpha, log_mixture


@pytest.mark.parametrize(
    ("total", "n", "sigma", "tau"),
    [(0.3, 12, 0.1, 0.05), (-0.2, 5, 1.0, 0.5), (4.0, 40, 0.5, 0.25)],
)
def test_the_mixture_equals_its_integral(total, n, sigma, tau):
    """M_n = integral over theta > 0 of the likelihood ratio times a half-normal density."""

    def integrand(theta: float) -> float:
        ratio = math.exp(theta * total / sigma**2 - n * theta**2 / (2 * sigma**2))
        return ratio * 2 * stats.norm.pdf(theta, scale=tau)

    value, _ = integrate.quad(integrand, 0, np.inf, limit=200)
    assert log_mixture(total, n, sigma, tau) == pytest.approx(math.log(value), rel=1e-6)
    assert log_mixture(0.0, 0, sigma, tau) == 0.0  # M_0 = 1


def test_the_alpha_split_sums_to_alpha():
    shares = [challenger_alpha(0.05, j) for j in range(1, 200_001)]
    assert shares[0] == pytest.approx(6 * 0.05 / math.pi**2)
    assert sum(shares) == pytest.approx(0.05, rel=1e-5) and sum(shares) < 0.05


def test_blocks_carry_the_leftover_rows_to_the_next_batch():
    means, carry = block_means(np.arange(7.0), [], 3)
    assert means == [1.0, 4.0] and carry == [6.0]
    means, carry = block_means(np.array([7.0, 8.0]), carry, 3)
    assert means == [7.0] and carry == []


def test_no_decision_before_the_minimum_number_of_blocks_and_the_verdicts():
    evidence = Evidence(version=2, j=1, alpha=0.05, block_rows=10, min_blocks=5, tau_ratio=0.5)
    rng = np.random.default_rng(0)
    evidence = evidence.add("b1", rng.normal(5.0, 1.0, 40))  # 4 blocks: far better, but too few
    assert evidence.log_e() == (0.0, 0.0) and evidence.verdict(10) == "continue"
    evidence = evidence.add("b2", rng.normal(5.0, 1.0, 40))
    assert evidence.verdict(10) == "promote" and evidence.path[-1].log_e > evidence.boundary
    worse = Evidence(version=2, j=1, alpha=0.05, block_rows=10, min_blocks=5, tau_ratio=0.5)
    worse = worse.add("b1", rng.normal(-5.0, 1.0, 80))
    assert worse.verdict(10) == "drop-worse"
    flat = Evidence(version=2, j=1, alpha=0.05, block_rows=10, min_blocks=5, tau_ratio=0.5)
    for k in range(3):
        flat = flat.add(f"b{k}", rng.normal(0.0, 1.0, 60))
    assert flat.verdict(3) == "drop-budget" and flat.verdict(4) == "continue"


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_an_equal_challenger_is_rarely_promoted_however_often_it_is_looked_at(rho):
    """400 streams of 10 batches x 300 rows, looked at after every batch: false promotions stay
    within alpha plus three Monte-Carlo standard errors (AR(1) rows, 50-row blocks)."""
    rng = np.random.default_rng(7)
    alpha, trials, promoted = 0.05, 400, 0
    for _ in range(trials):
        noise = rng.standard_normal(3000)
        d = signal.lfilter([1.0], [1.0, -rho], noise * math.sqrt(1 - rho**2))
        evidence = Evidence(
            version=2, j=1, alpha=alpha, block_rows=50, min_blocks=10, tau_ratio=0.5
        )
        for batch in range(10):
            evidence = evidence.add(str(batch), d[batch * 300 : (batch + 1) * 300])
            verdict = evidence.verdict(10)
            if verdict != "continue":
                promoted += verdict == "promote"
                break
    rate = promoted / trials
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials), rate
