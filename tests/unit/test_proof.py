"""The invariant, at the registry (issue 30): the champion alias moves only with a proof of a
passed test, or a person's action that says so (blocks/proof.py)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression

from blocks.errors import RegistryError
from blocks.proof import DecisionRows, Proof
from blocks.registry import ModelRegistry
from tasks.gate import compare
from tasks.judge import gate_proof
from tasks.stages import Judged

ROWS = DecisionRows(batches=["b3"], n=240, ranges=["b3[560:800]"], unseen_by=["candidate", "v1"])


def paired(p: float, *, passed: bool) -> Proof:
    return Proof(
        by="test",
        action="gate",
        kind="paired test",
        test="diebold-mariano",
        metric="log_loss",
        against="champion v1",
        rows=ROWS,
        p_value=p,
        level=0.05,
        passed=passed,
        reason="r",
    )


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    reg = ModelRegistry(url=str(tmp_path))
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    for _ in range(2):
        reg.register("m", model, metrics={}, lineage={}, schema={})
    return reg


def test_a_promotion_without_a_proof_or_with_a_failed_test_is_refused(registry):
    with pytest.raises(RegistryError, match="without a proof"):
        registry.promote("m", 1, expected_champion=None, proof=None)
    with pytest.raises(RegistryError, match="its test did not pass"):
        registry.promote("m", 1, expected_champion=None, proof=paired(0.3, passed=False))
    with pytest.raises(RegistryError, match="moves only through promote"):
        registry.set_alias("m", "champion", 1, expected=None)
    assert registry.alias_log("m") == []  # nothing was written


def test_the_alias_log_carries_the_proof_and_says_it_in_words(registry):
    registry.promote("m", 1, expected_champion=None, proof=paired(0.003, passed=True))
    entry = registry.alias_log("m")[-1]
    assert entry.proof == paired(0.003, passed=True)
    assert entry.reason == (
        "gate: diebold-mariano on log_loss vs champion v1, 240 rows neither model learned from "
        "(b3[560:800]): p 0.003 < 0.05"
    )
    registry.promote("m", 2, expected_champion=1, proof=paired(0.01, passed=True))
    back = registry.rollback("m", reason="v2 broke the serving stack")
    assert back.version == 1 and back.proof is not None and back.proof.by == "human"
    assert back.reason == "rollback by a person: v2 broke the serving stack"


def test_a_proof_must_agree_with_its_numbers():
    with pytest.raises(ValidationError, match="did not pass level"):
        paired(0.2, passed=True)
    with pytest.raises(ValidationError, match="names its kind"):
        Proof(by="test", action="gate", passed=True, reason="r")
    with pytest.raises(ValidationError, match="carries its e-value"):
        Proof(by="test", action="challenger", kind="anytime-valid test", test="e", rows=ROWS,
              level=20.0, passed=True, reason="r")  # fmt: skip
    with pytest.raises(ValidationError, match="did not reach level"):
        Proof(by="test", action="challenger", kind="anytime-valid test", test="e", rows=ROWS,
              e_value=19.9, level=20.0, passed=True, reason="r")  # fmt: skip
    with pytest.raises(ValidationError, match="needs its reason"):
        Proof(by="human", action="rollback", passed=True, reason=" ")


def test_the_gate_s_proof_is_its_decision():
    """The proof of a batch-gate decision carries exactly the decision's test, p-value and level."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.where(y == 1, 0.8, 0.2)
    weak = np.where(y == 1, 0.55, 0.45)
    decision = compare(y, weak, good, metric="log_loss", alpha=0.05)
    proof = gate_proof(Judged(decision, ROWS, "champion v1"), action="gate")
    assert proof.passed and decision.promote
    assert (proof.test, proof.p_value, proof.level, proof.effect) == (
        decision.test,
        decision.p_value,
        decision.alpha,
        decision.effect,
    )
    rejected = compare(y, good, weak, metric="log_loss", alpha=0.05)
    assert not gate_proof(Judged(rejected, ROWS, "champion v1"), action="gate").passed
    accepted = gate_proof(
        Judged(decision, ROWS, "floor"), action="contract accepted", accepted="why"
    )
    assert accepted.by == "human" and accepted.reason == "why" and accepted.passed


def test_the_gate_and_the_challenger_render_their_evidence_with_one_renderer():
    """Both artifacts open with `Proof.markdown`: the headline, the proof's line, and one table
    of test, rows, the models checked not to have seen them, the figure and the level."""
    from tasks.challenger import challenger_markdown, evidence_proof, fresh_evidence
    from tasks.config import GateConfig
    from tasks.gate import gate_markdown

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    decision = compare(
        y, np.where(y == 1, 0.55, 0.45), np.where(y == 1, 0.8, 0.2), metric="log_loss", alpha=0.05
    )
    gate = gate_markdown(decision, rows=ROWS, against="champion v1", name="m")
    proof = gate_proof(Judged(decision, ROWS, "champion v1"), action="gate")
    evidence = fresh_evidence(2, 1, GateConfig()).add("b4", rng.normal(0.05, 0.2, 400))
    shadow = evidence_proof(
        evidence,
        against="champion v1",
        unseen_by=["challenger v2", "v1"],
        metric="log_loss",
        passed=False,
    )
    challenger = challenger_markdown(evidence, shadow, name="m", verdict="continue", budget=10)
    for text, shown, kind in ((gate, proof, "paired test"), (challenger, shadow, "anytime-valid")):
        head = text.splitlines()
        assert head[0].startswith("# ") and head[2] == shown.line()
        assert head[4:6] == ["| | |", "|---|---|"]
        assert f"| test | {kind}" in text
        assert "| checked unseen by | " in text and "| to pass | " in text
    assert "| p-value | " in gate and "| to pass | p < 0.05 |" in gate
    assert "| e-value | " in challenger and "| guard" not in challenger
    assert f"| rows | {ROWS.n}: b3[560:800] |" in gate
