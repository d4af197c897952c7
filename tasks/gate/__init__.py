"""The promotion gate: paired significance tests of candidate vs champion on unseen rows.

Modules: `metrics` (what is compared), `paired_tests` (McNemar, t, Wilcoxon, Diebold-Mariano),
`delong` (ROC AUC), `bootstrap` (paired, vectorised), `decision` (the rule). The thin Prefect task
that publishes the decision is below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.artifacts import publish_markdown
from tasks.format import fmt
from tasks.gate.decision import (
    MIN_ROWS,
    GateDecision,
    Guard,
    GuardResult,
    check_unseen,
    choose_test,
    compare,
    interval_text,
)
from tasks.gate.metrics import METRICS, GateInputError, get_metric

__all__ = [
    "METRICS",
    "MIN_ROWS",
    "GateDecision",
    "GateInputError",
    "Guard",
    "GuardResult",
    "check_unseen",
    "choose_test",
    "compare",
    "gate_candidate",
    "gate_markdown",
    "get_metric",
    "interval_text",
]


def gate_markdown(decision: GateDecision, *, name: str, candidate: str = "candidate") -> str:
    """Why the candidate was promoted or rejected, with the numbers, for a person to read."""
    verdict = "Promoted" if decision.promote else "Rejected"
    lines = [
        f"# {verdict}: {candidate} vs the {decision.baseline} ({name})",
        "",
        *[f"- {reason}" for reason in decision.reasons],
        "",
        f"| on {decision.n} held-back rows | {decision.baseline} | candidate | improvement |",
        "|---|---|---|---|",
        f"| **{decision.metric}** (decides) | {fmt(decision.baseline_metric, 4)} | "
        f"{fmt(decision.candidate_metric, 4)} | {decision.effect:+.4f} |",
        *[
            f"| {g.name} (guard, tolerance {g.tolerance:g}) | {g.champion:.4f} | {g.candidate:.4f} "
            f"| {g.change:+.4f} {'ok' if g.passed else 'FAILED'} |"
            for g in decision.guards
        ],
        "",
        f"Test: `{decision.test}`, one-sided p = {decision.p_value:.4g}, alpha = {decision.alpha:g}, "
        f"minimum effect = {decision.min_effect:g}; "
        + (
            f"{interval_text(decision.alpha, decision.ci_low, decision.ci_high)} of the improvement."
            if decision.ci_low is not None
            else "no interval."
        ),
    ]
    return "\n".join(lines)


@task(name="gate-candidate", cache_policy=NO_CACHE)
def gate_candidate(
    y_true: np.ndarray,
    champion_pred: np.ndarray,
    candidate_pred: np.ndarray,
    *,
    baseline: Literal["champion", "floor"],
    metric: str,
    test: str,
    alpha: float,
    min_effect: float,
    guards: Sequence[Guard],
    order: np.ndarray | None,
    name: str,
    seed: int,
) -> GateDecision:
    """Decide, log the decision and publish why as a markdown artifact. Never retried or cached."""
    decision = compare(
        y_true,
        champion_pred,
        candidate_pred,
        metric=metric,
        test=test,
        alpha=alpha,
        min_effect=min_effect,
        guards=guards,
        order=order,
        baseline=baseline,
        seed=seed,
    )
    get_run_logger().info("Gate: %s", " ".join(decision.reasons))
    publish_markdown(
        key="gate-decision",
        markdown=gate_markdown(decision, name=name),
        description=(
            f"{name}: {'promoted' if decision.promote else 'rejected'} the candidate vs the "
            f"{baseline} ({decision.test} on {decision.metric}, p = {decision.p_value:.3g}, "
            f"improvement {decision.effect:+.4f})"
        ),
    )
    return decision
