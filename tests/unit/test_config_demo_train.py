"""Configuration, the demo stream's known drift, and the training helpers."""

import numpy as np
import pandas as pd
import pytest

from tasks.config import CTConfig
from tasks.demo import ABRUPT_BATCH, demo_batch, demo_stream, write_demo_stream
from tasks.errors import ConfigError
from tasks.train import fit_candidate, fit_floor, predict, split_holdout
from tasks.validate import infer_spec
from tasks.window import fingerprint


def test_config_from_yaml_and_its_errors(tmp_path):
    good = tmp_path / "ct.yaml"
    good.write_text("dataset:\n  name: sales\n  target: bought\ngate:\n  alpha: 0.01\n")
    config = CTConfig.from_yaml(good)
    assert (config.dataset.name, config.dataset.target, config.gate.alpha) == (
        "sales",
        "bought",
        0.01,
    )
    typo = tmp_path / "typo.yaml"
    typo.write_text("gate:\n  alpah: 0.01\n")
    with pytest.raises(ConfigError, match="alpah"):
        CTConfig.from_yaml(typo)
    evil = tmp_path / "evil.yaml"
    evil.write_text("model:\n  estimator: os.system\n")
    with pytest.raises(ConfigError, match="not allowed"):
        CTConfig.from_yaml(evil)
    with pytest.raises(ConfigError, match="not found"):
        CTConfig.from_yaml(tmp_path / "missing.yaml")


def test_demo_stream_is_seeded_and_has_missing_values(tmp_path):
    pd.testing.assert_frame_equal(demo_batch(3), demo_batch(3))
    assert not demo_batch(3, seed=1).equals(demo_batch(3))
    batch = demo_batch(2)
    assert 0.02 < batch["income"].isna().mean() < 0.09 and batch["plan"].isna().any()
    files = write_demo_stream(tmp_path, n_batches=3, rows=20)
    assert [f.name for f in files] == ["batch-01.csv", "batch-02.csv", "batch-03.csv"]


def test_demo_stream_has_the_documented_abrupt_drift():
    stream = demo_stream()
    before, after = stream[ABRUPT_BATCH - 2], stream[ABRUPT_BATCH - 1]
    assert after["usage_hours"].mean() - before["usage_hours"].mean() > 4
    spec = infer_spec(before, CTConfig().dataset)
    model = fit_candidate(before, spec, CTConfig().model, seed=0)
    acc_before = np.mean(predict(model, before, spec) == before[spec.target])
    acc_after = np.mean(predict(model, after, spec) == after[spec.target])
    assert acc_before - acc_after > 0.2  # the concept changed, not just the inputs


def test_a_long_demo_stream_keeps_both_classes():
    """`demo --batches 50` (and the startup benchmark's long backtest): the gradual drift stops
    at batch 12, where it used to go on until every customer churned (batch 20 or so) and every
    later step failed to train."""
    rates = [demo_batch(b, rows=365)["churned"].mean() for b in range(1, 51)]
    assert all(0.5 < r < 0.95 for r in rates), [round(r, 2) for r in rates]
    late = [demo_batch(b, rows=4000)["churned"].mean() for b in (12, 30, 50)]
    assert max(late) - min(late) < 0.05  # batch 12's distribution, new rows


def test_holdout_is_the_newest_slice_and_never_empty():
    frame = pd.DataFrame({"t": range(10)})
    train, hold = split_holdout(frame, 0.3)
    assert list(hold["t"]) == [7, 8, 9] and list(train["t"]) == list(range(7))
    train, hold = split_holdout(frame.iloc[:2], 0.01)
    assert len(train) == 1 and len(hold) == 1


def test_floor_is_the_majority_class_and_fingerprint_is_content_based():
    frame = demo_batch(1, rows=200)
    spec = infer_spec(frame, CTConfig().dataset)
    floor = fit_floor(frame, spec, metric="log_loss")
    assert set(predict(floor, frame, spec)) == {frame["churned"].mode()[0]}
    assert fingerprint(frame) == fingerprint(frame.copy())
    assert fingerprint(frame) != fingerprint(frame.iloc[::-1])


def test_single_class_training_data_is_a_clear_error():
    frame = demo_batch(1, rows=50).assign(churned=1)
    spec = infer_spec(frame, CTConfig().dataset)
    with pytest.raises(ValueError, match="single class"):
        fit_candidate(frame, spec, CTConfig().model, seed=0)
