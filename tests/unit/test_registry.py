"""The registry block on a real folder: immutable versions, integrity, compare-and-swap."""

import multiprocessing as mp

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from blocks.registry import AliasConflictError, ModelRegistry, RegistryError


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(url=str(tmp_path / "registry"))


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


def test_versions_are_new_folders_and_an_incomplete_one_is_invisible(registry, model):
    _register(registry, model)
    (registry.root / "m" / "versions" / "000002").mkdir()  # a crashed register: no metadata.json
    v = _register(registry, model)
    assert v.version == 3 and registry.versions("m") == [1, 3]
    with pytest.raises(RegistryError, match="version 2 does not exist"):
        registry.get("m", version=2)


def test_tampered_model_file_is_refused_by_name(registry, model):
    v = _register(registry, model)
    path = registry.root / "m" / "versions" / "000001" / "model.skops"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(RegistryError, match=r"model\.skops: sha256 does not match"):
        registry.load_model("m", version=v.version)


def test_promote_is_compare_and_swap_with_an_audit_log(registry, model):
    assert registry.champion("m") is None
    _register(registry, model)
    _register(registry, model)
    registry.promote("m", 1, expected_champion=None, reason="first")
    with pytest.raises(AliasConflictError, match="champion is version 1, not the expected None"):
        registry.promote("m", 2, expected_champion=None)
    registry.promote("m", 2, expected_champion=1, reason="better")
    assert registry.aliases("m") == {"champion": 2, "previous": 1}
    assert [(e.version, e.previous, e.reason) for e in registry.alias_log("m")] == [
        (1, None, "first"),
        (2, 1, "better"),
    ]
    with pytest.raises(RegistryError, match="version 9 does not exist"):
        registry.promote("m", 9, expected_champion=2)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 65, ".."])
def test_names_are_validated(registry, model, bad):
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.versions(bad)


def _promote_worker(url, version, queue):
    registry = ModelRegistry(url=url)
    try:
        registry.promote("m", version, expected_champion=1)
        queue.put("won")
    except AliasConflictError:
        queue.put("conflict")


def _register_worker(url, queue):
    registry = ModelRegistry(url=url)
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    queue.put(registry.register("m", model, metrics={}, lineage={}, schema={}).version)


def test_concurrent_registers_get_distinct_versions(registry):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_register_worker, args=(registry.url, queue)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    got = sorted(queue.get(timeout=5) for _ in procs)
    assert got == sorted(set(got)) and len(got) == 6
    assert registry.versions("m") == got


def test_two_racing_promotions_exactly_one_wins(registry, model):
    for _ in range(5):
        _register(registry, model)
    registry.promote("m", 1, expected_champion=None)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_promote_worker, args=(registry.url, v, queue)) for v in (2, 3, 4, 5)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = sorted(queue.get(timeout=5) for _ in procs)
    assert results == ["conflict", "conflict", "conflict", "won"]
    log = registry.alias_log("m")
    assert len(log) == 2 and log[-1].previous == 1
