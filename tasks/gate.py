"""The promotion gate: is the candidate really better than the champion on rows neither has seen?

Both models predict the same held-back rows, so the comparison is paired. The exact one-sided McNemar
test looks only at the discordant rows: b where only the champion is right, c where only the
candidate is right. Under "no better", c ~ Binomial(b + c, 1/2), and p = P(X >= c). Promote when
p < alpha *and* the accuracy gain is at least `min_effect`. The first model has no champion: it must
beat a floor (the majority class) by the same rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict
from scipy import stats

from tasks.errors import GateError
from tasks.train import BatchSlice, TrainingWindow


class GateDecision(BaseModel):
    """The decision and every number behind it. `effect` is candidate minus baseline accuracy."""

    model_config = ConfigDict(frozen=True)

    promote: bool
    baseline: Literal["champion", "floor"]
    test: str = "mcnemar-exact-one-sided"
    metric: str = "accuracy"
    n: int
    baseline_metric: float
    candidate_metric: float
    effect: float
    only_baseline_right: int
    only_candidate_right: int
    p_value: float
    alpha: float
    min_effect: float
    reasons: list[str]


def mcnemar_exact_greater(
    baseline_correct: np.ndarray, candidate_correct: np.ndarray
) -> tuple[int, int, float]:
    """(b, c, p): discordant counts and the exact one-sided p-value that the candidate is better."""
    base = np.asarray(baseline_correct, dtype=bool)
    cand = np.asarray(candidate_correct, dtype=bool)
    if base.shape != cand.shape:
        raise ValueError(f"paired arrays differ in length: {base.shape} vs {cand.shape}")
    b = int(np.count_nonzero(base & ~cand))
    c = int(np.count_nonzero(~base & cand))
    p = 1.0 if b + c == 0 else float(stats.binom.sf(c - 1, b + c, 0.5))
    return b, c, min(p, 1.0)


def compare(
    y_true: np.ndarray,
    baseline_pred: np.ndarray,
    candidate_pred: np.ndarray,
    *,
    baseline: Literal["champion", "floor"] = "champion",
    alpha: float = 0.05,
    min_effect: float = 0.0,
) -> GateDecision:
    """Decide whether the candidate replaces the baseline, and say why in plain sentences."""
    y = np.asarray(y_true)
    if not (len(y) == len(baseline_pred) == len(candidate_pred)):
        raise ValueError("y_true and both predictions must have the same length")
    base_ok = np.asarray(baseline_pred) == y
    cand_ok = np.asarray(candidate_pred) == y
    b, c, p = mcnemar_exact_greater(base_ok, cand_ok)
    base_acc = float(base_ok.mean()) if len(y) else float("nan")
    cand_acc = float(cand_ok.mean()) if len(y) else float("nan")
    effect = cand_acc - base_acc
    significant = p < alpha
    large_enough = effect >= min_effect and effect > 0
    reasons = [
        f"On {len(y)} held-back rows the candidate scored {cand_acc:.3f} accuracy vs the "
        f"{baseline}'s {base_acc:.3f} ({effect:+.3f}).",
        f"Only the candidate was right on {c} rows, only the {baseline} on {b}: exact one-sided "
        f"McNemar p = {p:.3g} ({'<' if significant else '≥'} alpha {alpha:g}).",
    ]
    if significant and not large_enough:
        reasons.append(f"The gain {effect:+.3f} is below the minimum effect {min_effect:g}.")
    promote = significant and large_enough
    reasons.append(
        "Promote: the candidate is significantly better."
        if promote
        else f"Reject: not enough evidence that the candidate beats the {baseline}."
    )
    return GateDecision(
        promote=promote,
        baseline=baseline,
        n=len(y),
        baseline_metric=base_acc,
        candidate_metric=cand_acc,
        effect=effect,
        only_baseline_right=b,
        only_candidate_right=c,
        p_value=p,
        alpha=alpha,
        min_effect=min_effect,
        reasons=reasons,
    )


def check_unseen(
    holdout: BatchSlice, holdout_start: datetime | None, windows: dict[str, TrainingWindow]
) -> None:
    """Refuse a test set that overlaps a model's recorded training window (rows or time)."""
    for who, window in windows.items():
        for part in window.slices:
            same = part.batch_id == holdout.batch_id
            if same and part.start < holdout.stop and holdout.start < part.stop:
                raise GateError(
                    f"the test rows {holdout.batch_id}[{holdout.start}:{holdout.stop}] overlap the "
                    f"{who}'s training rows [{part.start}:{part.stop}]; a fair gate needs unseen rows"
                )
        if (
            window.time_end is not None
            and holdout_start is not None
            and holdout_start < window.time_end
        ):
            raise GateError(
                f"the test set starts at {holdout_start}, before the end of the {who}'s training data "
                f"(which ends {window.time_end}); a fair gate needs rows newer than both models saw"
            )


def gate_markdown(decision: GateDecision, *, name: str, candidate: str) -> str:
    """Why the candidate was promoted or rejected, with the numbers."""
    verdict = "Promoted" if decision.promote else "Rejected"
    lines = [
        f"# {verdict}: {candidate} vs the {decision.baseline} ({name})",
        "",
        *[f"- {reason}" for reason in decision.reasons],
        "",
        f"| on {decision.n} held-back rows | {decision.baseline} | candidate |",
        "|---|---|---|",
        f"| accuracy | {decision.baseline_metric:.4f} | {decision.candidate_metric:.4f} |",
        f"| rows only this model got right | {decision.only_baseline_right} | "
        f"{decision.only_candidate_right} |",
        "",
        f"Test: {decision.test}; p = {decision.p_value:.4g}; alpha = {decision.alpha:g}; "
        f"minimum effect = {decision.min_effect:g}.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- Prefect tasks
@task(name="gate-candidate", cache_policy=NO_CACHE)
def gate_candidate(
    y_true: np.ndarray,
    baseline_pred: np.ndarray,
    candidate_pred: np.ndarray,
    *,
    baseline: Literal["champion", "floor"],
    alpha: float,
    min_effect: float,
    name: str,
) -> GateDecision:
    """Decide, log the decision and publish why as a markdown artifact. Never retried or cached."""
    decision = compare(
        y_true, baseline_pred, candidate_pred, baseline=baseline, alpha=alpha, min_effect=min_effect
    )
    get_run_logger().info("Gate: %s", " ".join(decision.reasons))
    create_markdown_artifact(
        key="gate-decision",
        markdown=gate_markdown(decision, name=name, candidate="candidate"),
        description=(
            f"{name}: {'promoted' if decision.promote else 'rejected'} the candidate vs the "
            f"{baseline}, p = {decision.p_value:.3g}, accuracy {decision.effect:+.3f}"
        ),
    )
    return decision
