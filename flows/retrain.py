"""The retraining subflow: the same code path trains the first model and every candidate.

Training window = the last `history_batches` batches of history + the older part of the new batch.
The newest `holdout_fraction` of the new batch is held back: the gate's test set, which neither the
candidate nor the champion has seen.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.config import CTConfig
from tasks.data import read_history, read_history_batch
from tasks.stages import Candidate
from tasks.train import Fitted, estimator_name, fit_candidate, split_holdout
from tasks.validate import FeatureSpec
from tasks.window import BatchSlice, training_window


@task(name="fit-candidate", cache_policy=NO_CACHE)
def train_model(train: pd.DataFrame, spec: FeatureSpec, config: CTConfig) -> Fitted:
    model = fit_candidate(train, spec, config.model, seed=config.seed)
    get_run_logger().info(
        "Fitted %s on %d rows", estimator_name(config.model, spec.task), len(train)
    )
    return model


@flow(name="retrain")
def retrain(batch_id: str, spec: FeatureSpec, config: CTConfig) -> Candidate:
    """Fit the candidate on the last `retrain.history_batches` batches of history and the new
    batch's older part, holding back its newest rows for the gate."""
    history_dir = Path(config.history_dir)
    size = config.retrain.history_batches
    past = read_history(history_dir, last=size, before=batch_id) if size else []
    new = read_history_batch(history_dir, batch_id)
    train_new, holdout = split_holdout(new, config.retrain.holdout_fraction)
    if spec.time_column:  # history rows not older than the test slice would leak the future
        cutoff = holdout[spec.time_column].min()
        past = [
            (i, f.iloc[: int(f[spec.time_column].searchsorted(cutoff, side="left"))])
            for i, f in past
        ]
    past = [(i, f) for i, f in past if len(f)]
    held = BatchSlice(batch_id=batch_id, start=len(train_new), stop=len(new))
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
    holdout = holdout.reset_index(drop=True)
    return Candidate(model, train, holdout, training_window(train, slices, spec), held)
