"""A fleet of models on Dask (issue 16): one flow, a task per model, each model on its own.

Real parts only: the Prefect test server, a real `distributed.LocalCluster` of 2 worker processes
on 127.0.0.1 (dashboard on a free port), real files in a landing folder, real registries. The fleet
mixes shapes (a classifier, a regressor with its own ct.yaml, a model whose second batch is not
its data); one model's failure must not stop the others, and a worker killed mid-fleet must not
make any model register or promote a batch twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import LocalCluster
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from blocks.registry import ModelRegistry
from flows.fleet import ModelFailed, fleet, local_cluster
from tasks.config import CTConfig
from tasks.fleet import ModelOutcome, batch_files, model_config
from tasks.streams import write_stream


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two worker processes, as the fleet's default local cluster has; shared by the tests so
    the seconds it takes to start are paid once."""
    with LocalCluster(**local_cluster(2)) as running:
        yield running


def fleet_config(root: Path, address: str | None = None, **fleet: object) -> CTConfig:
    return CTConfig.model_validate(
        {
            "state_dir": str(root / "state"),
            "validation": {"quality_suite": False},
            "fleet": {"landing": str(root / "landing"), "dask_address": address, **fleet},
        }
    )


def lineage_batches(registry: ModelRegistry, name: str) -> list[str]:
    return [
        registry.get(name, version=v).metadata["lineage"]["batch_id"]
        for v in registry.versions(name)
    ]


def promotions(registry: ModelRegistry, name: str) -> list[int]:
    return [e.version for e in registry.alias_log(name) if e.version is not None]


def table_artifact() -> list[dict[str, object]]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ct-fleet"])), limit=50
        )
    newest = max(found, key=lambda a: a.created)
    return list(json.loads(str(newest.data)))


def test_a_mixed_fleet_runs_every_model_and_fails_only_for_the_broken_one(tmp_path, cluster):
    landing = tmp_path / "landing"
    for name, seed in (("north", 1), ("south", 2)):
        write_stream("demo", landing / name, batches=2, rows=1000, seed=seed)
    write_stream("regression", landing / "prices", batches=2, rows=600)
    (landing / "prices" / "ct.yaml").write_text("dataset:\n  target: units\n")
    write_stream("demo", landing / "broken", batches=1, rows=1000, seed=3)
    (landing / "broken" / "batch-02.csv").write_text("a,b\n1,2\n")  # not this model's data
    config = fleet_config(tmp_path, cluster.scheduler_address)
    assert model_config(config, str(landing), "prices").dataset.target == "units"

    state = fleet(config, return_state=True)
    assert state.is_failed()
    assert "1 of 4 models failed: broken" in str(state.message)
    assert "batch-02.csv" in str(state.message) and "none of the configured columns" in str(
        state.message
    )
    rows = {row["model"]: row for row in table_artifact()}
    assert set(rows) == {"north", "south", "prices", "broken"}
    assert rows["broken"]["status"] == "failed"
    for name in ("north", "south", "prices"):
        assert rows[name]["status"] == "ok" and rows[name]["steps"] == 2, rows[name]
        registry = ModelRegistry(url=config.registry_url)
        assert registry.aliases(name)["champion"] >= 1
    registry = ModelRegistry(url=config.registry_url)
    assert registry.get("prices", version=1).metadata["lineage"]["task"] == "regression"
    assert registry.versions("broken") == [1]  # its good first batch still made a champion
    assert rows["broken"]["champion"] == "v1"  # and the table says so

    # the broken file is moved away and the fleet runs again: nothing is stepped twice
    (landing / "broken" / "batch-02.csv").unlink()
    before = {n: registry.versions(n) for n in rows}
    outcomes = fleet(config)
    assert all(isinstance(o, ModelOutcome) and o.status == "idle" for o in outcomes), outcomes
    assert {n: registry.versions(n) for n in rows} == before


def test_the_fleet_lists_models_and_names_a_missing_one(tmp_path):
    landing = tmp_path / "landing"
    write_stream("demo", landing / "alpha", batches=1, rows=200)
    (landing / "not a model").mkdir()  # not a valid name: not a model
    (landing / "alpha" / "notes.txt.bak").write_text("ignored")
    assert list(batch_files(str(landing), None)) == ["alpha"]
    with pytest.raises(ModelFailed.__mro__[1], match="no folder for model"):
        batch_files(str(landing), ["alpha", "beta"])
    with pytest.raises(ModelFailed.__mro__[1], match="landing folder does not exist"):
        batch_files(str(tmp_path / "nowhere"), None)


def test_a_busy_or_unreachable_server_is_told_apart_from_a_failing_step():
    """The fleet runs a CT step again only when it failed on the Prefect API being busy (a 503 the
    client's own retries did not get past: SQLite's 'database is locked') or unreachable, never
    on bad data or a bug, which would fail again."""
    import httpx

    from tasks.fleet import server_unavailable, wait_before_retry
    from tests.support.devstack import free_port

    with pytest.raises(httpx.ConnectError) as refused:  # nothing listens there
        httpx.get(f"http://127.0.0.1:{free_port()}/api/health", timeout=2)
    request = httpx.Request("POST", "http://127.0.0.1/api/task_runs/")

    def status(code: int) -> httpx.HTTPStatusError:
        response = httpx.Response(code, request=request)
        return httpx.HTTPStatusError(f"{code}", request=request, response=response)

    def wrapped(cause: BaseException) -> RuntimeError:
        try:
            try:
                raise cause
            except BaseException as inner:
                raise RuntimeError("the flow run failed") from inner
        except RuntimeError as outer:
            return outer

    assert server_unavailable(refused.value)
    assert server_unavailable(status(503)) and server_unavailable(wrapped(status(503)))
    assert not server_unavailable(status(400)) and not server_unavailable(status(404))
    assert not server_unavailable(wrapped(ValueError("column 'x' is missing")))
    # the fleet and the backtest run such a step again, twice, after 5 s then 10 s
    assert [wait_before_retry(wrapped(status(503)), n) for n in (1, 2, 3)] == [5, 10, None]
    assert wait_before_retry(refused.value, 1) == 5
    assert wait_before_retry(wrapped(ValueError("column 'x' is missing")), 1) is None
    assert wait_before_retry(None, 1) is None  # it succeeded
