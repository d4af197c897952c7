"""Why a model became champion: the record every move of the `champion` alias must carry.

ct's promise is that a model serves only after a paired test, on rows neither it nor the model it
replaces learned from, showed it better. The registry enforces it in one place
(`ModelRegistry.promote`): a promotion without a `Proof`, or with a test it did not pass, is
refused. A proof is one of two kinds:

- `by="test"`: the test, the rows it used (batch, row ranges, and the models whose recorded
  training windows were checked not to contain them), the statistic, the p-value (or e-value),
  the level it had to pass, and the result. A passed test must show it in its numbers (p < level,
  or e >= level); the gate may still fail a significant one on its minimum effect or a guard.
- `by="human"`: an explicit action a person took (a rollback, a manual promotion, a contract
  accepted after the data changed for good), with its reason. A test may be attached (a new
  contract's candidate still beats the floor) but a human proof says who decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from blocks.errors import RegistryError

Kind = Literal["paired test", "anytime-valid test"]


class DecisionRows(BaseModel):
    """The rows a test used, and which models were checked not to have learned from them."""

    model_config = ConfigDict(frozen=True)

    #: The batches the rows came from (one for the batch gate; every batch the challenger saw).
    batches: list[str]
    #: How many rows.
    n: int = Field(ge=0)
    #: Where in each batch, e.g. "batch-0003[560:800]" (the held-back newest rows).
    ranges: list[str] = Field(default_factory=list)
    #: The models whose recorded training windows were checked against these rows, e.g.
    #: "candidate (trained on batch-0001[0:800], batch-0003[0:560])".
    unseen_by: list[str] = Field(default_factory=list)


class Proof(BaseModel):
    """The decision behind one move of the champion alias; stored in the alias log entry, the
    `ct.model.promoted` event and the backtest row."""

    model_config = ConfigDict(frozen=True)

    by: Literal["test", "human"]
    #: What moved the alias: "gate", "challenger", "first model", "contract accepted",
    #: "rollback", "manual promotion".
    action: str
    #: A test's kind and name: ("paired test", "diebold-mariano"), ("anytime-valid test",
    #: "e-process on 50-row block means"); None for a human action without a test.
    kind: Kind | None = None
    test: str | None = None
    metric: str | None = None
    #: What the model was tested against: "champion v3", or "floor" (no champion yet).
    against: str | None = None
    rows: DecisionRows | None = None
    statistic: float | None = None
    p_value: float | None = None
    e_value: float | None = None
    #: The level the test had to pass: alpha for a p-value, 1 / alpha_j for an e-value.
    level: float | None = None
    #: The improvement in the metric's units (positive: the new model is better).
    effect: float | None = None
    passed: bool
    reason: str

    @model_validator(mode="after")
    def _consistent(self) -> Proof:
        if self.by == "human" and not self.reason.strip():
            raise ValueError("a human action needs its reason, for the audit log")
        if self.by == "test" and self.kind is None:
            raise ValueError("a test's proof names its kind")
        if self.kind is None:
            return self
        if self.test is None or self.rows is None or self.level is None:
            raise ValueError("a test's proof names its test, rows and level")
        if self.kind == "paired test":
            if self.p_value is None:
                raise ValueError("a paired test's proof carries its p-value")
            if self.passed and not self.p_value < self.level:
                raise ValueError(
                    f"a test with p = {self.p_value:.4g} did not pass level {self.level:g}"
                )
        elif self.e_value is None:
            raise ValueError("an anytime-valid test's proof carries its e-value")
        elif self.passed and not self.e_value >= self.level:
            raise ValueError(
                f"a test with e-value {self.e_value:.4g} did not reach level {self.level:.4g}"
            )
        return self

    def line(self) -> str:
        """The proof in one line, as the alias log, the backtest and the CLI show it."""
        if self.by == "human" and self.kind is None:
            return f"{self.action} by a person: {self.reason}"
        assert self.rows is not None and self.level is not None
        where = ", ".join(self.rows.ranges) or ", ".join(self.rows.batches)
        if self.kind == "paired test":
            figure = f"p {self.p_value:.3g} {'<' if self.passed else '≥'} {self.level:g}"
        else:
            figure = f"e-value {self.e_value:.3g} {'≥' if self.passed else '<'} {self.level:.3g}"
        effect = "" if self.effect is None else f", improvement {self.effect:+.4f}"
        who = f" by a person ({self.reason})" if self.by == "human" else ""
        return (
            f"{self.action}{who}: {self.test} on {self.metric} vs {self.against}, "
            f"{self.rows.n:,} rows neither model learned from ({where}): {figure}{effect}"
        )

    def markdown(self, headline: str, details: Sequence[str] = ()) -> str:
        """The proof for a person, as the gate's and the challenger's artifacts show it: the
        headline, the one-line proof, a table of what was tested on which rows, then `details`
        (what only that kind of test has: the guards, the e-value path)."""
        lines = [f"# {headline}", "", self.line(), ""]
        if self.kind is not None:
            assert self.rows is not None and self.level is not None
            if self.kind == "paired test":
                figure = ("p-value", f"{self.p_value:.4g}", f"p < {self.level:g}")
            else:
                figure = ("e-value", f"{self.e_value:.4g}", f"e-value ≥ {self.level:.4g}")
            where = ", ".join(self.rows.ranges) or ", ".join(self.rows.batches)
            table = [
                ("decided by", "a person" if self.by == "human" else "the test"),
                ("test", f"{self.kind}: {self.test}"),
                ("metric", str(self.metric)),
                ("against", str(self.against)),
                ("rows", f"{self.rows.n:,}: {where}"),
                ("checked unseen by", "; ".join(self.rows.unseen_by) or "-"),
                ("statistic", "-" if self.statistic is None else f"{self.statistic:.4g}"),
                figure[:2],
                ("to pass", figure[2]),
                ("improvement", "-" if self.effect is None else f"{self.effect:+.4f}"),
                ("result", f"{'passed' if self.passed else 'not passed'}: {self.reason}"),
            ]
            lines += ["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in table], ""]
        return "\n".join([*lines, *details]).rstrip() + "\n"


def check_promotion(proof: Proof | None, version: int) -> Proof:
    """The one rule: the champion alias moves only with a passed test or a person's action."""
    if proof is None:
        raise RegistryError(
            f"refusing to make v{version} champion without a proof: a promotion records the "
            "test it passed (or the person who decided, for a rollback or a manual promotion)"
        )
    if proof.kind is not None and not proof.passed:
        raise RegistryError(
            f"refusing to make v{version} champion: its test did not pass ({proof.line()})"
        )
    return proof
