"""Backtest the CT policy: replay a history in time order, one CT step per batch.

Each batch is first scored by the current champion and by the never-updated first model (before
anything learns from it), then goes through exactly the step a deployment runs. The table says what
continuous training would have bought on this data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.ct import continuous_training
from tasks.config import CTConfig
from tasks.data import read_batch
from tasks.errors import CTError
from tasks.format import png_markdown
from tasks.release import open_registry
from tasks.report import (
    BACKTEST_COLUMNS,
    StepResult,
    backtest_markdown,
    backtest_row,
    plot_backtest,
)
from tasks.train import accuracy_score
from tasks.validate import FeatureSpec
from tasks.validate.rows import validate_rows


def split_batches(
    frame: pd.DataFrame, *, batch_rows: int, order_by: str | None, source: str
) -> list[pd.DataFrame]:
    """Cut one table into consecutive batches of `batch_rows` rows, in `order_by` order."""
    if order_by is not None:
        if order_by not in frame.columns:
            raise CTError(f"{source}: --order-by column {order_by!r} is not in the file")
        frame = frame.sort_values(order_by, kind="stable")
    if batch_rows <= 0:
        raise CTError("--batch-rows must be positive")
    return [frame.iloc[i : i + batch_rows] for i in range(0, len(frame), batch_rows)]


def batch_files(
    data: str | Path, *, out_dir: Path, batch_rows: int, order_by: str | None
) -> list[str]:
    """Batches as files: a folder's CSV/Parquet files in name order, or one file cut into batches."""
    path = Path(data)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in {".csv", ".parquet", ".pq"})
        if not files:
            raise CTError(f"{data}: folder has no .csv or .parquet files")
        return [str(p) for p in files]
    frame, _, _ = read_batch(path)
    folder = out_dir / "batches"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, part in enumerate(
        split_batches(frame, batch_rows=batch_rows, order_by=order_by, source=str(data)), 1
    ):
        target = folder / f"batch-{number:04d}.parquet"
        part.to_parquet(target, index=False)
        paths.append(str(target))
    return paths


@task(name="score-static-model", cache_policy=NO_CACHE)
def score_static(model: Any, spec: FeatureSpec, source: str) -> float | None:
    """Accuracy of the never-updated first model on a batch, for comparison only."""
    frame, _, _ = read_batch(source)
    try:
        valid, _, _ = validate_rows(frame, spec, source=source, max_bad_fraction=1.0)
    except CTError:
        return None
    return accuracy_score(model, valid, spec)


@flow(name="backtest")
def backtest(batches: list[str], config: CTConfig, out_dir: str) -> list[dict[str, object]]:
    """Run one CT step per batch, in order; write backtest.csv and backtest.png into `out_dir`."""
    logger = get_run_logger()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    registry = open_registry(config)
    name = config.dataset.name
    first: tuple[Any, FeatureSpec] | None = None  # the first champion, loaded once
    rows: list[dict[str, object]] = []
    for number, source in enumerate(batches, 1):
        static = None
        if first is not None:
            static = score_static(*first, source)
        state = continuous_training(source, config, return_state=True)
        if state.is_completed():
            step: StepResult = state.result()
        else:
            error = state.result(raise_on_failure=False)
            champion = registry.champion(name)
            step = StepResult(
                source=source,
                batch_id="-",
                rows=0,
                champion_version=None if champion is None else champion.version,
                champion_metric=None,
                drift=None,
                drifted_columns=[],
                retrained=False,
                p_value=None,
                promoted=False,
                outcome=f"failed: {error}",
                new_version=None,
                champion_after=None if champion is None else champion.version,
            )
        if first is None and step.promoted and step.new_version is not None:
            version = registry.get(name, version=step.new_version)
            spec = FeatureSpec.model_validate(version.metadata["schema"]["spec"])
            first = (registry.load_model_of(version), spec)
        rows.append(backtest_row(number, step, static))
        logger.info(
            "batch %d/%d: champion v%s acc %s, drift %s, %s",
            number,
            len(batches),
            step.champion_version,
            "-" if step.champion_metric is None else f"{step.champion_metric:.3f}",
            step.drift,
            step.outcome,
        )
    table = pd.DataFrame(rows, columns=BACKTEST_COLUMNS).astype(
        {"champion_version": "Int64", "new_version": "Int64"}
    )
    table.to_csv(out / "backtest.csv", index=False)
    plot_backtest(table, out / "backtest.png", title=f"Continuous training backtest: {name}")
    create_markdown_artifact(
        key="backtest",
        markdown=backtest_markdown(table) + "\n\n" + png_markdown(out / "backtest.png", "backtest"),
        description=f"{name}: {len(table)} batches, {int(table['promoted'].sum())} promotions",
    )
    return rows
