"""`gate.mode: batch` (the default): the paired test on the batch's held-back rows decides.

The candidate replaces the champion when, on the newest rows of the batch that neither model
learned from, the one-sided paired test is significant at `gate.alpha`, the improvement reaches
`gate.min_effect` and no guard is worse beyond its tolerance. Otherwise the champion stays. Why
this is the default: docs/decisions/001-one-decider.md.
"""

from __future__ import annotations

from blocks.proof import Proof
from tasks.judge import gate_proof
from tasks.policy.base import Policy, Settled, Step, Weighed, register
from tasks.release import announce, crown, decision_summary
from tasks.report import REJECTED
from tasks.stages import Candidate, Judged


def action_of(step: Step) -> str:
    """What a promotion by the batch test is: a new contract, a first model, or the gate."""
    if step.accepting is not None:
        return "contract accepted"
    return "first model" if step.champion is None else "gate"


class BatchGate(Policy):
    """Promote a candidate that passes the paired test on its batch's held-back rows."""

    mode = "batch"

    def settle(self, step: Step, weighed: Weighed, candidate: Candidate, judged: Judged) -> Settled:
        action = action_of(step)
        accepted = None
        if step.accepting is not None:
            accepted = (
                f"contract accepted from batch {step.checked.batch.batch_id}: {step.accepting}"
            )
        proof = gate_proof(judged, action=action, accepted=accepted)
        previous = step.champion_version
        if not judged.decision.promote:
            return reject(
                step,
                judged,
                proof,
                outcome=(
                    f"kept v{previous}: {REJECTED} on {judged.rows.n} unseen rows"
                    if previous is not None
                    else f"no model yet: {REJECTED} than a constant guess on "
                    f"{judged.rows.n} unseen rows"
                ),
                challenger=weighed.settled.challenger,
            )
        registered = register(step, candidate, judged)
        crown(
            registered,
            registry=step.registry,
            name=step.name,
            previous=previous,
            proof=proof,
            payload={"decision": decision_summary(judged.decision), "via": action},
        )
        outcome = {
            "gate": f"promoted v{registered.version}: better than v{previous} on "
            f"{judged.rows.n} unseen rows",
            "first model": f"first model v{registered.version}",
        }.get(action, f"new contract: v{registered.version}")
        return Settled(
            outcome=outcome,
            champion_after=registered.version,
            promoted=registered.version,
            challenger=weighed.settled.challenger,
            proof=proof,
        )


def reject(
    step: Step, judged: Judged, proof: Proof, *, outcome: str, challenger: int | None = None
) -> Settled:
    """The champion stays: announce the rejection with its decision."""
    announce(
        "ct.gate.rejected",
        step.name,
        {
            "batch_id": step.checked.batch.batch_id,
            "champion_version": step.champion_version,
            "decision": decision_summary(judged.decision),
            "proof": proof.model_dump(mode="json"),
        },
    )
    return Settled(
        outcome=outcome, champion_after=step.champion_version, challenger=challenger, proof=proof
    )
