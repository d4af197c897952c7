"""`python flows/ct.py run`: one CT step on files, and bad input that changes nothing (issue 3)."""

from pathlib import Path

import pytest

from blocks.registry import ModelRegistry
from flows.cli.main import main
from tasks.demo import write_demo_stream


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """A state folder with a first champion trained by `run` on batch 1."""
    root = tmp_path_factory.mktemp("run")
    files = write_demo_stream(root / "data", n_batches=8, rows=600)
    assert main(["run", "--data", str(files[0]), "--state-dir", str(root / "state")]) == 0
    return root, files


def test_first_run_trains_a_champion_that_beats_the_floor(state):
    root, _ = state
    registry = ModelRegistry(url=str(root / "state" / "registry"))
    assert registry.versions("demo") == [1] and registry.aliases("demo") == {"champion": 1}
    decision = registry.get("demo", version=1).metadata["decision"]
    assert decision["baseline"] == "floor" and decision["p_value"] < 0.05


def test_abrupt_drift_is_detected_learned_and_promoted_by_the_gate(state, capsys):
    """Under the default (gate.mode batch) the drifted batch's candidate beats the champion on
    the batch's held-back rows, and is promoted with the test that allowed it."""
    root, files = state
    state_dir = str(root / "state")
    assert main(["run", "--data", str(files[5]), "--state-dir", state_dir]) == 0
    out = capsys.readouterr().out
    assert "DRIFT" in out and "promoted v2: better than v1" in out, out
    registry = ModelRegistry(url=f"{state_dir}/registry")
    assert registry.aliases("demo")["champion"] == 2
    proof = registry.alias_log("demo")[-1].proof
    assert proof is not None and proof.by == "test" and proof.p_value < proof.level
    assert registry.aliases("demo")["champion"] > 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nope.csv", "file not found"),
        (lambda d: _write(d / "empty.csv", b""), "file is empty"),
        (lambda d: _write(d / "other.csv", b"p,q\n1,2\n"), "none of the configured columns"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "abc.csv", _abc()), "column='age' rule=\"coerce_dtype"),
    ],
)
def test_bad_input_exits_1_with_one_line_and_changes_nothing(
    state, capsys, tmp_path, registry_snapshot, make, message
):
    root, _ = state
    before = registry_snapshot(root)
    path = make(tmp_path)
    assert main(["run", "--data", str(path), "--state-dir", str(root / "state")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: " + str(path)) and message in err, err
    assert len(err.splitlines()) == 1
    assert registry_snapshot(root) == before


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _abc() -> bytes:
    import io

    from tasks.demo import demo_batch

    frame = demo_batch(7, rows=100)
    frame["age"] = "abc"  # the whole column has the wrong type: a table-level failure
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def test_a_first_model_that_cannot_beat_a_constant_guess_is_not_registered(tmp_path, capsys):
    """Labels that do not depend on the features: the first model loses to (or ties) the floor,
    nothing is registered, and the outcome says so in words (not "kept vNone")."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    data = tmp_path / "noise.csv"
    pd.DataFrame(
        {
            "x": rng.normal(size=600),
            "z": rng.normal(size=600),
            "event_time": pd.date_range("2026-01-01", periods=600, freq="min"),
            "label": rng.integers(0, 2, 600),
        }
    ).to_csv(data, index=False)
    config = tmp_path / "ct.yaml"
    config.write_text(
        "dataset:\n  name: noise\n  target: label\n  time_column: event_time\n"
        "  numeric: [x, z]\n  categorical: []\n"
    )
    state_dir = str(tmp_path / "state")
    code = main(["run", "--data", str(data), "--config", str(config), "--state-dir", state_dir])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no model yet: the new model was not better than a constant guess on 180" in out, out
    assert "vNone" not in out
    assert ModelRegistry(url=f"{state_dir}/registry").versions("noise") == []
