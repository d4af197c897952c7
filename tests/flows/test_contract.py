"""No silent deadlock, and honest backtests (issue 12, items 4 and 5).

A run of refused batches raises `ct.contract.blocked` with the failing rule and tells the user how
to recover; `contract accept` takes a new contract from a batch, and the champion's audit log says
so. A backtest marks refused batches, scores them with the serving champion and the never-updated
model, and compares the two over the same batches.
"""

from __future__ import annotations

import pandas as pd
import pytest

from blocks.registry import ModelRegistry
from flows.cli.main import main
from tasks.demo import demo_batch

NAME = "contract-demo"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    config = root / "ct.yaml"
    config.write_text(
        f"dataset:\n  name: {NAME}\nstate_dir: {root / 'state'}\n"
        "validation:\n  max_refused_in_a_row: 3\n"
    )
    first = root / "first.csv"
    demo_batch(1, rows=500).to_csv(first, index=False)
    assert main(["run", "--data", str(first), "--config", str(config)]) == 0
    return root, config


def renamed(root, batch):
    """Upstream renamed `age`: every batch from now on lacks a contract column."""
    path = root / f"renamed-{batch}.csv"
    demo_batch(batch, rows=500).rename(columns={"age": "customer_age"}).to_csv(path, index=False)
    return path


def test_a_run_of_refused_batches_raises_the_alarm_and_says_how_to_recover(
    setup, capsys, events_until
):
    root, config = setup
    errors = []
    for batch in (2, 3, 4):
        assert main(["run", "--data", str(renamed(root, batch)), "--config", str(config)]) == 1
        errors.append(capsys.readouterr().err)
    assert "column='age' rule='column_in_dataframe'" in errors[0]
    assert "in a row" not in errors[0] and "in a row" not in errors[1]
    assert "3 batches in a row have been refused" in errors[2]
    assert "python flows/ct.py contract accept --data" in errors[2]
    blocked = events_until("ct.contract.blocked", f"ct.model.{NAME}", bool)
    assert len(blocked) == 1
    payload = blocked[0]["payload"]
    assert payload["rule"] == "age: column_in_dataframe" and payload["refused_in_a_row"] == 3
    assert len(payload["batches"]) == 3 and "contract accept" in payload["how_to_recover"]
    records = ModelRegistry(url=str(root / "state" / "registry")).read_log(NAME, "contract")
    assert [r["outcome"] for r in records] == ["refused"] * 3


def test_accepting_a_new_contract_unblocks_ct_and_is_audited(setup, capsys):
    root, config = setup
    registry = ModelRegistry(url=str(root / "state" / "registry"))
    assert registry.aliases(NAME)["champion"] == 1
    code = main(
        [
            "contract",
            "accept",
            "--data",
            str(renamed(root, 5)),
            "--reason",
            "upstream renamed age to customer_age",
            "--config",
            str(config),
        ]
    )
    assert code == 0, capsys.readouterr()
    assert "new contract accepted; champion now v2" in capsys.readouterr().out
    champion = registry.champion(NAME)
    assert champion is not None and champion.version == 2
    assert "customer_age" in champion.metadata["schema"]["spec"]["numeric"]
    assert champion.metadata["decision"]["baseline"] == "floor"
    assert (
        champion.metadata["lineage"]["contract_accepted"] == "upstream renamed age to customer_age"
    )
    entry = registry.alias_log(NAME)[-1]
    assert entry.version == 2 and entry.previous == 1
    assert "contract accepted from batch renamed-5-" in entry.reason
    assert registry.read_log(NAME, "contract")[-1]["outcome"] == "accepted"
    # the next batch of the new shape passes
    assert main(["run", "--data", str(renamed(root, 6)), "--config", str(config)]) == 0
    assert main(["contract", "show", "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "customer_age" in shown and "accepted" in shown


def test_a_backtest_counts_refused_batches_and_scores_them(tmp_path, capsys):
    """Issue 12 item 5: the refused batch is marked, production's score on it is recorded, and
    CT and the never-updated model are compared over the same batches."""
    data = tmp_path / "data"
    data.mkdir()
    for batch in range(1, 6):
        frame = demo_batch(batch, rows=400)
        if batch == 3:  # 10 % of the rows cannot be right: the batch is refused
            frame = frame.astype({"income": object})
            frame.loc[:39, "income"] = "abc"
        frame.to_csv(data / f"batch-{batch}.csv", index=False)
    out = tmp_path / "out"
    args = ["--data", str(data), "--target", "churned", "--order-by", "event_time"]
    assert main(["backtest", *args, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    table = pd.read_csv(out / "backtest.csv")
    refused = table[table["refused"]]
    assert refused["batch"].tolist() == [3]
    assert refused["outcome"].iloc[0].startswith("refused: column='income'")
    assert refused["metric_champion"].notna().all() and refused["metric_static"].notna().all()
    assert table.loc[table["batch"] > 1, ["metric_champion", "metric_static"]].notna().all().all()
    assert "5 batches, 1 refused" in printed.out
    assert "over the 4 batches both were scored on" in printed.out
    assert "batch 3 refused: column='income'" in printed.err
