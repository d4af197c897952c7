"""The McNemar gate against scipy's exact binomial test, and the decision rule."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from tasks.errors import GateError
from tasks.gate import check_unseen, compare, mcnemar_exact_greater
from tasks.train import BatchSlice, TrainingWindow


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=300))
def test_mcnemar_p_value_equals_scipy_binomtest(pairs):
    base = np.array([p[0] for p in pairs])
    cand = np.array([p[1] for p in pairs])
    b, c, p = mcnemar_exact_greater(base, cand)
    assert b == int(np.sum(base & ~cand)) and c == int(np.sum(~base & cand))
    if b + c == 0:
        assert p == 1.0
    else:
        expected = stats.binomtest(c, b + c, 0.5, alternative="greater").pvalue
        assert p == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_mcnemar_published_example():
    # 10 discordant pairs, all in the candidate's favour: p = 0.5**10 exactly.
    b, c, p = mcnemar_exact_greater(np.zeros(10, bool), np.ones(10, bool))
    assert (b, c) == (0, 10)
    assert p == 0.5**10


def test_compare_promotes_a_clearly_better_candidate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    champion = np.where(rng.random(400) < 0.6, y, 1 - y)  # ~60 % right
    candidate = np.where(rng.random(400) < 0.85, y, 1 - y)  # ~85 % right
    decision = compare(y, champion, candidate, alpha=0.05)
    assert decision.promote
    assert decision.p_value < 1e-6
    assert decision.effect == pytest.approx(np.mean(candidate == y) - np.mean(champion == y))
    assert "Promote" in decision.reasons[-1]


def test_compare_rejects_identical_models_and_a_worse_one():
    y = np.array([0, 1] * 50)
    same = compare(y, y, y)
    assert not same.promote and same.p_value == 1.0
    worse = compare(y, y, 1 - y)
    assert not worse.promote and worse.effect == -1.0


def test_min_effect_blocks_a_significant_but_small_gain():
    y = np.ones(20_000, int)
    champion = np.ones(20_000, int)
    champion[:400] = 0  # 98.0 %
    candidate = np.ones(20_000, int)
    candidate[:200] = 0  # 99.0 %
    assert compare(y, champion, candidate, min_effect=0.0).promote
    blocked = compare(y, champion, candidate, min_effect=0.05)
    assert not blocked.promote
    assert "below the minimum effect" in " ".join(blocked.reasons)


def test_false_promotion_rate_is_at_most_alpha_by_simulation():
    """Equal models: the gate promotes in at most alpha of trials (plus Monte-Carlo error)."""
    rng = np.random.default_rng(7)
    trials, n, promoted = 2000, 200, 0
    for _ in range(trials):
        y = rng.integers(0, 2, n)
        a = np.where(rng.random(n) < 0.75, y, 1 - y)
        b = np.where(rng.random(n) < 0.75, y, 1 - y)
        promoted += compare(y, a, b, alpha=0.05).promote
    rate = promoted / trials
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials)


def _window(batch, start, stop, end=None):
    return TrainingWindow(
        slices=[BatchSlice(batch_id=batch, start=start, stop=stop)],
        rows=stop - start,
        time_start=None,
        time_end=end,
        fingerprint="x",
    )


def test_check_unseen_refuses_overlapping_rows_and_times():
    from datetime import datetime

    held = BatchSlice(batch_id="b2", start=70, stop=100)
    check_unseen(held, None, {"candidate": _window("b2", 0, 70)})
    with pytest.raises(GateError, match="overlap the champion's training rows"):
        check_unseen(held, None, {"champion": _window("b2", 0, 80)})
    with pytest.raises(GateError, match="newer than both models"):
        check_unseen(
            held,
            datetime(2026, 1, 1),
            {"champion": _window("b1", 0, 10, end=datetime(2026, 1, 2))},
        )
