"""A fleet of models from one deployment: a CT step per model, on Dask through Prefect.

`ct-fleet` looks in the fleet's landing folder (one subfolder of batches per model), finds the
batches no CT step has finished on, and runs each waiting model's steps as one task on a
`DaskTaskRunner` (prefect-dask): a local cluster of worker processes by default, or an existing
Dask cluster by address (`fleet.dask_address`). Tasks get paths, never frames, and hash nothing.

Each model keeps its own registry entries, its own concurrency slot (`ct-model-<name>`, strict: the
CT step holds it) and its own decisions; a bad batch, an exception or a lost worker fails that
model only. A model's task may run twice (Dask re-runs a task after losing its worker,
PrefectHQ/prefect#15442): a CT step on a batch that already finished changes nothing. The run
ends with a table artifact of every model's outcome and fails, naming them, if any model failed.

Run it from the command line: `python flows/fleet.py --help`.
"""

from __future__ import annotations

import argparse
import sys

if __name__ == "__main__":  # the guard a process cluster needs; and the tasks Dask ships must
    import flows.fleet  # come from the module, not from __main__

    sys.exit(flows.fleet.main())

import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from tasks.config import CTConfig, FleetConfig
from tasks.errors import CTError
from tasks.fleet import (
    ModelOutcome,
    batch_files,
    failure_summary,
    fleet_rows,
    landing_of,
    model_config,
    wait_before_retry,
    waiting,
)
from tasks.release import open_registry


class ModelFailed(CTError):
    """A model's batches did not all finish; the message says which and why."""


def task_runner(fleet: FleetConfig) -> Any:
    """The Dask task runner: the existing cluster at `dask_address`, else a local one on
    127.0.0.1 (its dashboard on a free port, so two fleets on one machine do not collide)."""
    from prefect_dask import DaskTaskRunner

    if fleet.dask_address:
        return DaskTaskRunner(address=fleet.dask_address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs=local_cluster(fleet.workers, fleet.threads_per_worker),
    )


def local_cluster(workers: int = 2, threads_per_worker: int = 1) -> dict[str, Any]:
    """A `distributed.LocalCluster`'s arguments: worker processes on 127.0.0.1, the dashboard on a
    free port (`dashboard_address=None` would still bind 8787)."""
    return {
        "n_workers": workers,
        "threads_per_worker": threads_per_worker,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",
    }


@task(name="fleet-model", cache_policy=NO_CACHE)
def step_model(name: str, todo: list[str], already: int, config: CTConfig) -> ModelOutcome:
    """Every waiting batch of one model (`todo`, oldest first; `already` were done before), each a
    CT step (a subflow run; one run again after a lost worker changes nothing). A batch that fails
    is reported and the model's next batches still run; the task fails at the end if any did, so
    the model shows as failed in the run graph and in the fleet's table."""
    # Imported here, on the worker: Dask ships this function by value (cloudpickle finds the Task,
    # not the function, under its name), and a flow shipped by value loses the module globals
    # its parameter annotations (`from __future__ import annotations`) are resolved in.
    from flows.ct import continuous_training
    from flows.heartbeats import without_heartbeats

    logger = get_run_logger()
    started = time.perf_counter()
    steps, failures, outcome, champion = 0, [], "", None

    def step(path: str) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                with without_heartbeats():  # 0.5-1 s of idle worker per step, to join the thread
                    return continuous_training(path, config, plots=False)
            except Exception as exc:
                wait = wait_before_retry(exc, attempt)
                if wait is None:
                    raise
                logger.warning(
                    "Model %s, batch %s: the Prefect server was busy or unreachable (%s); the "
                    "step runs again in %d s (a step on a batch is done once, however often run)",
                    name,
                    path,
                    str(exc).splitlines()[0],
                    wait,
                )
                time.sleep(wait)

    for path in todo:
        try:
            result = step(path)
        except Exception as exc:  # one batch's failure is reported, the others still run
            message = str(exc).splitlines()[0] if str(exc) else repr(exc)
            failures.append(message if path in message else f"{path}: {message}")
            logger.error("Model %s, batch %s failed: %s", name, path, exc)
            continue
        steps += 1
        outcome, champion = result.outcome, result.champion_after
    if failures:
        raise ModelFailed(f"{len(failures)} of {len(todo)} batches failed: {' | '.join(failures)}")
    return ModelOutcome(
        name=name,
        status="ok",
        steps=steps,
        already=already,
        champion_after=champion,
        outcome=outcome or "nothing new",
        seconds=time.perf_counter() - started,
    )


def _outcome(name: str, future: PrefectFuture[ModelOutcome]) -> ModelOutcome:
    """The model's outcome from its task's final state (a failed task, a killed worker too)."""
    state = future.state
    if state.is_completed():
        return future.result()
    error = future.result(raise_on_failure=False)
    message = str(error) if isinstance(error, BaseException) and str(error) else state.message
    first = (message or state.name or "failed").splitlines()[0]
    return ModelOutcome(name=name, status="failed", outcome=first)


#: What a lost worker's unfinished runs are told when the fleet marks them.
ORPHANED = "its Dask worker was lost; the model's task ran again on another worker"


def crash_orphans(parent: Any) -> list[str]:
    """Mark Crashed the flow runs under `parent` (its subflows, and theirs) that are still
    pending or running once every task of it has finished: the CT steps a killed Dask worker
    was running. Their tasks ran again elsewhere, so they would otherwise show as running
    forever. The fleet's CT steps send no heartbeats (`flows.heartbeats`), so Prefect's own
    zombie detection would not find them either. Returns the runs' names."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    if parent is None:
        return []
    unfinished = FlowRunFilterState(
        type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING])
    )
    marked: list[str] = []
    with get_client(sync_client=True) as client:
        level, seen = [parent], set()
        while level:  # a lost step's own subflow (retrain) was left running too
            below = []
            while runs := [  # a page at a time: a marked run leaves the filter
                run
                for run in client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=level),
                        state=unfinished,
                    ),
                    limit=100,
                )
                if run.id not in seen
            ]:
                for run in runs:
                    client.set_flow_run_state(run.id, Crashed(message=ORPHANED), force=True)
                    seen.add(run.id)
                    marked.append(run.name)
                    below.append(run.id)
            level = below
    return marked


@flow(name="ct-fleet-steps")
def fleet_steps(plan: dict[str, tuple[list[str], int, CTConfig]]) -> list[ModelOutcome]:
    """The waiting models' tasks, submitted together to the task runner; every one is waited for."""
    futures = {name: step_model.submit(name, *job) for name, job in plan.items()}
    for future in futures.values():
        future.wait()
    return [_outcome(name, future) for name, future in futures.items()]


def _plan(
    config: CTConfig, landing: str, files: dict[str, list[str]]
) -> tuple[dict[str, tuple[list[str], int, CTConfig]], list[ModelOutcome]]:
    """(the models with batches not stepped yet and their jobs, the outcomes of the others: idle,
    or failed because their own settings are wrong; the others still run)."""
    plan: dict[str, tuple[list[str], int, CTConfig]] = {}
    outcomes: list[ModelOutcome] = []
    for name, paths in files.items():
        try:
            own = model_config(config, landing, name)
        except CTError as exc:
            outcomes.append(ModelOutcome(name=name, status="failed", outcome=str(exc)))
            continue
        registry = open_registry(own)
        todo, already = waiting(registry, name, paths)
        if todo:
            plan[name] = (todo, already, own)
            continue
        outcomes.append(
            ModelOutcome(
                name=name,
                status="idle",
                already=already,
                champion_after=registry.alias(name, "champion"),
                outcome="nothing new" if paths else "no batches yet",
            )
        )
    return plan, outcomes


def _run_plan(
    config: CTConfig, plan: dict[str, tuple[list[str], int, CTConfig]]
) -> list[ModelOutcome]:
    """The planned models' steps on the fleet's task runner; the runs lost Dask workers left
    behind are marked Crashed, and a failed model reports the champion it still has."""
    logger = get_run_logger()
    steps = fleet_steps.with_options(task_runner=task_runner(config.fleet))(plan, return_state=True)
    ran: list[ModelOutcome] = steps.result()
    orphans = crash_orphans(steps.state_details.flow_run_id)
    if orphans:
        logger.warning(
            "%d run(s) left behind by lost Dask workers marked Crashed: %s (their tasks ran "
            "again on other workers)",
            len(orphans),
            ", ".join(orphans),
        )
    return [
        o
        if o.status != "failed"
        else o.model_copy(
            update={"champion_after": open_registry(plan[o.name][2]).alias(o.name, "champion")}
        )
        for o in ran
    ]


@flow(name="ct-fleet")
def fleet(
    config: CTConfig = CTConfig(),  # noqa: B008
    models: list[str] | None = None,
) -> list[ModelOutcome]:
    """One CT step per waiting batch of every model of the fleet (`models`: only these, e.g. the
    one a `ct.data.arrived` event names). Fails, naming them, if any model failed."""
    logger = get_run_logger()
    landing = landing_of(config)
    files = batch_files(landing, models or config.fleet.models)
    plan, outcomes = _plan(config, landing, files)
    if plan:
        where = config.fleet.dask_address or f"a local cluster of {config.fleet.workers} workers"
        logger.info(
            "Fleet at %s: %d of %d models have new batches; running them on %s",
            landing,
            len(plan),
            len(files),
            where,
        )
        outcomes += _run_plan(config, plan)
    else:
        logger.info("Fleet at %s: none of its %d models has new batches", landing, len(files))
    create_table_artifact(
        key="ct-fleet",
        table=fleet_rows(outcomes),
        description=f"ct-fleet at {landing}: what each model's CT steps did (failed models first)",
    )
    failure = failure_summary(outcomes)
    if failure:
        raise ModelFailed(failure)
    return outcomes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python flows/fleet.py",
        description="Run CT steps for every model of a fleet that has new batches, one Dask task "
        "per model (a local cluster by default). The landing folder holds one subfolder of batch "
        "files per model (<landing>/<model>/*.csv|*.parquet), optionally with the model's own "
        "ct.yaml on top of the shared config. A batch is stepped once: run it again at will.",
        epilog="Examples:\n"
        "  python flows/fleet.py --landing data/landing\n"
        "  python flows/fleet.py --config fleet.yaml --models north south\n"
        "  python flows/fleet.py --landing s3://bucket/landing --dask-address tcp://10.0.0.5:8786",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="a ct.yaml shared by every model (with a fleet: section)")
    parser.add_argument("--landing", help="folder or URL with one subfolder per model")
    parser.add_argument("--models", nargs="+", metavar="MODEL", help="only these models")
    parser.add_argument("--dask-address", help="an existing Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=int, help="worker processes of the local cluster (2)")
    parser.add_argument("--state-dir", help="where registries and history live (default .ct)")
    parser.add_argument("-v", "--verbose", action="store_true", help="Dask's own INFO logs too")
    return parser


def _config_of(args: argparse.Namespace) -> CTConfig:
    """The shared config with the command line's fleet settings on top."""
    base = CTConfig.from_yaml(args.config) if args.config else CTConfig()
    given = {"landing": args.landing, "dask_address": args.dask_address, "workers": args.workers}
    raw = base.model_dump(mode="json")
    raw["fleet"] |= {k: v for k, v in given.items() if v is not None}
    if args.state_dir:
        raw["state_dir"] = args.state_dir
    return CTConfig.model_validate(raw)


def main(argv: list[str] | None = None) -> int:
    """The command line: parse, run the fleet flow, print its table; exit 1 if a model failed."""
    import os

    args = _parser().parse_args(argv)
    if not args.verbose:  # before distributed is imported, here and in the workers it spawns
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

    from rich.console import Console
    from rich.table import Table

    from tasks.errors import ConfigError

    console = Console()
    try:
        config = _config_of(args)
    except (ConfigError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    state = fleet(config, args.models, return_state=True)
    rows = fleet_rows(state.result()) if state.is_completed() else _table_of(state)
    if rows:
        table = Table(title="ct-fleet", title_justify="left")
        for column in rows[0]:
            table.add_column(column, justify="right" if column in {"steps", "seconds"} else "left")
        for row in rows:
            style = {"failed": "red", "idle": "dim"}.get(str(row["status"]))
            table.add_row(*(str(v) for v in row.values()), style=style)
        console.print(table)
    if not state.is_completed():
        console.print(f"[red]{state.message}[/red]")
        return 1
    return 0


def _table_of(state: Any) -> list[dict[str, Any]] | None:
    """The fleet table artifact of a (failed) run, read back from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterId,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ct-fleet"])),
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            ),
            limit=1,
        )
    if not found or not isinstance(found[0].data, str):
        return None
    import json

    return list(json.loads(found[0].data))
