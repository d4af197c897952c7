"""CT on streams shaped like real data, not like the demo (issue 12, item 6; issue 13).

Each stream is backtested through the CLI (`python flows/ct.py demo --stream NAME`) on a real
Prefect server. Drift is not corruption: no batch may be refused, and CT must beat the never-updated
first model over the batches both were scored on. The contract, the backtest table and the events
keep the labels' own type.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from blocks.registry import ModelRegistry
from flows.cli.main import STREAM_NAMES, _parser, main
from tasks.report import summarize_backtest
from tasks.streams import STREAMS

pytestmark = pytest.mark.slow  # whole backtests

#: Batches per stream in the test: enough for the change to happen and be learned.
BATCHES = {
    "range-growth": 7,
    "indicator": 5,
    "new-class": 6,
    "string-labels": 7,
    "seven-classes": 5,
    "regression": 6,
}


def test_the_cli_offers_every_stream():
    assert set(STREAM_NAMES) == set(STREAMS)
    assert _parser().parse_args(["demo", "--stream", "seven-classes"]).stream == "seven-classes"


@pytest.fixture(scope="module")
def backtests(tmp_path_factory):
    """Backtest each stream once (module scope: the checks below share them)."""
    done = {}
    for name, batches in BATCHES.items():
        out = tmp_path_factory.mktemp(name)
        args = ["demo", "--stream", name, "--batches", str(batches), "--out", str(out)]
        assert main(args) == 0, name
        done[name] = (out, pd.read_csv(out / "backtest.csv", keep_default_na=False))
    return done


@pytest.mark.parametrize("name", list(BATCHES))
def test_no_batch_is_refused_and_ct_beats_the_never_updated_model(backtests, name):
    _, table = backtests[name]
    table = table.replace("", None)
    for column in ("metric_champion", "metric_static", "metric_always", "p_value"):
        table[column] = pd.to_numeric(table[column])
    table["refused"] = table["refused"].astype(str) == "True"
    table["promoted"] = table["promoted"].astype(str) == "True"
    assert not table["refused"].any(), table[["batch", "outcome"]]
    assert not table["outcome"].str.startswith("failed").any(), table["outcome"].tolist()
    summary = summarize_backtest(table)
    assert summary.compared == BATCHES[name] - 1
    assert summary.gain is not None and summary.gain > 0, summary.sentence()
    expected = "mae" if STREAMS[name].task == "regression" else "accuracy"
    assert set(table["metric_name"]) == {expected}


def test_labels_keep_their_type_in_the_contract_and_the_table(backtests):
    expected = {
        "new-class": ["basic", "enterprise", "plus", "pro"],
        "string-labels": ["no", "yes"],
        "seven-classes": [1, 2, 3, 4, 5, 6, 7],
    }
    for name, classes in expected.items():
        out, _ = backtests[name]
        champion = ModelRegistry(url=str(out / "registry")).champion(name)
        assert champion is not None
        spec = champion.metadata["schema"]["spec"]
        assert spec["classes"] == classes and not spec["classes_closed"], name
        assert champion.metadata["lineage"]["labels"] == classes, name
    _, table = backtests["new-class"]
    arrived = table.loc[table["new_classes"] != "", ["batch", "new_classes"]]
    assert arrived.to_dict("records") == [{"batch": 4, "new_classes": '["enterprise"]'}]
    assert json.loads(arrived.iloc[0]["new_classes"]) == ["enterprise"]


def test_the_regression_stream_is_recorded_as_regression(backtests):
    out, _ = backtests["regression"]
    champion = ModelRegistry(url=str(out / "registry")).champion("regression")
    assert champion is not None
    spec = champion.metadata["schema"]["spec"]
    assert spec["task"] == "regression" and spec["classes"] is None
    assert "non-integer" in spec["inferred"]["task"]
    assert champion.metadata["decision"]["metric"] == "mae"
    assert champion.metadata["lineage"]["estimator"] == "sklearn.linear_model.Ridge"


def test_a_new_class_is_announced_with_its_type(backtests, events_until):
    events = events_until("ct.label.new_class", "ct.model.new-class", bool, timeout=30)
    assert [e["payload"]["new_classes"] for e in events] == [["enterprise"]]
    assert events[0]["payload"]["known_classes"] == ["basic", "plus", "pro"]
