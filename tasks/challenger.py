"""The shadow challenger: a candidate judged on the batches that arrive after it was trained.

In `gate.mode: shadow` (or `both`, behind a per-batch screen) a candidate does not replace the
champion at once: it is registered as a version with the `challenger` alias, and on every later
batch, before anything learns from it, champion and challenger predict the same rows; the paired
per-row improvements are added to the challenger's evidence (tasks/gate/sequential.py), an
anytime-valid test. The challenger is promoted when the evidence reaches its boundary, dropped when
the mirror test shows it worse or its budget of batches is spent.

State lives in the registry, like the champion: the `challenger` alias (its log says which
challenger is the j-th) and one append-only evidence log per challenger
(`<name>/logs/evidence-<version>/`), a record per batch written by compare-and-swap on the log's
sequence, so a restart, a deployment or two racing workers continue the same evidence and a batch
is never counted twice. Pure functions first; the Prefect tasks at the end.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.proof import DecisionRows, Proof
from blocks.registry import ModelRegistry
from tasks.artifacts import publish_markdown
from tasks.config import GateConfig
from tasks.format import png_markdown
from tasks.gate.metrics import get_metric
from tasks.gate.sequential import Evidence, Verdict, challenger_alpha
from tasks.release import announce
from tasks.train import Fitted, gate_inputs
from tasks.validate import FeatureSpec

ALIAS = "challenger"


def evidence_log(version: int) -> str:
    return f"evidence-{version:06d}"


class ChallengerState(BaseModel):
    """The current challenger and its evidence, as the registry holds them."""

    model_config = ConfigDict(frozen=True)

    version: int
    evidence: Evidence
    #: Sequence number of the evidence record this state was read from (for compare-and-swap).
    sequence: int


def current_challenger(registry: ModelRegistry, name: str) -> ChallengerState | None:
    """The challenger now, with its newest evidence; None when there is none."""
    version = registry.alias(name, ALIAS)
    if version is None:
        return None
    records = registry.read_log(name, evidence_log(version), last=1)
    if not records:
        return None
    record = records[-1]
    return ChallengerState(
        version=version,
        evidence=Evidence.model_validate(record["evidence"]),
        sequence=int(record["sequence"]),
    )


def challengers_started(registry: ModelRegistry, name: str) -> int:
    """How many challengers this model has had (the j of the next one is this + 1)."""
    return sum(entry.version is not None for entry in registry.alias_log(name, ALIAS))


def paired_improvements(
    champion: Fitted, challenger: Fitted, frame: pd.DataFrame, spec: FeatureSpec, metric: str
) -> np.ndarray:
    """Per row, in the frame's (time) order: how much better the challenger did than the
    champion on the gate's per-row metric (positive: the challenger is better)."""
    m = get_metric(metric)
    y, (base, cand), _ = gate_inputs(
        frame, spec, [champion, challenger], probabilities=m.needs == "probabilities"
    )
    return m.gain_rows(y, base, cand)


def fresh_evidence(version: int, j: int, gate: GateConfig) -> Evidence:
    return Evidence(
        version=version,
        j=j,
        alpha=challenger_alpha(gate.alpha, j),
        block_rows=gate.block_rows,
        min_blocks=gate.min_blocks,
        tau_ratio=0.3,  # chosen by measurement: benchmarks/gate_quality.py, part d
    )


def evidence_summary(evidence: Evidence) -> dict[str, Any]:
    """What travels in event payloads and step results."""
    up, down = evidence.log_e()
    return {
        "version": evidence.version,
        "challenger_number": evidence.j,
        "alpha": evidence.alpha,
        "e_value": math.exp(min(up, 700.0)),
        "e_value_worse": math.exp(min(down, 700.0)),
        "boundary": 1.0 / evidence.alpha,
        "rows": evidence.rows,
        "blocks": len(evidence.means),
        "batches": evidence.batches,
        "mean_improvement": float(np.mean(evidence.means)) if evidence.means else None,
    }


TEST_NAME = "e-process on block means (Gaussian mixture, Ville's inequality)"


def evidence_proof(
    evidence: Evidence, *, against: str, unseen_by: list[str], metric: str, passed: bool
) -> Proof:
    """The challenger's evidence as a proof: of a promotion, or of where it stands. `unseen_by`:
    the two models and their training windows, checked not to hold any batch of the evidence."""
    summary = evidence_summary(evidence)
    return Proof(
        by="test",
        action="challenger",
        kind="anytime-valid test",
        test=f"{TEST_NAME}, {evidence.block_rows}-row blocks, challenger number {evidence.j}",
        metric=metric,
        against=against,
        rows=DecisionRows(
            batches=[p.batch_id for p in evidence.path],
            n=evidence.rows,
            ranges=[f"{p.batch_id} (all rows)" for p in evidence.path],
            unseen_by=unseen_by,
        ),
        statistic=math.log(summary["e_value"]),  # the log e-value
        e_value=summary["e_value"],
        level=summary["boundary"],
        effect=summary["mean_improvement"],
        passed=passed,
        reason=f"challenger v{evidence.version} won on {evidence.rows} later rows"
        if passed
        else f"challenger v{evidence.version} has not won",
    )


def challenger_markdown(
    evidence: Evidence, proof: Proof, *, name: str, verdict: Verdict, budget: int
) -> str:
    """The challenger's evidence for a person: the proof's own rendering (as the gate's), then
    where the evidence stands against the boundary, batch by batch."""
    headline = {
        "promote": f"Promoted: challenger v{evidence.version} beat the {proof.against}",
        "drop-worse": f"Dropped: challenger v{evidence.version} is worse than the {proof.against}",
        "drop-budget": f"Dropped: challenger v{evidence.version} did not win within {budget} batches",
        "continue": f"Collecting evidence: challenger v{evidence.version} vs the {proof.against}",
    }[verdict]
    boundary = 1.0 / evidence.alpha
    rows = [
        f"| {i} | {p.batch_id} | {p.rows:,} | {p.blocks} | "
        f"{'-' if p.mean_improvement is None else f'{p.mean_improvement:+.4f}'} | "
        f"{math.exp(min(p.log_e, 700)):.3g} | {math.exp(min(p.log_e_worse, 700)):.3g} |"
        for i, p in enumerate(evidence.path, 1)
    ]
    details = [
        f"Challenger number {evidence.j}, tested at alpha_j = 6 alpha / (pi^2 j^2) = "
        f"{evidence.alpha:.4g}: promote when the e-value reaches {boundary:.3g}, drop when "
        f"the mirror e-value (evidence it is worse) does. {evidence.rows:,} rows, "
        f"{len(evidence.means)} blocks of {evidence.block_rows} (at least "
        f"{evidence.min_blocks} before any decision); batch {evidence.batches} of {budget} "
        f"({max(budget - evidence.batches, 0)} left).",
        "",
        "| # | batch | rows so far | blocks | mean improvement | e-value | e-value (worse) |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    return proof.markdown(f"{headline} ({name})", details)


def plot_evidence(evidence: Evidence, path: Path) -> Path:
    """The e-value paths against the boundary, on a log scale: the reader sees at a glance how far
    the challenger is from winning (blue) or from being dropped as worse (orange)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.4), dpi=100)
    ax = fig.subplots()
    x = np.arange(1, len(evidence.path) + 1)
    boundary = evidence.boundary / math.log(10)
    ax.plot(x, [p.log_e / math.log(10) for p in evidence.path], "o-", label="better (promote)")
    ax.plot(x, [p.log_e_worse / math.log(10) for p in evidence.path], "s--", label="worse (drop)")
    ax.axhline(boundary, color="#c0392b", ls=":")
    ax.annotate(
        f"boundary: e-value {math.exp(evidence.boundary):.3g} = 1/alpha_{evidence.j}",
        (0.01, boundary),
        xycoords=("axes fraction", "data"),
        xytext=(0, 3),
        textcoords="offset points",
        color="#c0392b",
        fontsize=8,
    )
    ax.set_xticks(x[:: max(1, len(x) // 10)])
    ax.set_xlim(0.5, len(x) + 0.5)
    ax.set_xlabel(
        f"batches since the challenger started ({evidence.rows:,} rows, "
        f"{len(evidence.means)} blocks of {evidence.block_rows}; no decision before "
        f"{evidence.min_blocks})"
    )
    ax.set_ylabel("log10 e-value")
    ax.set_ylim(min(-1.0, ax.get_ylim()[0]), max(boundary * 1.15, ax.get_ylim()[1]))
    ax.set_title(f"Challenger v{evidence.version}: evidence against the champion", fontsize=10)
    ax.legend(fontsize=8, loc="center left")
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.17, top=0.9)
    fig.savefig(path)
    return path


# ---------------------------------------------------------------- Prefect tasks
@task(name="weigh-challenger", cache_policy=NO_CACHE)
def weigh_challenger(
    registry: ModelRegistry,
    name: str,
    state: ChallengerState,
    *,
    champion: Fitted,
    champion_version: int,
    challenger: Fitted,
    frame: pd.DataFrame,
    spec: FeatureSpec,
    batch_id: str,
    gate: GateConfig,
    metric: str,
    unseen_by: list[str],
    plot_path: str | None,
) -> tuple[Verdict, ChallengerState, Proof]:
    """Add this batch's paired improvements to the evidence (once per batch), store it by
    compare-and-swap, publish the `challenger` artifact, and say what the evidence decides, with
    its proof (`unseen_by`: the two models' training windows, checked against the batch)."""
    logger = get_run_logger()
    evidence = state.evidence
    if any(point.batch_id == batch_id for point in evidence.path):
        logger.info("Challenger v%d has already seen batch %s", state.version, batch_id)
    else:
        d = paired_improvements(champion, challenger, frame, spec, metric)
        evidence = evidence.add(batch_id, d)
        sequence = registry.append_log(
            name,
            evidence_log(state.version),
            {"batch_id": batch_id, "evidence": evidence.model_dump(mode="json")},
            expected=state.sequence,
        )
        state = ChallengerState(version=state.version, evidence=evidence, sequence=sequence)
    verdict = evidence.verdict(gate.budget_batches)
    summary = evidence_summary(evidence)
    logger.info(
        "Challenger v%d: e-value %.3g of %.3g after %d rows (%d blocks): %s",
        state.version,
        summary["e_value"],
        summary["boundary"],
        evidence.rows,
        summary["blocks"],
        verdict,
    )
    proof = evidence_proof(
        evidence,
        against=f"champion v{champion_version}",
        unseen_by=unseen_by,
        metric=metric,
        passed=verdict == "promote",
    )
    markdown = challenger_markdown(
        evidence, proof, name=name, verdict=verdict, budget=gate.budget_batches
    )
    if plot_path is not None and evidence.path:
        markdown += "\n\n" + png_markdown(plot_evidence(evidence, Path(plot_path)), "evidence")
    publish_markdown(
        key="challenger",
        markdown=markdown,
        description=f"{name}: challenger v{state.version} {verdict}, e-value "
        f"{summary['e_value']:.3g} of {summary['boundary']:.3g}",
    )
    return verdict, state, proof


@task(name="start-challenger", cache_policy=NO_CACHE)
def start_challenger(
    registry: ModelRegistry,
    name: str,
    version: int,
    *,
    replaces: int | None,
    gate: GateConfig,
    reason: str,
    run_id: str | None,
) -> ChallengerState:
    """Make a registered version the challenger (compare-and-swap of the alias) with fresh
    evidence, and announce it."""
    j = challengers_started(registry, name) + 1
    evidence = fresh_evidence(version, j, gate)
    registry.set_alias(name, ALIAS, version, expected=replaces, reason=reason, run_id=run_id)
    sequence = registry.append_log(
        name,
        evidence_log(version),
        {"batch_id": None, "evidence": evidence.model_dump(mode="json")},
        expected=0,
    )
    announce(
        "ct.challenger.started",
        name,
        {"version": version, "replaces": replaces, "challenger_number": j, "alpha": evidence.alpha},
    )
    get_run_logger().info("Challenger of %s: v%d (number %d)", name, version, j)
    return ChallengerState(version=version, evidence=evidence, sequence=sequence)


@task(name="drop-challenger", cache_policy=NO_CACHE)
def drop_challenger(
    registry: ModelRegistry, name: str, state: ChallengerState, *, reason: str, run_id: str | None
) -> None:
    """Clear the challenger alias (compare-and-swap) and announce why."""
    registry.set_alias(name, ALIAS, None, expected=state.version, reason=reason, run_id=run_id)
    announce(
        "ct.challenger.dropped",
        name,
        {"version": state.version, "reason": reason, "evidence": evidence_summary(state.evidence)},
    )
    get_run_logger().info("Challenger v%d of %s dropped: %s", state.version, name, reason)
