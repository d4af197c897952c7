"""`gate.mode: both`: the batch test at `gate.screen_alpha` is a screen; a candidate that passes
it becomes the challenger (replacing one still collecting), and later batches' evidence decides.
"""

from __future__ import annotations

from tasks.config import GateConfig
from tasks.judge import gate_proof
from tasks.policy.base import Settled, Step, Weighed
from tasks.policy.batch import reject
from tasks.policy.challenged import ChallengerPolicy
from tasks.stages import Candidate, Judged


class Both(ChallengerPolicy):
    """The batch test screens candidates; the challenger's evidence promotes them."""

    mode = "both"

    def level(self, gate: GateConfig) -> float:
        return gate.screen_alpha

    def settle(self, step: Step, weighed: Weighed, candidate: Candidate, judged: Judged) -> Settled:
        if not judged.decision.promote:
            proof = gate_proof(judged, action="screen")
            return reject(
                step,
                judged,
                proof,
                outcome=f"kept v{step.champion_version}: the new model did not pass the screen",
                challenger=weighed.settled.challenger,
            )
        return self.challenge(step, weighed, candidate, judged, reason=judged.decision.reasons[-1])
