"""`gate.mode: batch` (the default): the paired test on the batch's held-back rows decides.

The candidate replaces the champion when, on the newest rows of the batch that neither model
learned from, the one-sided paired test is significant at `gate.alpha`, the improvement reaches
`gate.min_effect` and no guard is worse beyond its tolerance. Otherwise the champion stays. Why
this is the default: docs/decisions/001-one-decider.md.
"""

from __future__ import annotations

from blocks.proof import Proof
from tasks.judge import gate_proof
from tasks.policy.base import Policy, Settled, Step, Weighed, stage
from tasks.registering import register_version
from tasks.release import announce, crown, decision_summary
from tasks.stages import Candidate, Judged

#: How a step that keeps the champion begins its outcome, and what a rejection says.
KEPT = "kept"
NOT_BETTER = "the new model was not better"


def first_or_promoted(step: Step) -> str:
    if step.accepting is not None:
        return "contract accepted"
    return "first model" if step.champion is None else "gate"


class BatchGate(Policy):
    """Promote a candidate that passes the paired test on its batch's held-back rows."""

    mode = "batch"

    def settle(self, step: Step, weighed: Weighed, candidate: Candidate, judged: Judged) -> Settled:
        action = first_or_promoted(step)
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
                outcome=f"{KEPT} v{previous}: {NOT_BETTER} on {judged.rows.n} unseen rows",
                challenger=weighed.settled.challenger,
            )
        stage("registering")
        registered = register_version(
            candidate,
            judged.decision,
            step.checked,
            registry=step.registry,
            config=step.config,
            accepting=step.accepting,
            previous=previous,
        )
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
