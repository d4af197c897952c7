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

from blocks.proof import DecisionRows, Proof
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
    "decision_proof",
    "gate_candidate",
    "gate_markdown",
    "get_metric",
    "interval_text",
]


def decision_proof(
    decision: GateDecision,
    *,
    rows: DecisionRows,
    against: str,
    action: str = "gate",
    accepted: str | None = None,
) -> Proof:
    """The batch test as a proof: of a promotion, or of why a candidate stayed out. `accepted`:
    a person accepted a new contract (the reason they gave); the proof then says a person
    decided, with the floor test attached."""
    return Proof(
        by="test" if accepted is None else "human",
        action=action,
        kind="paired test",
        test=decision.test,
        metric=decision.metric,
        against=against,
        rows=rows,
        statistic=decision.statistic,
        p_value=decision.p_value,
        level=decision.alpha,
        effect=decision.effect,
        passed=decision.promote,
        reason=decision.reasons[-1] if accepted is None else accepted,
    )


def gate_markdown(decision: GateDecision, *, rows: DecisionRows, against: str, name: str) -> str:
    """Why the candidate was promoted or rejected, with the numbers, for a person to read: the
    proof's own rendering (as the challenger's), then what only the batch gate has."""
    verdict = "Promoted" if decision.promote else "Rejected"
    details = [
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
        f"One-sided test, minimum effect {decision.min_effect:g}; "
        + (
            f"{interval_text(decision.alpha, decision.ci_low, decision.ci_high)} of the improvement."
            if decision.ci_low is not None
            else "no interval."
        ),
    ]
    proof = decision_proof(decision, rows=rows, against=against)
    return proof.markdown(f"{verdict}: the candidate vs the {against} ({name})", details)


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
    rows: DecisionRows,
    against: str,
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
        markdown=gate_markdown(decision, rows=rows, against=against, name=name),
        description=(
            f"{name}: {'promoted' if decision.promote else 'rejected'} the candidate vs the "
            f"{baseline} ({decision.test} on {decision.metric}, p = {decision.p_value:.3g}, "
            f"improvement {decision.effect:+.4f})"
        ),
    )
    return decision
