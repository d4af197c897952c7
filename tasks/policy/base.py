"""The interface every gate mode implements, and the typed results it returns.

A CT step does not ask which mode it runs: it calls the policy's four methods in order
(`weigh` before anything learns from the batch, `retrains`, `level` for the batch test, `settle`
once the candidate is judged), and each mode is one class (STYLE R13). Whatever the mode, the
champion moves only through `tasks.release.crown`, whose registry call refuses a promotion
without a passed test's proof (blocks/proof.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from blocks.proof import Proof
from blocks.registry import ModelRegistry, ModelVersion
from tasks.config import CTConfig, GateConfig
from tasks.registering import register_version
from tasks.release import Champion
from tasks.stages import Candidate, Checked, Judged


def register(step: Step, candidate: Candidate, judged: Judged) -> ModelVersion:
    """Register a judged candidate as a version of the step's model (not yet champion or
    challenger), against the step's champion."""
    stage("registering")
    return register_version(
        candidate,
        judged.decision,
        step.checked,
        registry=step.registry,
        config=step.config,
        accepting=step.accepting,
        previous=step.champion_version,
    )


def stage(name: str) -> None:
    """Say which stage the step is in (`ct_stage`: the CLI's spinner shows it)."""
    from prefect import get_run_logger

    get_run_logger().info("Stage: %s", name, extra={"ct_stage": name})


@dataclass(frozen=True)
class Step:
    """What a policy acts on in one CT step: the registry, the configuration, the checked
    batch, the serving champion (None before the first), and a contract being accepted."""

    registry: ModelRegistry
    config: CTConfig
    checked: Checked
    champion: Champion | None
    accepting: str | None = None
    plots: bool = True
    reports: Path = Path(".")

    @property
    def name(self) -> str:
        return self.config.dataset.name

    @property
    def champion_version(self) -> int | None:
        return None if self.champion is None else self.champion.version.version


@dataclass(frozen=True)
class Settled:
    """What the step did about the champion: the outcome a person reads, the version promoted
    (None: the champion stayed), the champion and challenger after the step, and the proof of
    the decision taken (passed or not)."""

    outcome: str
    champion_after: int | None
    promoted: int | None = None
    challenger: int | None = None
    proof: Proof | None = None
    notes: list[str] = field(default_factory=list)

    def then(self, later: Settled) -> Settled:
        """This (the challenger weighed before learning) followed by what the candidate did; a
        promotion and its proof from either are kept, the later one's first."""
        return replace(
            later,
            promoted=later.promoted if later.promoted is not None else self.promoted,
            proof=later.proof if later.promoted is not None or self.proof is None else self.proof,
            notes=[*self.notes, *later.notes],
        )


@dataclass(frozen=True)
class Weighed:
    """The step after the policy's look before learning: the champion from now on (the
    challenger, if it just won), and what happened (`settled`)."""

    champion: Champion | None
    settled: Settled

    @property
    def collecting(self) -> bool:
        """A challenger is still collecting evidence."""
        return self.settled.challenger is not None


class Policy(ABC):
    """One way a candidate becomes champion."""

    mode: ClassVar[str]

    def weigh(self, step: Step) -> Weighed:
        """Before anything learns from the batch (a challenger is judged on it): by default,
        nothing happens."""
        version = step.champion_version
        return Weighed(step.champion, Settled(outcome="", champion_after=version))

    def retrains(self, weighed: Weighed) -> bool:
        """Whether a candidate is wanted this step (when the retrain policy asks for one)."""
        return True

    def level(self, gate: GateConfig) -> float:
        """The one-sided level the batch test is run at."""
        return gate.alpha

    @abstractmethod
    def settle(self, step: Step, weighed: Weighed, candidate: Candidate, judged: Judged) -> Settled:
        """Act on the judged candidate: promote it, start it as the challenger, or keep the
        champion."""
