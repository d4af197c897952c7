"""The fleet and the schedules for real (issue 16): a Prefect server, `prefect deploy --all`, a
process worker and the webhook receiver on 127.0.0.1, all stopped by PID at the end.

- A signed webhook for a model of a fleet starts `ct-fleet`, which runs every model with new
  batches on a 2-worker Dask LocalCluster, in the flow run the worker started.
- A Dask worker killed mid-fleet costs no model a second version or promotion (the re-run task
  finds its steps done; the dead worker's model slot is freed when its lease runs out), and the
  step it was running is marked Crashed by the fleet, not left running.
- `ct-scheduled` and `ct-monitor`, which only a clock starts, run when given a 10-second interval.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from distributed import Client, LocalCluster
from prefect.client.orchestration import get_client
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.settings import PREFECT_API_URL, temporary_settings

from blocks.registry import ModelRegistry
from flows.fleet import ORPHANED
from tasks.config import CTConfig
from tasks.demo import demo_batch
from tasks.streams import write_stream
from tests.support.devstack import LocalStack, signed_headers, wait_for

SECRET = "whsec_" + base64.b64encode(b"a fleet e2e secret, 32 bytes !!!").decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    # the scheduler looks for due schedules every 2 s instead of every 60
    fast = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}
    with LocalStack(tmp_path_factory.mktemp("e2e"), secret=SECRET, server_settings=fast) as running:
        yield running
    assert not running.leftovers(), "a process started for the stack outlived it"


def read(url: str, body: dict[str, Any]) -> Any:
    """A filter query; a busy server's 503 raises (an httpx.HTTPError, which wait_for polls past)
    instead of being read as the answer."""
    answer = httpx.post(url, json=body, timeout=10)
    answer.raise_for_status()
    return answer.json()


def runs_of(api: str, flow_name: str) -> list[dict[str, Any]]:
    ids = [f["id"] for f in read(f"{api}/flows/filter", {}) if f["name"] == flow_name]
    if not ids:
        return []
    return list(read(f"{api}/flow_runs/filter", {"flows": {"id": {"any_": ids}}, "limit": 200}))


def deployment_id(api: str, name: str) -> str:
    body = {"deployments": {"name": {"any_": [name]}}}
    return str(read(f"{api}/deployments/filter", body)[0]["id"])


def test_a_fleet_webhook_runs_every_model_with_new_batches_on_dask(stack):
    write_stream("demo", stack.landing / "demo", batches=2, rows=800, seed=1)
    write_stream("demo", stack.landing / "store-a", batches=2, rows=800, seed=2)
    write_stream("regression", stack.landing / "store-b", batches=2, rows=600)
    (stack.landing / "store-b" / "ct.yaml").write_text("dataset:\n  target: units\n")
    body = json.dumps(
        {
            "dataset": "store-a",
            "path": str(stack.landing / "store-a" / "batch-02.csv"),
            "fleet": "stores",
        }
    ).encode()
    response = httpx.post(
        f"{stack.hooks}/hooks/data", content=body, headers=signed_headers(SECRET, body), timeout=10
    )
    assert response.status_code == 202, response.text

    def done() -> list[dict[str, Any]]:
        runs = [r for r in runs_of(stack.api, "ct-fleet") if r["state_type"] != "SCHEDULED"]
        return (
            runs
            if runs and all(r["state_type"] in {"COMPLETED", "FAILED", "CRASHED"} for r in runs)
            else []
        )

    runs = wait_for(done, 300, "ct-fleet to finish", every=2)
    assert all(r["state_type"] == "COMPLETED" for r in runs), [r["state_message"] for r in runs]
    registry = ModelRegistry(url=str(stack.state_dir / "registry"))
    for name in ("demo", "store-a", "store-b"):
        assert registry.aliases(name).get("champion") is not None, name
    assert registry.get("store-b", version=1).metadata["lineage"]["task"] == "regression"
    steps = runs_of(stack.api, "continuous-training")
    assert len(steps) == 6 and all(r["state_type"] == "COMPLETED" for r in steps)

    # the arrivals deployment also saw the event, and left a fleet's batch alone: no CT step
    def arrivals_done() -> list[dict[str, Any]]:
        runs = [  # ct-scheduled's runs of the same flow wait for 02:00
            r for r in runs_of(stack.api, "process-arrivals") if r["state_type"] != "SCHEDULED"
        ]
        return runs if runs and all(r["state_type"] == "COMPLETED" for r in runs) else []

    wait_for(arrivals_done, 120, "the arrivals run to end", every=2)
    assert len(runs_of(stack.api, "continuous-training")) == 6


def test_a_worker_killed_mid_fleet_costs_no_model_a_second_version(stack, tmp_path):
    from flows.fleet import fleet, local_cluster

    landing = tmp_path / "landing"
    names = [f"shop-{i}" for i in range(3)]
    for i, name in enumerate(names):
        # the first batch and the demo's abrupt change (batch 6): the gate promotes that
        # batch's candidate by far, so each model's second batch registers and promotes once
        for path in write_stream("demo", landing / name, batches=6, rows=1500, seed=10 + i)[1:5]:
            path.unlink()
    config = CTConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "validation": {"quality_suite": False},
            "fleet": {"landing": str(landing)},
        }
    )
    registry = ModelRegistry(url=config.registry_url)
    killed: list[int] = []
    with LocalCluster(**local_cluster(2)) as cluster:
        config = config.model_copy(
            update={
                "fleet": config.fleet.model_copy(update={"dask_address": cluster.scheduler_address})
            }
        )

        def kill_a_busy_worker() -> None:
            with Client(cluster.scheduler_address, timeout=30) as client:
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    done = sum(len(registry.versions(n)) for n in names)
                    busy = [w for w, keys in client.processing().items() if keys]
                    if done >= 1 and busy:  # a step finished, others are running
                        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        return
                    time.sleep(0.2)

        killer = threading.Thread(target=kill_a_busy_worker)
        with temporary_settings({PREFECT_API_URL: stack.api}):
            killer.start()
            state = fleet(config, return_state=True)
            killer.join()
    assert killed, "no worker was killed: the fleet finished before any step did"
    for name in names:  # Dask ran the lost task again; the re-run redid nothing
        batches = [
            registry.get(name, version=v).metadata["lineage"]["batch_id"]
            for v in registry.versions(name)
        ]
        assert len(batches) == len(set(batches)) == 2, (name, batches)
        promoted = [e.version for e in registry.alias_log(name)]
        assert Counter(promoted) == Counter({1: 1, 2: 1}), (name, promoted)
    assert state.is_completed(), state.message
    assert all(o.status == "ok" for o in state.result())
    # the step the killed worker was running is not left "running" forever: the fleet marked it
    steps = runs_of(stack.api, "continuous-training") + runs_of(stack.api, "retrain")
    unfinished = [r["name"] for r in steps if r["state_type"] in {"PENDING", "RUNNING"}]
    assert not unfinished, unfinished
    crashed = [r["state"]["message"] for r in steps if r["state_type"] == "CRASHED"]
    # (none when the worker died between two steps, before its next one had started)
    assert set(crashed) <= {ORPHANED}, crashed


def test_the_schedules_start_ct_scheduled_and_ct_monitor(stack):
    """Both run only on a clock: given a 10-second interval, each completes a scheduled run."""
    production = stack.state_dir / "production"  # the monitor scores the newest batch of demo
    production.mkdir(parents=True, exist_ok=True)
    demo_batch(7, rows=400).to_parquet(production / "latest.parquet", index=False)
    registry = ModelRegistry(url=str(stack.state_dir / "registry"))
    assert registry.champion("demo") is not None, "the fleet test makes demo's champion"
    api = stack.api
    wanted = {"ct-scheduled": "process-arrivals", "ct-monitor": "monitor"}
    idents = {name: deployment_id(api, name) for name in wanted}
    before = {r["id"] for flow in wanted.values() for r in runs_of(api, flow)}
    # through Prefect's client, which waits out a busy SQLite server (a 503) as every ct client does
    settings = temporary_settings({PREFECT_API_URL: api})
    with settings, get_client(sync_client=True) as client:
        created = {
            name: client.create_deployment_schedules(
                UUID(ident), [(IntervalSchedule(interval=timedelta(seconds=10)), True)]
            )
            for name, ident in idents.items()
        }
    try:

        def ran() -> dict[str, list[dict[str, Any]]]:
            found = {
                name: [
                    r
                    for r in runs_of(api, flow)
                    if r["id"] not in before
                    and r["deployment_id"] == idents[name]
                    and r["auto_scheduled"]
                    and r["state_type"] == "COMPLETED"
                ]
                for name, flow in wanted.items()
            }
            return found if all(found.values()) else {}

        runs = wait_for(ran, 180, "a scheduled run of ct-scheduled and of ct-monitor", every=2)
        assert set(runs) == set(wanted)
    finally:
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            for name, schedules in created.items():
                for schedule in schedules:
                    client.delete_deployment_schedule(UUID(idents[name]), schedule.id)
