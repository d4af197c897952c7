"""The registry block on a real folder and on a real S3-compatible server (moto, on 127.0.0.1).

Every test runs on both stores: immutable versions, integrity, compare-and-swap with real
processes, and SIGKILL at random moments during register and promote (issue 6).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from blocks.proof import Proof
from blocks.registry import AliasConflictError, ModelRegistry, RegistryError
from tests.support.devstack import free_port, stop, wait_for

FORK = mp.get_context("fork")


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1, stopped by PID at the end."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its own process group, which stop() signals
    )

    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError("moto server exited at start")
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True

    try:
        wait_for(listening, 60, "moto server", 0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _s3_registry(endpoint: str) -> ModelRegistry:
    import boto3

    bucket = f"ct-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return ModelRegistry(
        url=f"s3://{bucket}/registry",
        storage_options={
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            "skip_instance_cache": True,
        },
        key="test",
        secret="test",
    )


@pytest.fixture(params=["local", "s3"])
def registry(request, tmp_path) -> ModelRegistry:
    if request.param == "local":
        return ModelRegistry(url=str(tmp_path / "registry"))
    return _s3_registry(request.getfixturevalue("s3_endpoint"))


def _fresh(registry: ModelRegistry) -> ModelRegistry:
    """The same registry, as another process would open it (no shared filesystem object)."""
    return ModelRegistry.model_validate(
        registry.model_dump()
        | {
            "key": registry.key,
            "secret": registry.secret,
        }
    )


@pytest.fixture
def model():
    x = np.arange(20, dtype=float).reshape(-1, 1)
    return LogisticRegression().fit(x, (x[:, 0] > 9).astype(int))


def _register(registry, model, **extra):
    return registry.register(
        "m",
        model,
        metrics={"acc": 0.9},
        lineage={"batch_id": "b1"},
        schema={"hash": "h"},
        profile={"rows": 2},
        **extra,
    )


def test_register_load_and_metadata_round_trip(registry, model):
    v1 = _register(registry, model, decision={"promote": True})
    assert v1.version == 1 and registry.versions("m") == [1]
    assert v1.metadata["metrics"] == {"acc": 0.9}
    assert v1.metadata["decision"] == {"promote": True}
    assert "scikit-learn" in v1.metadata["lineage"]["packages"]
    loaded = registry.load_model("m", version=1)
    np.testing.assert_array_equal(loaded.predict([[3.0], [15.0]]), [0, 1])
    assert registry.load_profile(v1) == {"rows": 2}
    assert registry.names() == ["m"]


def test_a_claimed_but_unfinished_version_is_invisible(registry, model):
    _register(registry, model)
    store = registry.store
    store.create(store.path("m", "versions", "000002", ".claim"), b"{}")  # a crashed register
    store.put(store.path("m", "versions", "000002", "model.skops"), b"half")
    v = _register(registry, model)
    assert v.version == 3 and registry.versions("m") == [1, 3]
    with pytest.raises(RegistryError, match="version 2 does not exist"):
        registry.get("m", version=2)


def test_versions_lists_only_committed_versions_in_one_listing(registry, model):
    _register(registry, model)
    store = registry.store
    store.create(store.path("m", "versions", "000002", ".claim"), b"{}")
    store.put(store.path("m", "versions", "000002", "model.skops"), b"half")
    assert registry.versions("m") == [1]
    assert store.find(store.path("m", "versions", "000002")) == [".claim", "model.skops"]
    assert store.find(store.path("m", "nothing-here")) == []


def test_tampered_or_truncated_files_are_refused_by_name(registry, model):
    v = _register(registry, model)
    store = registry.store
    path = store.path("m", "versions", "000001", "model.skops")
    store.put(path, store.read(path)[:-10])
    with pytest.raises(RegistryError, match=r"model\.skops: sha256 does not match"):
        registry.load_model("m", version=v.version)


def test_a_version_loaded_again_is_the_checked_model_but_its_file_is_checked_each_time(
    registry, model
):
    v = _register(registry, model)
    first = registry.load_model_of(v)
    assert registry.load_model_of(v) is first  # not rebuilt by skops, nor walked again
    assert registry.load_model_of(v, trusted=["numpy.float64"]) is not first  # other trust
    store = registry.store
    path = store.path("m", "versions", "000001", "model.skops")
    store.put(path, store.read(path)[:-10])
    with pytest.raises(RegistryError, match=r"model\.skops: sha256 does not match"):
        registry.load_model_of(v)


def by_hand(reason: str) -> Proof:
    return Proof(by="human", action="manual promotion", passed=True, reason=reason)


def test_promote_is_compare_and_swap_with_an_audit_log_and_rollback(registry, model):
    assert registry.champion("m") is None
    _register(registry, model)
    _register(registry, model)
    registry.promote("m", 1, expected_champion=None, proof=by_hand("first"), run_id="r1")
    with pytest.raises(AliasConflictError, match="champion is version 1, not the expected None"):
        registry.promote("m", 2, expected_champion=None, proof=by_hand("x"))
    registry.promote("m", 2, expected_champion=1, proof=by_hand("better"))
    assert registry.aliases("m") == {"champion": 2, "previous": 1}
    registry.rollback("m")
    assert registry.aliases("m") == {"champion": 1, "previous": 2}
    log = registry.alias_log("m")
    assert [(e.version, e.previous, e.proof.reason if e.proof else None) for e in log] == [
        (1, None, "first"),
        (2, 1, "better"),
        (1, 2, "rollback"),
    ]
    assert log[2].proof is not None and log[2].proof.action == "rollback"
    assert log[0].run_id == "r1" and log[0].at <= log[1].at <= log[2].at
    with pytest.raises(RegistryError, match="version 9 does not exist"):
        registry.promote("m", 9, expected_champion=1, proof=by_hand("x"))
    registry.set_alias("m", "challenger", 2, expected=None)
    assert registry.aliases("m")["challenger"] == 2


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 65, ".."])
def test_names_are_validated(registry, bad):
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.versions(bad)


def _register_worker(registry: ModelRegistry, queue) -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    queue.put(_fresh(registry).register("m", model, metrics={}, lineage={}, schema={}).version)


def _promote_worker(registry: ModelRegistry, version: int, start, queue) -> None:
    mine = _fresh(registry)
    start.wait()
    try:
        mine.promote("m", version, expected_champion=1, proof=by_hand("race"))
        queue.put("won")
    except AliasConflictError:
        queue.put("conflict")


def _run_all(procs) -> None:
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0


def test_eight_processes_registering_at_once_get_eight_versions(registry):
    queue = FORK.Queue()
    _run_all([FORK.Process(target=_register_worker, args=(registry, queue)) for _ in range(8)])
    got = sorted(queue.get(timeout=10) for _ in range(8))
    assert got == list(range(1, 9))
    assert registry.versions("m") == got
    for version in got:
        registry.load_model("m", version=version)


def test_two_processes_promoting_from_the_same_champion_exactly_one_wins(registry, model):
    for _ in range(3):
        _register(registry, model)
    registry.promote("m", 1, expected_champion=None, proof=by_hand("first"))
    for attempt in range(3):
        queue, start = FORK.Queue(), FORK.Event()
        versions = (2, 3)
        procs = [
            FORK.Process(target=_promote_worker, args=(registry, v, start, queue)) for v in versions
        ]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(60)
        assert sorted(queue.get(timeout=10) for _ in procs) == ["conflict", "won"]
        log = registry.alias_log("m")
        assert len(log) == 2 + 2 * attempt and log[-1].previous == 1
        registry.promote("m", 1, expected_champion=log[-1].version, proof=by_hand("reset"))


def _append_worker(registry: ModelRegistry, expected: int, start, queue) -> None:
    mine = _fresh(registry)
    start.wait()
    try:
        mine.append_log("m", "evidence-000002", {"by": os.getpid()}, expected=expected)
        queue.put("won")
    except AliasConflictError:
        queue.put("conflict")


def test_two_processes_appending_evidence_after_the_same_record_exactly_one_wins(registry):
    """Issue 14: a challenger's evidence is appended by compare-and-swap on the log's sequence,
    so two workers judging the same batch cannot both add it."""
    registry.append_log("m", "evidence-000002", {"batch_id": None}, expected=0)
    for attempt in range(3):
        expected = registry.read_log("m", "evidence-000002", last=1)[0]["sequence"]
        queue, start = FORK.Queue(), FORK.Event()
        procs = [
            FORK.Process(target=_append_worker, args=(registry, expected, start, queue))
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(60)
        assert sorted(queue.get(timeout=10) for _ in procs) == ["conflict", "won"]
        records = registry.read_log("m", "evidence-000002")
        assert [r["sequence"] for r in records] == list(range(1, attempt + 3))
    with pytest.raises(AliasConflictError, match="moved past record 1"):
        registry.append_log("m", "evidence-000002", {"late": True}, expected=1)


def test_an_alias_can_be_cleared_but_never_the_champion(registry, model):
    _register(registry, model)
    registry.set_alias("m", "challenger", 1, expected=None)
    assert registry.alias("m", "challenger") == 1 and registry.aliases("m") == {"challenger": 1}
    registry.set_alias("m", "challenger", None, expected=1, reason="dropped")
    assert registry.alias("m", "challenger") is None and registry.aliases("m") == {}
    assert [e.version for e in registry.alias_log("m", "challenger")] == [1, None]
    with pytest.raises(RegistryError, match="moves only through promote"):
        registry.set_alias("m", "champion", None, expected=None)


def _churn(registry: ModelRegistry, seed: int, ready: Any) -> None:
    """Register and promote forever, until killed; `ready` is set once the writing starts."""
    mine = _fresh(registry)
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    rng = np.random.default_rng(seed)
    ready.set()
    while True:
        version = mine.register(
            "m",
            model,
            metrics={"x": float(rng.random())},
            lineage={},
            schema={},
            profile={"rows": 1},
        ).version
        champion = mine.champion("m")
        mine.promote(
            "m",
            version,
            expected_champion=None if champion is None else champion.version,
            proof=by_hand("churn"),
        )


def test_sigkill_at_random_moments_leaves_a_consistent_registry(registry, model):
    rng = np.random.default_rng(0)
    trials = 50
    checked: set[int] = set()
    for trial in range(trials):
        ready = FORK.Event()
        proc = FORK.Process(target=_churn, args=(registry, trial, ready))
        proc.start()
        # the random moment counts from when the writing starts, not from the fork: on a loaded
        # machine starting the process alone took most of the window
        assert ready.wait(60)
        time.sleep(float(rng.uniform(0.05, 0.6)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        # the registry still loads; every listed version is complete; the champion is one of them
        fresh = _fresh(registry)
        versions = fresh.versions("m")
        assert checked <= set(versions)  # nothing complete ever disappears
        for version in sorted(set(versions) - checked):
            checked.add(version)
            mv = fresh.get("m", version=version)
            for file_name in mv.files:
                fresh.read_file(mv, file_name)
        champion = fresh.champion("m")
        assert champion is None or champion.version in versions
    fresh = _fresh(registry)
    assert len(fresh.versions("m")) >= trials // 2  # the trials did get work done
    fresh.load_model("m")


def test_the_block_saves_and_loads_by_name(tmp_path):
    """A registered Prefect block type: save/load by name needs a server (see tests/flows)."""
    registry = ModelRegistry(url=str(Path(tmp_path) / "r"), key="AKIA", secret="s3cr3t")
    dumped = registry.model_dump()
    assert registry.get_block_type_slug() == "ct-model-registry"
    assert "s3cr3t" not in str(dumped) and "s3cr3t" not in repr(registry)
