"""The registry as users operate it: a saved block, and `python flows/ct.py registry ...` (issue 6)."""

import pytest

from blocks.registry import ModelRegistry
from flows.cli.main import main
from flows.ct import continuous_training
from tasks.config import CTConfig, RegistryConfig
from tasks.demo import write_demo_stream


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A registry with v1 (first champion) and v2 (promoted by the per-batch gate after the
    abrupt drift)."""
    root = tmp_path_factory.mktemp("reg")
    files = write_demo_stream(root / "data", n_batches=6, rows=600)
    state = str(root / "state")
    config = root / "ct.yaml"
    config.write_text("gate:\n  mode: batch\n")
    for index in (0, 5):
        run = ["run", "--data", str(files[index]), "--state-dir", state, "--config", str(config)]
        assert main(run) == 0
    registry = ModelRegistry(url=f"{state}/registry")
    assert registry.aliases("demo") == {"champion": 2, "previous": 1}
    return registry, files


def test_list_and_show(trained, capsys):
    registry, _ = trained
    assert main(["registry", "list", "--registry", registry.url]) == 0
    out = capsys.readouterr().out
    assert "v1" in out and "v2" in out and "champion" in out and "previous" in out
    assert main(["registry", "show", "demo", "--registry", registry.url, "--version", "1"]) == 0
    assert '"version": 1' in capsys.readouterr().out


def test_rollback_and_promote_are_compare_and_swap_and_announced(trained, capsys, events_until):
    registry, _ = trained
    assert main(["registry", "rollback", "demo", "--registry", registry.url]) == 0
    assert registry.aliases("demo")["champion"] == 1
    assert (
        main(["registry", "promote", "demo", "2", "--expected", "2", "--registry", registry.url])
        == 1
    )
    assert "champion is version 1, not the expected 2" in capsys.readouterr().err
    assert main(["registry", "promote", "demo", "2", "--registry", registry.url]) == 0
    assert registry.aliases("demo") == {"champion": 2, "previous": 1}
    assert [e.proof.reason for e in registry.alias_log("demo") if e.proof][-2:] == [
        "manual rollback",
        "manual promotion",
    ]

    def manual(events):
        return [e for e in events if e["payload"]["decision"].get("manual")]

    events = events_until("ct.model.promoted", "ct.model.demo", lambda es: len(manual(es)) >= 2)
    assert sorted(e["payload"]["version"] for e in manual(events)) == [1, 2]


def test_a_saved_block_is_loaded_by_name_and_used_by_the_flow(tmp_path, trained):
    _, files = trained
    ModelRegistry(url=str(tmp_path / "blockreg")).save("ct-test-registry", overwrite=True)
    loaded = ModelRegistry.load("ct-test-registry")
    assert loaded.url == str(tmp_path / "blockreg")
    config = CTConfig(
        state_dir=str(tmp_path / "state"), registry=RegistryConfig(block="ct-test-registry")
    )
    step = continuous_training(str(files[0]), config)
    assert step.promoted and ModelRegistry(url=loaded.url).versions("demo") == [1]
