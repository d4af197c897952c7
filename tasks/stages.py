"""The typed results that pass from one stage of a CT step to the next.

load → `Batch` (tasks/data.py) → validate → `Checked` → observe → `Observed` → retrain →
`Candidate` → judge → `Judged` → the policy settles it (tasks/policy/). They hold frames and
fitted models, so they are frozen dataclasses; what is stored or emitted is a pydantic model
(`GateDecision`, `Proof`, `StepResult`).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import pandas as pd
from pydantic import BaseModel, ConfigDict

from blocks.proof import DecisionRows
from tasks.config import Label
from tasks.data import Batch
from tasks.drift import DriftReport
from tasks.gate import GateDecision
from tasks.gx_suite import QualityReport
from tasks.train import Fitted
from tasks.validate import FeatureSpec, ValidationOutcome
from tasks.window import BatchSlice, TrainingWindow


class Sampled(BaseModel):
    """A dataset's rows were sampled for learning: how many, of how many valid rows, which seed."""

    model_config = ConfigDict(frozen=True)

    rows: int
    of_valid_rows: int
    seed: int
    how: str


@dataclass(frozen=True)
class Checked:
    """A batch that passed its contract: the valid rows and what validation set aside."""

    batch: Batch
    spec: FeatureSpec
    valid: pd.DataFrame
    outcome: ValidationOutcome
    quarantine_path: str | None
    sampled: Sampled | None = None


@dataclass(frozen=True)
class Observed:
    """What the champion makes of the batch before anything learns from it. The quality suite
    runs meanwhile in the background (`quality`, collected before the step returns)."""

    drift: DriftReport | None
    metric: float | None
    new_classes: list[Label]
    quality: Future[QualityReport] | None = None
    quality_report: str | None = None

    @property
    def drifted(self) -> bool:
        return self.drift is not None and self.drift.drifted


@dataclass(frozen=True)
class Candidate:
    """A fitted candidate, the rows it learned from, and the held-back rows it has not seen."""

    model: Fitted
    train: pd.DataFrame
    holdout: pd.DataFrame
    window: TrainingWindow
    held: BatchSlice


@dataclass(frozen=True)
class Judged:
    """The batch test's decision, and the rows it used with the models checked not to have
    learned from them (what a promotion's proof records)."""

    decision: GateDecision
    rows: DecisionRows
    against: str


@dataclass(frozen=True)
class Trained:
    """The candidate a step trained, with the contract it was trained under: a backtest scores it
    on the next batch as always-retrain's model (the counterfactual of promoting every one)."""

    model: Fitted
    spec: FeatureSpec
