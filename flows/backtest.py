"""Backtest the CT policy: replay a history in time order, one CT step per batch.

Each batch is first scored by the current champion, the never-updated first model and always-retrain
(the newest candidate trained before the batch: what promoting every candidate would have served),
before anything learns from it; then it goes through exactly the step a deployment runs. The table
says what continuous training bought on this data, and what share of always-retrain's gain the gate
kept.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from blocks.registry import ModelVersion
from flows.ct import continuous_training
from tasks.config import CTConfig
from tasks.data import read_batch
from tasks.errors import CTError, DataValidationError
from tasks.fleet import wait_before_retry
from tasks.format import png_markdown
from tasks.release import Champion, champion_of, open_registry
from tasks.report import (
    StepResult,
    backtest_markdown,
    backtest_row,
    backtest_table,
    batch_line,
    plot_backtest,
    summarize_backtest,
)
from tasks.stages import Trained
from tasks.train import score
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


Scorer = Champion | Trained | None


@task(name="score-on-batch", cache_policy=NO_CACHE)
def score_on_batch(models: list[Scorer], source: str, metric: str) -> list[float | None]:
    """Each model's metric on every row of a batch it can read under its contract's row rules
    (None when it cannot read the batch at all, e.g. a column it needs is gone, or when there is
    no model yet). The batch is read once for all of them. For comparison only: this is what
    production would have scored, refused batch or not."""
    if all(model is None for model in models):
        return [None] * len(models)
    frame, _, _ = read_batch(source)
    return [None if model is None else _score(model, frame, source, metric) for model in models]


def _score(
    model: Champion | Trained, frame: pd.DataFrame, source: str, metric: str
) -> float | None:
    try:
        valid, _, _ = validate_rows(frame, model.spec, source=source, max_bad_fraction=1.0)
    except CTError:
        return None
    return score(model.model, valid, model.spec, metric)


def _failed_step(
    source: str, error: object, champion: ModelVersion | None, metric: str
) -> StepResult:
    refused = isinstance(error, DataValidationError)
    reason = str(error)
    if isinstance(error, DataValidationError):
        first = error.failures[0]
        reason = f"column={first['column']!r} rule={first['check']!r}" + (
            f" ({error.detail})" if error.detail else ""
        )
    version = None if champion is None else champion.version
    return StepResult(
        source=source,
        batch_id="-",
        rows=0,
        metric_name=metric,
        champion_version=version,
        champion_metric=None,
        drift=None,
        drifted_columns=[],
        refused=refused,
        retrained=False,
        p_value=None,
        promoted=False,
        outcome=f"refused: {reason}" if refused else f"failed: {error}",
        new_version=None,
        champion_after=version,
    )


def run_step(source: str, config: CTConfig, *, number: int, plots: bool) -> State[StepResult]:
    """One CT step as a flow run, run again while the Prefect server is busy or unreachable."""
    attempt = 0
    while True:
        attempt += 1
        state = continuous_training(source, config, plots=plots, return_state=True)
        error = None if state.is_completed() else state.result(raise_on_failure=False)
        wait = wait_before_retry(error if isinstance(error, BaseException) else None, attempt)
        if wait is None:
            return state
        get_run_logger().warning(
            "batch %d: the Prefect server was busy or unreachable (%s); the step runs again in %d s",
            number,
            str(error).splitlines()[0],
            wait,
        )
        time.sleep(wait)


def step_of(state: State[StepResult], source: str, config: CTConfig, metric: str) -> StepResult:
    """The step's result, or for a failed step what production served: the champion, scored."""
    if state.is_completed():
        return state.result()
    registry, trusted = open_registry(config), list(config.model.trusted_types)
    serving = registry.champion(config.dataset.name)
    step = _failed_step(source, state.result(raise_on_failure=False), serving, metric)
    if step.refused and serving is not None:
        champion = champion_of(registry, serving, trusted)
        (served,) = score_on_batch([champion], source, metric)
        step = step.model_copy(update={"champion_metric": served})
    return step


def publish_backtest(rows: list[dict[str, object]], out: Path, name: str) -> None:
    """backtest.csv, backtest.png and the `backtest` artifact."""
    table = backtest_table(rows)
    table.to_csv(out / "backtest.csv", index=False)
    summary = summarize_backtest(table)
    plot_backtest(table, out / "backtest.png", title=f"Continuous training backtest: {name}")
    create_markdown_artifact(
        key="backtest",
        markdown=f"{summary.sentence()}\n\n{backtest_markdown(table)}\n\n"
        + png_markdown(out / "backtest.png", "backtest"),
        description=f"{name}: {summary.sentence()}",
    )


@flow(name="backtest")
def backtest(
    batches: list[str], config: CTConfig, out_dir: str, plots: bool = False
) -> list[dict[str, object]]:
    """Run one CT step per batch, in order; write backtest.csv and backtest.png into `out_dir`.

    Before each step, the never-updated first model and always-retrain's model (the newest
    candidate trained before the batch) score the batch; on a refused batch the serving champion
    scores it too (production still served those rows), so CT, the never-updated model and
    always-retrain are compared over the same batches. Each step's drift plot is drawn only with
    `plots` (the backtest's own table and plot are what it shows).
    """
    logger = get_run_logger()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    registry, name = open_registry(config), config.dataset.name
    first: Champion | None = None  # the first champion, loaded once
    always: Trained | None = None  # the newest candidate: always-retrain's champion
    metric = "accuracy"
    rows: list[dict[str, object]] = []
    for number, source in enumerate(batches, 1):
        static, retrained = score_on_batch([first, always], source, metric)
        state = run_step(source, config, number=number, plots=plots)
        step = step_of(state, source, config, metric)
        metric = step.metric_name
        if first is None and step.promoted and step.new_version is not None:
            version = registry.get(name, version=step.new_version)
            first = champion_of(registry, version, list(config.model.trusted_types))
        if isinstance(step.candidate, Trained):
            always = step.candidate
        rows.append(backtest_row(number, step, static, retrained))
        line = batch_line(step)
        # `ct_progress` is what the CLI's progress display reads (flows/cli/console.py)
        logger.info(
            "batch %d/%d: %s",
            number,
            len(batches),
            line,
            extra={"ct_progress": {"done": number, "total": len(batches), "line": line}},
        )
    publish_backtest(rows, out, name)
    return rows
