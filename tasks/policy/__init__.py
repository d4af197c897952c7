"""How a candidate becomes champion: one class per `gate.mode`, behind one interface
(`tasks/policy/base.py`).

- `batch` (default): the paired test on the batch's held-back rows (`BatchGate`).
- `shadow`: every candidate is the challenger; later batches' anytime-valid evidence decides.
- `both`: the batch test as a screen, then the challenger's evidence.

A first model, and a candidate under a newly accepted contract, are always judged by the batch
test (against the floor): there is no champion whose later batches could be compared.
"""

from __future__ import annotations

from tasks.policy.base import Policy, Settled, Step, Weighed, stage
from tasks.policy.batch import BatchGate
from tasks.policy.both import Both
from tasks.policy.shadow import Shadow

POLICIES: dict[str, Policy] = {p.mode: p for p in (BatchGate(), Shadow(), Both())}

__all__ = [
    "POLICIES",
    "BatchGate",
    "Both",
    "Policy",
    "Settled",
    "Shadow",
    "Step",
    "Weighed",
    "policy_for",
    "stage",
]


def policy_for(mode: str, *, first: bool) -> Policy:
    """The configured policy; the batch gate for a first model or a new contract."""
    return POLICIES["batch" if first else mode]
