"""`gate.mode: shadow`: every candidate becomes the challenger, and only the evidence of the
batches that arrive after it decides (no batch test). While a challenger collects evidence, no new
candidate is trained. Suits data whose rows arrive clustered (by region, by customer), where a
holdout cut from the candidate's own batch flatters it: docs/decisions/001-one-decider.md.
"""

from __future__ import annotations

from tasks.policy.base import Settled, Step, Weighed
from tasks.policy.challenged import ChallengerPolicy
from tasks.stages import Candidate, Judged


class Shadow(ChallengerPolicy):
    """Each new candidate is the challenger; it is promoted on later batches' evidence alone."""

    mode = "shadow"

    def retrains(self, weighed: Weighed) -> bool:
        return not weighed.collecting

    def settle(self, step: Step, weighed: Weighed, candidate: Candidate, judged: Judged) -> Settled:
        return self.challenge(
            step, weighed, candidate, judged, reason="shadow: every new candidate"
        )
