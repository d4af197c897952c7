"""The default run, end to end: `python flows/ct.py` backtests the demo stream (issue 3)."""

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from blocks.proof import Proof
from blocks.registry import ModelRegistry
from flows.cli.main import main
from tasks.demo import ABRUPT_BATCH, GRADUAL_BATCHES
from tasks.report import REJECTED

pytestmark = pytest.mark.slow  # whole backtests

NAME = "demo-e2e"
REQUIRED = [
    "batch",
    "rows",
    "champion_version",
    "metric_champion",
    "metric_static",
    "metric_always",
    "drift",
    "retrained",
    "promoted",
    "p_value",
    "proof",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    config = out / "ct.yaml"  # a model name of its own, so other tests' events do not mix in
    config.write_text(f"dataset:\n  name: {NAME}\n")
    assert main(["--out", str(out), "--config", str(config)]) == 0
    return out, pd.read_csv(out / "backtest.csv")


def test_writes_the_table_and_the_plot(demo):
    out, table = demo
    assert set(REQUIRED) <= set(table.columns)
    assert list(table["batch"]) == list(range(1, 13))
    assert (table["rows"] == 800).all()
    png = (out / "backtest.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_detects_the_known_drift_and_not_the_stable_batches(demo):
    _, table = demo
    drift = dict(zip(table["batch"], table["drift"], strict=True))
    assert drift[ABRUPT_BATCH] is True or drift[ABRUPT_BATCH] == "True"
    assert any(str(drift[b]) == "True" for b in GRADUAL_BATCHES)
    assert all(str(drift[b]) == "False" for b in range(2, ABRUPT_BATCH))


def test_the_default_gate_promotes_some_candidates_and_beats_the_static_model(demo):
    """The default (gate.mode batch) keeps the champion when the candidate is not shown better,
    promotes it when it is, and after the abrupt change serves a model far better than the
    static one, close to always-retrain."""
    _, table = demo
    later = table[table["batch"] > 1]
    assert later["promoted"].any() and (~later["promoted"]).any()
    assert table.loc[0, "outcome"] == "first model v1"
    after = table[table["batch"] > ABRUPT_BATCH + 1]
    assert (after["metric_champion"] > after["metric_static"] + 0.2).all()
    # always-retrain's model on batch 2 is the first model itself (its candidate)
    assert later["metric_always"].iloc[0] == pytest.approx(later["metric_static"].iloc[0])
    assert after["metric_always"].notna().all()


def test_registry_holds_the_versions_the_table_reports(demo):
    """Every champion the table reports is in the champion's alias log, in order, each with the
    proof the table's row carries; the registry holds only the promoted versions."""
    out, table = demo
    registry = ModelRegistry(url=str(out / "registry"))
    reported = [int(v) for v in table["new_version"].dropna()]
    assert [e.version for e in registry.alias_log(NAME)] == reported
    assert registry.aliases(NAME)["champion"] == reported[-1]
    for row in table.itertuples():
        if row.batch > 1:
            assert int(row.champion_version) in reported
    assert registry.versions(NAME) == reported  # batch mode registers what it promotes
    proofs = [Proof.model_validate_json(p) for p in table.loc[table["promoted"], "proof"]]
    assert [e.proof for e in registry.alias_log(NAME)] == proofs
    newest = registry.get(NAME, alias="champion")
    lineage = newest.metadata["lineage"]
    assert lineage["training_window"]["fingerprint"] and lineage["flow_run_id"]


def test_events_and_artifacts_reach_the_server(demo, events_until):
    _, table = demo
    promotions = int(table["promoted"].sum())
    rejections = int(table["outcome"].str.contains(REJECTED).sum())
    resource = f"ct.model.{NAME}"
    promoted = events_until(
        "ct.model.promoted", resource, lambda es: len(es) >= promotions, timeout=60
    )
    rejected = events_until(
        "ct.gate.rejected", resource, lambda es: len(es) >= rejections, timeout=60
    )
    with get_client(sync_client=True) as client:
        assert len(promoted) == promotions and len(rejected) == rejections
        versions = sorted(e["payload"]["version"] for e in promoted)
        assert versions == sorted(int(v) for v in table["new_version"].dropna())
        assert all("p_value" in e["payload"]["decision"] for e in rejected)
        assert all(e["payload"]["proof"]["passed"] for e in promoted)
        for key in ("drift-report", "gate-decision", "backtest"):
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )
            assert found and all(a.description for a in found), key
