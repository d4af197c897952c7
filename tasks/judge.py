"""Judge a candidate: the paired, one-sided test against the champion on rows neither learned from.

Both models score the same held-back newest rows of the batch; before they do, the rows are checked
against both models' recorded training windows (`check_unseen`), so a decision is never taken on a
row either model saw. A first model, or one under a newly accepted contract, is judged against the
floor (a model that predicts the training majority or mean). The decision and the rows it used
become the promotion's `Proof` (blocks/proof.py) when the candidate is promoted.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from blocks.proof import DecisionRows, Proof
from tasks.config import CTConfig
from tasks.gate import Guard, check_unseen, decision_proof, gate_candidate, get_metric
from tasks.release import Champion
from tasks.stages import Candidate, Judged
from tasks.train import fit_floor, gate_inputs
from tasks.validate import FeatureSpec
from tasks.window import TrainingWindow


def window_text(window: TrainingWindow) -> str:
    """A training window as a person reads it: its batches and row ranges."""
    return ", ".join(f"{p.batch_id}[{p.start}:{p.stop}]" for p in window.slices)


def trained_on(who: str, window: TrainingWindow) -> str:
    """A model and its training window, as a proof names the models checked not to have seen
    its rows: "champion v3 (trained on batch-0001[0:560], ...)"."""
    return f"{who} (trained on {window_text(window)})"


def held_rows(candidate: Candidate, windows: dict[str, TrainingWindow]) -> DecisionRows:
    """The held-back rows, and which models' windows they were checked against."""
    held = candidate.held
    return DecisionRows(
        batches=[held.batch_id],
        n=held.stop - held.start,
        ranges=[f"{held.batch_id}[{held.start}:{held.stop}]"],
        unseen_by=[trained_on(who, w) for who, w in windows.items()],
    )


def judge(
    candidate: Candidate,
    champion: Champion | None,
    spec: FeatureSpec,
    *,
    config: CTConfig,
    alpha: float,
) -> Judged:
    """Champion (or, with `champion` None, the floor) and candidate on the same held-back rows
    that neither learned from: the paired, one-sided test at `alpha`, and the guards."""
    windows = {"candidate": candidate.window}
    if champion is not None:
        windows[f"champion v{champion.version.version}"] = TrainingWindow.model_validate(
            champion.version.metadata["lineage"]["training_window"]
        )
    holdout = candidate.holdout
    start = holdout[spec.time_column].min().to_pydatetime(warn=False) if spec.time_column else None
    check_unseen(candidate.held, start, windows)
    gate = config.gate
    metric, guards = gate.metric_for(spec.task), gate.guards_for(spec.task)
    baseline: Literal["champion", "floor"] = "floor" if champion is None else "champion"
    baseline_model = (
        fit_floor(candidate.train, spec, metric=metric) if champion is None else champion.model
    )
    probabilities = any(
        get_metric(m).needs == "probabilities" for m in [metric, *(g.metric for g in guards)]
    )
    y, (base_pred, cand_pred), _ = gate_inputs(
        holdout, spec, [baseline_model, candidate.model], probabilities=probabilities
    )
    order = None
    if gate.time_ordered:
        order = holdout[spec.time_column].to_numpy() if spec.time_column else np.arange(len(y))
    against = "floor" if champion is None else f"champion v{champion.version.version}"
    rows = held_rows(candidate, windows)
    decision = gate_candidate(
        y,
        base_pred,
        cand_pred,
        baseline=baseline,
        metric=metric,
        test=gate.test,
        alpha=alpha,
        min_effect=gate.min_effect,
        guards=[Guard(metric=g.metric, tolerance=g.tolerance) for g in guards],
        order=order,
        rows=rows,
        against=against,
        name=config.dataset.name,
        seed=config.seed,
    )
    return Judged(decision=decision, rows=rows, against=against)


def gate_proof(judged: Judged, *, action: str, accepted: str | None = None) -> Proof:
    """The batch test as a promotion's proof (`tasks.gate.decision_proof`)."""
    return decision_proof(
        judged.decision, rows=judged.rows, against=judged.against, action=action, accepted=accepted
    )
