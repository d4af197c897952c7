"""The great-expectations suite, runnable here or in a background process.

Importing great_expectations takes seconds, and its suite is built from a champion's profile, not
from the batch. So the CT step hands the suite to one background process (spawned once per Python
process, warmed up when a step starts), where GX is imported once, each champion's context and
suite are built once and cached, and each batch only runs: the step goes on meanwhile and collects
the report when it needs it. Light on purpose (pandas, pydantic; GX only in the worker): the worker
does not import Prefect.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import multiprocessing
import sys
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from tasks.labels import category_label

#: (GX expectation class name, keyword arguments), as `tasks.validate.quality` builds them.
Specs = list[tuple[str, dict[str, Any]]]


class ExpectationResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    expectation: str
    column: str | None
    success: bool
    observed: str
    unexpected_percent: float | None
    arguments: dict[str, Any]


class QualityReport(BaseModel):
    """The suite's results, JSON-serialisable."""

    model_config = ConfigDict(frozen=True)

    success: bool
    evaluated: int
    failed: int
    results: list[ExpectationResult]


@functools.lru_cache(maxsize=4)
def _validation_definition(specs: str) -> Any:
    """The GX context, suite and validation definition for one set of expectations: built once
    per champion profile (and settings) in a process, not per batch; a backtest or a long-lived
    worker reuses it for every batch the same champion judges."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("ct")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = gx.ExpectationSuite(name="ct-quality")
    for name, kwargs in json.loads(specs):
        suite.add_expectation(getattr(gx.expectations, name)(**kwargs))
    suite = context.suites.add(suite)
    return context.validation_definitions.add(
        gx.ValidationDefinition(data=batch, suite=suite, name="ct-quality")
    )


def run_suite(frame: pd.DataFrame, specs: Specs, categorical: list[str]) -> QualityReport:
    """Run the expectations on `frame` in an ephemeral GX context (cached per set of
    expectations); `categorical` columns are compared as text, as the profile labels them."""
    definition = _validation_definition(json.dumps(specs, sort_keys=True))
    frame = frame.copy()
    for column in categorical:
        if column in frame.columns:
            values = frame[column].astype(object)
            frame[column] = values.where(values.isna(), values.map(category_label))
    result = definition.run(batch_parameters={"dataframe": frame})
    results = []
    for item in result.results:
        config = item.expectation_config
        assert config is not None
        kwargs = {k: v for k, v in config.kwargs.items() if k not in {"batch_id"}}
        observed = item.result.get("observed_value", item.result.get("unexpected_count", ""))
        percent = item.result.get("unexpected_percent")
        results.append(
            ExpectationResult(
                expectation=config.type,
                column=kwargs.get("column"),
                success=bool(item.success),
                observed=str(observed),
                unexpected_percent=None if percent is None else float(percent),
                arguments={k: v for k, v in kwargs.items() if k != "value_set"}
                | ({"value_set": kwargs["value_set"]} if "value_set" in kwargs else {}),
            )
        )
    failed = sum(not r.success for r in results)
    return QualityReport(
        success=failed == 0, evaluated=len(results), failed=failed, results=results
    )


_WORKER: list[Executor] = []  # the one background process, made on first use


def _worker() -> Executor:
    """The background process (spawned, not forked: a fork of a process that has used OpenMP can
    hang), shut down when this process exits. It is started by `warm_up`. A daemonic process (a
    Dask worker) may not have children, and a fork of ct's warm process (flows/cli/warm.py) has GX
    imported already (a new process would import it again, for seconds): there the suite runs in
    a background thread instead."""
    if not _WORKER:
        pool: Executor
        if multiprocessing.current_process().daemon or "great_expectations" in sys.modules:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ct-quality")
        else:
            pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        atexit.register(pool.shutdown, wait=False, cancel_futures=True)
        _WORKER.append(pool)
    return _WORKER[0]


def _import_gx() -> None:
    import great_expectations  # noqa: F401  (the seconds are paid here, in the background)


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """A spawned process runs the parent's main module again (as `__mp_main__`) unless it cannot
    find it; the worker needs nothing from it, and for `python flows/ct.py` that would import
    Prefect and scikit-learn in the worker for nothing (seconds). Hide it while the worker starts."""
    main = sys.modules["__main__"]
    saved: dict[str, Any] = {
        k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__
    }
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def warm_up() -> None:
    """Start the worker and its GX import now, so that they overlap the rest of the work (the
    process starts within the first submit)."""
    if _WORKER:
        return
    with _main_module_hidden():
        _worker().submit(_import_gx)


def submit(frame: pd.DataFrame, specs: Specs, categorical: list[str]) -> Future[QualityReport]:
    """Run the suite in the background process; the future holds the report (or the error)."""
    warm_up()
    return _worker().submit(run_suite, frame, specs, categorical)
