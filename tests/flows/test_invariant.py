"""The promise, end to end (issue 30, item 1): every path that can move the `champion` alias
(the first model, the batch gate, the challenger, a contract accepted, a manual promotion, a
rollback) leaves a proof in the alias log and in `ct.model.promoted`: a test that passed on rows
neither model learned from, or a person's action that says so.

The registry refuses a move without one (tests/unit/test_proof.py); this drives the real step and
the CLI through every path and reads back what they left.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

from blocks.proof import Proof
from blocks.registry import AliasEntry, ModelRegistry
from flows.cli.main import main
from flows.ct import continuous_training
from tasks.config import CTConfig
from tasks.demo import demo_batch
from tasks.streams import write_stream

ROOT = Path(__file__).resolve().parents[2]
HUMAN = {"rollback", "manual promotion", "contract accepted"}


def check_entry(entry: AliasEntry) -> Proof:
    """What every champion move must carry."""
    proof = entry.proof
    assert proof is not None, entry
    assert entry.reason == proof.line()
    if proof.kind is not None:  # a test decided (or, for a new contract, was passed too)
        assert proof.passed and proof.rows is not None and proof.rows.n > 0, proof
        assert proof.rows.batches and proof.rows.unseen_by, proof
        if proof.kind == "paired test":
            assert proof.p_value is not None and proof.level is not None
            assert proof.p_value < proof.level
        else:
            assert proof.e_value is not None and proof.level is not None
            assert proof.e_value >= proof.level
        if proof.against != "floor":  # checked against both models' training windows
            assert len(proof.rows.unseen_by) == 2, proof
    if proof.by == "human":
        assert proof.action in HUMAN and proof.reason.strip(), proof
    else:
        assert proof.action in {"first model", "gate", "challenger"}, proof
    return proof


def at_least(count: int) -> Callable[[list[dict]], bool]:
    return lambda events: len(events) >= count


def config_for(root: Path, name: str, mode: str) -> CTConfig:
    return CTConfig.model_validate(
        {
            "dataset": {"name": name, "target": "churned"},
            "state_dir": str(root / "state"),
            "gate": {"mode": mode},
            "validation": {"quality_suite": False},
        }
    )


def test_every_path_that_moves_the_champion_leaves_its_proof(tmp_path, events_until):
    files = [str(p) for p in write_stream("demo", tmp_path / "files", batches=9)]
    registry = ModelRegistry(url=str(tmp_path / "state" / "registry"))
    # the challenger: mode shadow over the demo stream, where one wins after the abrupt change
    shadow = config_for(tmp_path, "invariant-shadow", "shadow")
    steps = [continuous_training(path, shadow) for path in files]
    assert any(s.promoted and s.champion_version for s in steps), [s.outcome for s in steps]
    # the first model, then the batch gate on the demo's abrupt change (promoted by far)
    name = "invariant"
    config = config_for(tmp_path, name, "batch")
    for path in (files[0], files[5], files[6]):
        continuous_training(path, config)
    # a new contract accepted by a person
    renamed = tmp_path / "renamed.csv"
    demo_batch(8, rows=800).rename(columns={"age": "customer_age"}).to_csv(renamed, index=False)
    accepted = continuous_training(str(renamed), config, accept_contract="upstream renamed age")
    assert accepted.promoted, accepted.outcome
    # a manual promotion and a rollback, from the command line
    where = ["--registry", registry.url]
    assert main(["registry", "promote", name, "1", "--reason", "audit check", *where]) == 0
    assert main(["registry", "rollback", name, "--reason", "undo the audit check", *where]) == 0

    logs = {n: registry.alias_log(n) for n in (name, "invariant-shadow")}
    proofs = {n: [check_entry(e) for e in log] for n, log in logs.items()}
    actions = {p.action for ps in proofs.values() for p in ps}
    assert actions == {
        "first model",
        "gate",
        "challenger",
        "contract accepted",
        "manual promotion",
        "rollback",
    }, actions
    # every ct.model.promoted event carries the same proof as its alias entry
    for n, log in logs.items():
        events = events_until("ct.model.promoted", f"ct.model.{n}", at_least(len(log)), timeout=60)
        sent = [Proof.model_validate(e["payload"]["proof"]) for e in events]
        assert sorted(sent, key=str) == sorted(proofs[n], key=str), n


def test_only_the_registry_moves_the_champion():
    """No product code writes the champion alias but through `ModelRegistry.promote` (which
    demands the proof): `set_alias` refuses it, and `promote` is called from the one task that
    crowns (tasks/release.py) and the CLI's manual promotion (flows/cli/commands.py)."""
    callers = set()
    for package in ("flows", "tasks", "blocks", "webhooks"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "promote"
                ):
                    callers.add(str(path.relative_to(ROOT)))
    assert callers == {"tasks/release.py", "flows/cli/commands.py", "blocks/registry.py"}, callers
