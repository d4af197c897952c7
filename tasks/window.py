"""Exactly which rows a model learned from: its training window, recorded in its lineage.

The gate refuses a test set that overlaps either model's window (by rows or by time), so a test
row is always one neither model has seen.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import pandas as pd
from pydantic import BaseModel, ConfigDict

from tasks.validate import FeatureSpec


class BatchSlice(BaseModel):
    """Rows [start, stop) of one batch, in its validated (time-sorted) order."""

    model_config = ConfigDict(frozen=True)

    batch_id: str
    start: int
    stop: int


class TrainingWindow(BaseModel):
    """Exactly which rows a model learned from: the gate refuses test rows inside it."""

    model_config = ConfigDict(frozen=True)

    slices: list[BatchSlice]
    rows: int
    time_start: datetime | None
    time_end: datetime | None
    fingerprint: str


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the frame's values, row order included: the same data gives the same print."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def training_window(
    frame: pd.DataFrame, slices: list[BatchSlice], spec: FeatureSpec
) -> TrainingWindow:
    times = frame[spec.time_column] if spec.time_column else None
    return TrainingWindow(
        slices=slices,
        rows=len(frame),
        time_start=None if times is None or times.empty else times.min().to_pydatetime(warn=False),
        time_end=None if times is None or times.empty else times.max().to_pydatetime(warn=False),
        fingerprint=fingerprint(frame),
    )
