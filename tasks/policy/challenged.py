"""What `shadow` and `both` share: a challenger judged on the batches that arrive after it.

On every batch, before anything learns from it, the challenger's anytime-valid evidence against
the champion grows by that batch's paired per-row gains (tasks/challenger.py,
tasks/gate/sequential.py). It is promoted when its e-value reaches 1 / alpha_j, dropped when the
mirror evidence says it is worse or its budget of batches is spent. A batch either model learned
from is not evidence.
"""

from __future__ import annotations

from blocks.proof import Proof
from tasks.challenger import (
    ALIAS as CHALLENGER,
)
from tasks.challenger import (
    ChallengerState,
    current_challenger,
    drop_challenger,
    evidence_summary,
    start_challenger,
    weigh_challenger,
)
from tasks.gate.sequential import Verdict
from tasks.judge import trained_on
from tasks.policy.base import Policy, Settled, Step, Weighed, register, stage
from tasks.release import Champion, champion_of, crown, run_id, unwalked
from tasks.stages import Candidate, Checked, Judged
from tasks.window import TrainingWindow


def window_of(model: Champion) -> TrainingWindow:
    return TrainingWindow.model_validate(model.version.metadata["lineage"]["training_window"])


def learned_from(model: Champion, checked: Checked) -> bool:
    """Did this model learn from any row of the batch (by batch, or by time)?"""
    window = window_of(model)
    if any(part.batch_id == checked.batch.batch_id for part in window.slices):
        return True
    time_column = checked.spec.time_column
    if time_column and window.time_end is not None and len(checked.valid):
        first = checked.valid[time_column].min().to_pydatetime(warn=False)
        return bool(first <= window.time_end)
    return False


class ChallengerPolicy(Policy):
    """A candidate becomes the challenger; the evidence of later batches promotes it."""

    def weigh(self, step: Step) -> Weighed:
        champion = step.champion
        state = (
            None
            if step.accepting is not None or champion is None
            else current_challenger(step.registry, step.name)
        )
        if champion is None or state is None:
            return super().weigh(step)
        stage("weighing the challenger")
        contender = champion_of(
            step.registry,
            step.registry.get(step.name, version=state.version),
            list(step.config.model.trusted_types),
        )
        if learned_from(contender, step.checked) or learned_from(champion, step.checked):
            note = (
                f"challenger v{state.version} or the champion trained on this batch: not evidence"
            )
            settled = Settled(
                outcome="",
                champion_after=step.champion_version,
                challenger=state.version,
                notes=[note],
            )
            return Weighed(champion, settled)
        return self._judge(step, champion, contender, state)

    def _judge(
        self, step: Step, champion: Champion, contender: Champion, state: ChallengerState
    ) -> Weighed:
        gate, name, batch_id = step.config.gate, step.name, step.checked.batch.batch_id
        metric = gate.metric_for(step.checked.spec.task)
        verdict, state, proof = weigh_challenger(
            step.registry,
            name,
            unwalked(state),  # its evidence grows every batch
            champion=champion.model,
            champion_version=champion.version.version,
            challenger=contender.model,
            frame=step.checked.valid,
            spec=step.checked.spec,
            batch_id=batch_id,
            gate=gate,
            metric=metric,
            unseen_by=[
                trained_on(f"challenger v{contender.version.version}", window_of(contender)),
                trained_on(f"champion v{champion.version.version}", window_of(champion)),
            ],
            plot_path=str(step.reports / f"{batch_id}-challenger.png") if step.plots else None,
        )
        return self._act(step, verdict, state, proof, champion=champion, contender=contender)

    def _act(
        self,
        step: Step,
        verdict: Verdict,
        state: ChallengerState,
        proof: Proof,
        *,
        champion: Champion,
        contender: Champion,
    ) -> Weighed:
        """Promote the challenger, drop it, or let it collect more evidence."""
        name, version = step.name, champion.version.version
        figures = f"e-value {proof.e_value:.3g} of {proof.level:.3g}"
        if verdict == "promote":
            crowned = crown(
                contender.version,
                registry=step.registry,
                name=name,
                previous=version,
                proof=proof,
                payload={"via": "challenger", "evidence": evidence_summary(state.evidence)},
            )
            step.registry.set_alias(
                name, CHALLENGER, None, expected=state.version, reason="promoted", run_id=run_id()
            )
            note = f"challenger v{state.version} promoted ({figures})"
            settled = Settled("", crowned, promoted=crowned, proof=proof, notes=[note])
            return Weighed(contender, settled)
        if verdict != "continue":
            why = "worse than the champion" if verdict == "drop-worse" else "budget spent"
            drop_challenger(
                step.registry, name, state, reason=f"{why} ({figures})", run_id=run_id()
            )
            note = f"challenger v{state.version} dropped: {why}"
            return Weighed(champion, Settled("", version, proof=proof, notes=[note]))
        budget = step.config.gate.budget_batches
        note = f"challenger v{state.version}: {figures}, batch {state.evidence.batches}/{budget}"
        settled = Settled("", version, challenger=state.version, proof=proof, notes=[note])
        return Weighed(champion, settled)

    def challenge(
        self, step: Step, weighed: Weighed, candidate: Candidate, judged: Judged, *, reason: str
    ) -> Settled:
        """Register the candidate and make it the challenger (replacing one still collecting)."""
        previous = step.champion_version
        registered = register(step, candidate, judged)
        replacing = weighed.settled.challenger
        started = start_challenger(
            step.registry,
            step.name,
            registered.version,
            replaces=replacing,
            gate=step.config.gate,
            reason=reason,
            run_id=run_id(),
        )
        replaced = f", replacing v{replacing}" if replacing is not None else ""
        return Settled(
            outcome=f"challenger v{registered.version} started{replaced}",
            champion_after=previous,
            challenger=started.version,
        )
