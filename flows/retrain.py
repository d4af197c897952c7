"""The retraining subflow: the same code path trains the first model and every candidate.

Training window = the last `history_batches` batches of history + the older part of the new batch.
The newest `holdout_fraction` of the new batch is held back: the gate's test set, which neither the
candidate nor the champion has seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.config import CTConfig
from tasks.data import read_history, read_history_batch
from tasks.train import Fitted, estimator_name, fit_candidate, split_holdout
from tasks.validate import FeatureSpec
from tasks.window import BatchSlice, TrainingWindow, training_window


@dataclass(frozen=True)
class Candidate:
    """A fitted candidate, the rows it learned from, and the held-back rows it has not seen."""

    model: Fitted
    train: pd.DataFrame
    holdout: pd.DataFrame
    window: TrainingWindow
    held: BatchSlice


@task(name="fit-candidate", cache_policy=NO_CACHE)
def train_model(train: pd.DataFrame, spec: FeatureSpec, config: CTConfig) -> Fitted:
    model = fit_candidate(train, spec, config.model, seed=config.seed)
    get_run_logger().info(
        "Fitted %s on %d rows", estimator_name(config.model, spec.task), len(train)
    )
    return model


@flow(name="retrain")
def retrain(
    batch_id: str, spec: FeatureSpec, config: CTConfig, windows: list[int] | None = None
) -> dict[int, Candidate]:
    """Fit one candidate per training window, by window (`windows`: how many batches of history
    each adds to the new batch; default `[retrain.history_batches]`), holding back the same newest
    rows of the batch for every one. gate.mode auto trains its window and batch-only candidates
    here, in one subflow: a subflow run costs Prefect API round trips that a second would repeat."""
    history_dir = Path(config.history_dir)
    sizes = set([config.retrain.history_batches] if windows is None else windows)
    deepest = read_history(history_dir, last=max(sizes), before=batch_id)
    new = read_history_batch(history_dir, batch_id)
    train_new, holdout = split_holdout(new, config.retrain.holdout_fraction)
    if spec.time_column:  # history rows not older than the test slice would leak the future
        cutoff = holdout[spec.time_column].min()
        deepest = [
            (i, f.iloc[: int(f[spec.time_column].searchsorted(cutoff, side="left"))])
            for i, f in deepest
        ]
    held = BatchSlice(batch_id=batch_id, start=len(train_new), stop=len(new))
    holdout = holdout.reset_index(drop=True)
    candidates = {}
    for size in sorted(sizes):
        past = [(i, f) for i, f in deepest[-size:] if len(f)] if size else []
        slices = [BatchSlice(batch_id=i, start=0, stop=len(f)) for i, f in past]
        slices.append(BatchSlice(batch_id=batch_id, start=0, stop=len(train_new)))
        train = pd.concat([*(f for _, f in past), train_new], ignore_index=True)
        model = train_model(train, spec, config)
        get_run_logger().info(
            "Training window: %d rows from %d batches; %d rows held back for the gate",
            len(train),
            len(slices),
            len(holdout),
        )
        candidates[size] = Candidate(
            model, train, holdout, training_window(train, slices, spec), held
        )
    return candidates
