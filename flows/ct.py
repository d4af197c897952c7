"""ct: continuous training for a deployed model, as Prefect flows.

One CT step (`continuous_training`) takes a new labelled batch through
load → validate → observe (quality, drift, the champion's score) → retrain → paired gate →
register → promote or reject → event. Run this file to use it from the command line; with no
arguments it backtests the CT policy over the built-in demo stream (see `python flows/ct.py --help`).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # the CLI parses and checks before anything below is imported
    from flows.cli import main

    sys.exit(main())

import contextlib
import functools
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from blocks.registry import ModelRegistry, ModelVersion
from flows.heartbeats import without_heartbeats
from flows.retrain import Candidate, retrain
from tasks import artifacts, gx_suite
from tasks.challenger import ALIAS as CHALLENGER
from tasks.challenger import (
    ChallengerState,
    current_challenger,
    drop_challenger,
    evidence_summary,
    start_challenger,
    weigh_challenger,
)
from tasks.config import CTConfig, Label
from tasks.data import BadLine, Batch, load_batch, store_history
from tasks.drift import DriftReport, ReferenceProfile, build_profile, detect_drift, publish_drift
from tasks.drift.compare import compare_summary
from tasks.errors import DataValidationError
from tasks.gate import GateDecision, Guard, check_unseen, gate_candidate, get_metric
from tasks.gx_suite import QualityReport
from tasks.labels import sorted_labels
from tasks.refusals import LOG as CONTRACT_LOG
from tasks.refusals import note_passed, note_refusal
from tasks.release import (
    Champion,
    announce,
    champion_of,
    decision_summary,
    open_registry,
    promote_champion,
    register_candidate,
)
from tasks.report import StepResult
from tasks.scan import (
    KEEP_SEED_OFFSET,
    PieceScan,
    check_bad_fraction,
    dataset_batch,
    head,
    is_dataset,
    quality_from_scan,
    quality_ranges,
    scan_dataset,
    training_sample,
)
from tasks.selection import (
    ALWAYS,
    BATCH_ONLY,
    LINEAGES,
    SelectionRecord,
    alias_of,
    append_record,
    choose,
    read_selection,
    select_lineage,
)
from tasks.sources import ReadLimits
from tasks.train import estimator_name, fit_floor, gate_inputs, report_metric, score
from tasks.validate import (
    FeatureSpec,
    ValidationOutcome,
    check_quality,
    infer_spec,
    start_quality,
    validate_batch,
)
from tasks.validate.quality import expectation_specs
from tasks.window import TrainingWindow


@functools.cache  # the code does not change under a running process
def code_revision() -> str:
    """The git commit of the code that trains, for lineage; 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def reports_dir(config: CTConfig) -> Path:
    """Where plots of this dataset's runs go (beside the registry, in the state folder)."""
    path = Path(config.state_dir) / "reports" / config.dataset.name
    path.mkdir(parents=True, exist_ok=True)
    return path


_V = TypeVar("_V")


def unwalked(value: _V) -> _V:
    """`value` as a task argument that Prefect hands over without walking it: it visits every
    element of a parameter's lists, dicts and models looking for futures, which for a drift
    profile (its sample is thousands of values) or a registry card cost 0.3 s a CT step each
    (measured). `prefect.utilities.annotations.quote`, typed as what it wraps."""
    return cast(_V, quote(value))


@task(name="read-champion", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def read_champion(registry: ModelRegistry, name: str, trusted: list[str]) -> Champion | None:
    """The current champion, or None before the first promotion."""
    mv = registry.champion(name)
    if mv is None:
        get_run_logger().info("No champion for %s yet: this step trains the first model", name)
        return None
    get_run_logger().info("Champion of %s: version %d", name, mv.version)
    return champion_of(registry, mv, trusted)


#: Seconds the model's slot is leased for, renewed while the step runs. A step whose process dies
#: (a lost Dask worker, a killed flow run) frees it when the lease runs out: the server's
#: smallest, so a re-run waits about a minute, not Prefect's default five.
LOCK_LEASE = 60.0


def model_lock_name(name: str) -> str:
    return f"ct-model-{name}"


def ensure_model_lock(name: str) -> None:
    """A global concurrency limit of 1 per model, created on first use (a lost creation race is
    fine: the other run created it); asked of each server once per process."""
    from prefect.settings import PREFECT_API_URL

    _ensure_model_lock(name, str(PREFECT_API_URL.value()))


@functools.cache
def _ensure_model_lock(name: str, api: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(model_lock_name(name))
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=model_lock_name(name), limit=1)
                )


@flow(name="continuous-training")
def continuous_training(
    data: str,
    config: CTConfig = CTConfig(),  # noqa: B008
    accept_contract: str | None = None,
    plots: bool = True,
) -> StepResult:
    """One CT step on one labelled batch (CSV or Parquet path). A failed step changes no champion.

    `plots: false` skips the drift plot (a backtest shows its own; `--plots` brings them back).
    `accept_contract` (a reason, for the audit log) takes a new contract from this batch instead
    of the champion's, after the data changed for good (columns renamed, a type changed): the
    candidate is then gated against the floor, as a first model is, and replaces the champion.

    Two steps for the same model never run at once, whichever deployment started them: each holds
    the global concurrency slot `ct-model-<name>` (limit 1) for its whole duration.
    """
    from prefect.concurrency.sync import concurrency

    ensure_model_lock(config.dataset.name)
    with (
        concurrency(
            model_lock_name(config.dataset.name), occupy=1, strict=True, lease_duration=LOCK_LEASE
        ),
        artifacts.deferred(),  # the step's artifacts are sent while it goes on
    ):
        result = _step(data, config, accept_contract, plots)
        if not result.outcome.startswith(ALREADY):
            open_registry(config).record_step(
                config.dataset.name,
                result.batch_id,
                {"result": result.model_dump(mode="json"), "flow_run_id": _run_id()},
            )
        return result


#: How a re-run of a finished step begins its outcome.
ALREADY = "already processed"


def _run_id() -> str | None:
    return None if flow_run.id is None else str(flow_run.id)


def already_done(
    registry: ModelRegistry, name: str, batch: Batch, champion: Champion | None
) -> StepResult | None:
    """The outcome of a step on this batch that already finished, so that running it again
    (Dask re-runs a finished task after losing a worker, PrefectHQ/prefect#15442; a webhook
    delivered twice) registers and promotes nothing. A step cut off after its last alias move
    (the champion or the challenger learned from this batch) counts as finished."""
    record = registry.step_record(name, batch.batch_id)
    current = None if champion is None else champion.version.version
    if record is not None:
        done = StepResult.model_validate(record["result"])
        return done.model_copy(
            update={
                "outcome": f"{ALREADY} at {str(record['at'])[:19]}: {done.outcome}",
                "retrained": False,
                "promoted": False,
                "new_version": None,
                "champion_version": current,
                "champion_after": current,
            }
        )
    challenger = registry.alias(name, CHALLENGER)
    for role, version in (("champion", current), ("challenger", challenger)):
        if version is None:
            continue
        lineage = registry.get(name, version=version).metadata.get("lineage", {})
        if lineage.get("batch_id") == batch.batch_id:
            return StepResult(
                source=batch.source,
                batch_id=batch.batch_id,
                rows=batch.rows,
                champion_version=current,
                champion_metric=None,
                drift=None,
                drifted_columns=[],
                retrained=False,
                p_value=None,
                promoted=False,
                outcome=f"{ALREADY}: {role} v{version} learned from this batch",
                new_version=None,
                champion_after=current,
                challenger=challenger,
            )
    return None


# ---------------------------------------------------------------- the stages of a step
@dataclass(frozen=True)
class Checked:
    """A batch that passed its contract: the valid rows and what validation set aside."""

    batch: Batch
    spec: FeatureSpec
    valid: pd.DataFrame
    outcome: ValidationOutcome
    quarantine_path: str | None
    #: A dataset's rows were sampled for learning: how many, of how many valid rows, which seed.
    sampled: dict[str, Any] | None = None


@contextlib.contextmanager
def refusals_counted(
    registry: ModelRegistry, config: CTConfig, batch: Batch, champion: Champion | None
) -> Iterator[None]:
    """A batch refused inside is counted (a run of them raises the alarm); one that passes ends
    the run of refusals."""
    name, rules = config.dataset.name, config.validation
    try:
        yield
    except DataValidationError as exc:
        raise note_refusal(
            registry,
            name,
            batch.batch_id,
            exc,
            limit=rules.max_refused_in_a_row,
            champion_version=None if champion is None else champion.version.version,
        ) from exc
    note_passed(registry, name, batch.batch_id)


def validate(
    frame: pd.DataFrame,
    batch: Batch,
    bad_lines: list[BadLine],
    spec: FeatureSpec,
    *,
    registry: ModelRegistry,
    config: CTConfig,
    champion: Champion | None,
) -> Checked:
    """Enforce the contract; a refused batch is counted, and a run of them raises the alarm."""
    rules, name = config.validation, config.dataset.name
    with refusals_counted(registry, config, batch, champion):
        valid, outcome, kept = validate_batch(
            frame,
            spec,
            batch.source,
            quarantine_path=str(
                Path(config.state_dir) / "quarantine" / name / f"{batch.batch_id}.parquet"
            ),
            max_bad_fraction=rules.max_bad_fraction,
            min_rows=rules.min_rows,
            bad_lines=bad_lines,
        )
    return Checked(batch, spec, valid, outcome, kept)


#: Rows a first contract is inferred from when the batch is a dataset.
HEAD_ROWS = 50_000


def dataset_specs(profile: ReferenceProfile, rules: Any) -> Any:
    """The quality expectations for a dataset: the batch row limit (for files held in memory)
    does not bound a dataset."""
    return expectation_specs(
        profile, tolerance=rules.range_tolerance, min_rows=rules.min_rows, max_rows=10**15
    )


def scan(
    batch: Batch,
    spec: FeatureSpec,
    *,
    registry: ModelRegistry,
    config: CTConfig,
    champion: Champion | None,
    first: pd.DataFrame | None = None,
) -> tuple[Checked, PieceScan]:
    """A dataset's contract, quality counts and drift summary, over all its rows in record
    batches (bad rows kept as quarantine Parquet parts); what learns from it is the seeded
    sample of `retrain.sample_rows` valid rows the scan keeps. Refused like a batch when too many
    rows are bad. `first`: its first rows, when the caller has read them already."""
    rules, name, source = config.validation, config.dataset.name, batch.source
    if champion is not None:
        profile = ReferenceProfile.model_validate(registry.load_profile(champion.version))
    else:  # a first model: only the counts and the sample are wanted; summarise against the head
        first = head(source, HEAD_ROWS) if first is None else first
        profile = build_profile(
            first[[c for c in [*spec.features, spec.target] if c in first.columns]],
            categorical=[
                *spec.categorical,
                *([spec.target] if spec.task == "classification" else []),
            ],
            bins=config.drift.bins,
            sample_rows=config.drift.sample_rows,
            seed=config.seed,
        )
    folder = Path(config.state_dir) / "quarantine" / name / batch.batch_id
    with refusals_counted(registry, config, batch, champion):
        scanned = scan_dataset(
            source,
            spec=spec,
            profile=profile,
            ranges=quality_ranges(dataset_specs(profile, rules)) if rules.quality_suite else {},
            quarantine_dir=str(folder),
            keep_rows=config.retrain.sample_rows,
        )
        check_bad_fraction(scanned, source, rules.max_bad_fraction)
    kept = str(folder) if scanned.quarantine_parts else None
    sample = training_sample(scanned)
    if spec.time_column:
        sample = sample.sort_values(spec.time_column, kind="stable").reset_index(drop=True)
    outcome = ValidationOutcome(
        rows_in=scanned.rows_in,
        rows_valid=scanned.rows_valid,
        rows_quarantined=scanned.rows_in - scanned.rows_valid,
        failures=scanned.failures,
    )
    logger = get_run_logger()
    if outcome.rows_quarantined:
        logger.warning("%s: %s; kept in %s", source, outcome.summary(), kept)
    sampled = {
        "rows": len(sample),
        "of_valid_rows": scanned.rows_valid,
        "seed": profile.seed + KEEP_SEED_OFFSET,
        "how": "the valid rows with the smallest splitmix64 keys of their positions",
    }
    logger.info(
        "Dataset %s: %d rows, %d valid; learning from a seeded sample of %d",
        source,
        scanned.rows_in,
        scanned.rows_valid,
        len(sample),
    )
    return Checked(batch, spec, sample, outcome, kept, sampled), scanned


@dataclass(frozen=True)
class Observed:
    """What the champion makes of the batch before anything learns from it. The quality suite
    runs meanwhile in the background (`quality`, collected by `finish_quality`)."""

    drift: DriftReport | None
    metric: float | None
    new_classes: list[Label]
    quality: Future[QualityReport] | None = None
    quality_report: str | None = None


def finish_quality(seen: Observed, config: CTConfig, source: str) -> None:
    """Collect the quality suite's report, publish it, and stop the step if it is blocking."""
    if seen.quality is not None and seen.quality_report is not None:
        check_quality(
            seen.quality,
            report_path=seen.quality_report,
            blocking=config.validation.quality_blocking,
            source=source,
        )


def observe(
    checked: Checked,
    champion: Champion | None,
    *,
    config: CTConfig,
    registry: ModelRegistry,
    plots: bool = True,
    scanned: PieceScan | None = None,
) -> Observed:
    """The quality suite and drift against what the champion learned from, its score on the batch,
    and any class it has never seen (kept: the candidate learns it). `scanned`: the batch is a
    dataset whose quality counts and drift summary were taken over all of it, in record batches
    (`checked.valid` is then its sample)."""
    spec, valid, batch, name = checked.spec, checked.valid, checked.batch, config.dataset.name
    new_classes: list[Label] = []
    if spec.task == "classification" and not spec.classes_closed:
        known = set(spec.classes or [])
        new_classes = [c for c in sorted_labels(valid[spec.target].unique()) if c not in known]
        if new_classes:
            get_run_logger().warning(
                "%s: new classes %s (known: %s); kept, the candidate learns them",
                batch.source,
                new_classes,
                spec.classes,
            )
            announce(
                "ct.label.new_class",
                name,
                {
                    "batch_id": batch.batch_id,
                    "source": batch.source,
                    "new_classes": new_classes,
                    "known_classes": spec.classes,
                    "rows": int(valid[spec.target].isin(new_classes).sum()),
                    "champion_version": None if champion is None else champion.version.version,
                },
            )
    if champion is None:
        return Observed(drift=None, metric=None, new_classes=new_classes)
    rules = config.validation
    profile = ReferenceProfile.model_validate(registry.load_profile(champion.version))
    observed = valid[[*spec.features, spec.target]]
    reports = reports_dir(config)
    plot_path = str(reports / f"{batch.batch_id}-drift.png") if plots else None
    quality: Future[QualityReport] | None = None
    if scanned is None:
        if rules.quality_suite:
            quality = start_quality(
                observed,
                profile,
                tolerance=rules.range_tolerance,
                min_rows=rules.min_rows,
                max_rows=rules.max_rows,
            )
        drift = detect_drift(
            unwalked(profile), observed, config.drift, name=name, plot_path=plot_path
        )
    else:
        assert scanned.summary is not None
        if rules.quality_suite:  # judged from the counts of every row, by the suite's own rules
            quality = Future()
            quality.set_result(quality_from_scan(dataset_specs(profile, rules), scanned))
        report = compare_summary(profile, scanned.summary, observed.iloc[:0], config.drift)
        drift = publish_drift(report, profile, observed, name, plot_path)
    metric = report_metric(spec, config.gate.metric_for(spec.task))
    if drift.drifted:
        announce(
            "ct.drift.detected",
            name,
            {
                "batch_id": batch.batch_id,
                "source": batch.source,
                "columns": drift.drifted_columns,
                "share_drifted": drift.share_drifted,
                "outside_reference_range": drift.outside_range_columns,
                "champion_version": champion.version.version,
            },
        )
    seen = Observed(
        drift=drift,
        metric=score(champion.model, valid, spec, metric),
        new_classes=new_classes,
        quality=quality,
        quality_report=str(reports / f"{batch.batch_id}-quality.json"),
    )
    if rules.quality_blocking:  # the step may not go on before the suite has passed
        finish_quality(seen, config, batch.source)
        return Observed(drift=drift, metric=seen.metric, new_classes=new_classes)
    return seen


def judge(
    candidate: Candidate,
    champion: Champion | None,
    spec: FeatureSpec,
    *,
    config: CTConfig,
    accepting: bool,
    alpha: float | None = None,
) -> GateDecision:
    """Champion (or, for a first model or a new contract, the floor) and candidate on the same
    held-back rows that neither learned from: the paired, one-sided test and the guards (at
    `alpha`, e.g. the screen's, instead of gate.alpha)."""
    windows = {"candidate": candidate.window}
    if champion is not None and not accepting:
        windows["champion"] = TrainingWindow.model_validate(
            champion.version.metadata["lineage"]["training_window"]
        )
    holdout = candidate.holdout
    holdout_start = (
        holdout[spec.time_column].min().to_pydatetime(warn=False) if spec.time_column else None
    )
    check_unseen(candidate.held, holdout_start, windows)
    gate = config.gate
    metric = gate.metric_for(spec.task)
    guards = gate.guards_for(spec.task)
    baseline: Literal["champion", "floor"] = (
        "champion" if champion is not None and not accepting else "floor"
    )
    baseline_model = (
        champion.model
        if champion is not None and not accepting
        else fit_floor(candidate.train, spec, metric=metric)
    )
    probabilities = any(
        get_metric(m).needs == "probabilities" for m in [metric, *(g.metric for g in guards)]
    )
    y, (base_pred, cand_pred), _ = gate_inputs(
        holdout, spec, [baseline_model, candidate.model], probabilities=probabilities
    )
    return gate_candidate(
        y,
        base_pred,
        cand_pred,
        baseline=baseline,
        metric=metric,
        test=gate.test,
        alpha=gate.alpha if alpha is None else alpha,
        min_effect=gate.min_effect,
        guards=[Guard(metric=g.metric, tolerance=g.tolerance) for g in guards],
        order=(
            holdout[spec.time_column].to_numpy()
            if gate.time_ordered and spec.time_column
            else (np.arange(len(holdout)) if gate.time_ordered else None)
        ),
        name=config.dataset.name,
        seed=config.seed,
    )


def register_version(
    candidate: Candidate,
    decision: GateDecision,
    checked: Checked,
    *,
    registry: ModelRegistry,
    config: CTConfig,
    accepting: str | None,
    previous: int | None,
    kind: str | None = None,
) -> ModelVersion:
    """Register the candidate with its contract and lineage (not yet champion or challenger);
    a re-run of a step cut off after registering finds its version and registers no second.
    `kind`: which of gate.mode auto's two candidates ("window", "batch-only")."""
    spec, batch, name = checked.spec, checked.batch, config.dataset.name
    for number in registry.versions(name)[-3:]:
        earlier = registry.get(name, version=number)
        lineage = earlier.metadata.get("lineage", {})
        if (
            lineage.get("batch_id") == batch.batch_id
            and lineage.get("compared_with") == previous
            and lineage.get("candidate") == kind
        ):
            get_run_logger().info("Batch %s was registered as v%d already", batch.batch_id, number)
            return earlier
    contract = spec.with_classes(candidate.model.labels or [])
    run_id = _run_id()
    version = register_candidate(
        registry,
        name,
        candidate.model.estimator,
        metrics={
            f"holdout_{decision.metric}": decision.candidate_metric or 0.0,
            f"baseline_holdout_{decision.metric}": decision.baseline_metric or 0.0,
            "holdout_rows": float(decision.n),
            "train_rows": float(len(candidate.train)),
        },
        lineage={
            "batch_id": batch.batch_id,
            "source": batch.source,
            "data_sha256": batch.sha256,
            "training_window": candidate.window.model_dump(mode="json"),
            "flow_run_id": run_id,
            "code_revision": code_revision(),
            "estimator": estimator_name(config.model, spec.task),
            "task": spec.task,
            "labels": candidate.model.labels,
            "trusted_types": list(config.model.trusted_types),
            "contract_accepted": accepting,
            #: The model it was judged against.
            "compared_with": previous,
            #: gate.mode auto: trained on the configured window or on the new batch alone.
            "candidate": kind,
            #: A dataset: it learned from (and was gated on) a seeded sample of its valid rows.
            "sample": checked.sampled,
        },
        schema=unwalked({"spec": contract.model_dump(mode="json"), "hash": contract.schema_hash()}),
        profile=unwalked(
            build_profile(
                candidate.train[[*spec.features, spec.target]],
                categorical=[
                    *spec.categorical,
                    *([spec.target] if spec.task == "classification" else []),
                ],
                label=spec.target,
                bins=config.drift.bins,
                sample_rows=config.drift.sample_rows,
                seed=config.seed,
            ).model_dump(mode="json")
        ),
        decision=unwalked(decision.model_dump()),
        trusted=list(config.model.trusted_types),
    )
    announce(
        "ct.model.registered",
        name,
        {
            "version": version.version,
            "previous_champion": previous,
            "decision": decision_summary(decision),
        },
    )
    if accepting is not None:
        registry.append_log(
            name,
            CONTRACT_LOG,
            {
                "outcome": "accepted",
                "batch_id": batch.batch_id,
                "version": version.version,
                "reason": accepting,
            },
        )
    return version


def crown(
    version: ModelVersion,
    *,
    registry: ModelRegistry,
    name: str,
    previous: int | None,
    reason: str,
    payload: dict[str, Any],
) -> int:
    """Make a registered version the champion (compare-and-swap) and announce it."""
    run_id = _run_id()
    promote_champion(
        registry, name, version.version, expected_champion=previous, reason=reason, run_id=run_id
    )
    lineage = version.metadata.get("lineage", {})
    announce(
        "ct.model.promoted",
        name,
        {
            "version": version.version,
            "previous_champion": previous,
            "path": version.path,
            "task": lineage.get("task"),
            "labels": lineage.get("labels"),
            **payload,
        },
    )
    return version.version


def learned_from(model: Champion, checked: Checked) -> bool:
    """Did this model learn from any row of the batch (by batch, or by time)?"""
    window = TrainingWindow.model_validate(model.version.metadata["lineage"]["training_window"])
    if any(part.batch_id == checked.batch.batch_id for part in window.slices):
        return True
    time_column = checked.spec.time_column
    if time_column and window.time_end is not None and len(checked.valid):
        first = checked.valid[time_column].min().to_pydatetime(warn=False)
        return bool(first <= window.time_end)
    return False


@dataclass(frozen=True)
class Shadow:
    """What the challenger's evidence did in this step: the champion from now on (a new one if
    the challenger won), the challenger still running, and notes for the step's outcome."""

    champion: Champion | None
    state: ChallengerState | None
    crowned: int | None
    notes: list[str]


def shadow_stage(
    champion: Champion | None,
    checked: Checked,
    *,
    active: bool,
    registry: ModelRegistry,
    config: CTConfig,
    plots: bool,
    run_id: str | None,
) -> Shadow:
    """Judge the current challenger (mode shadow or both) on this batch: promote it, drop it, or
    keep collecting. Not `active` (a new contract is being accepted): nothing happens."""
    gate, name = config.gate, config.dataset.name
    state = (
        current_challenger(registry, name)
        if active and champion is not None and gate.mode in {"shadow", "both"}
        else None
    )
    if champion is None or state is None:
        return Shadow(champion, None, None, [])
    stage(get_run_logger(), "weighing the challenger")
    contender = champion_of(
        registry, registry.get(name, version=state.version), list(config.model.trusted_types)
    )
    if learned_from(contender, checked):  # e.g. a re-run of the batch that trained it
        note = f"challenger v{state.version} trained on this batch: not evidence"
        return Shadow(champion, state, None, [note])
    verdict, state = weigh_challenger(
        registry,
        name,
        unwalked(state),  # its evidence grows every batch
        champion=champion.model,
        champion_version=champion.version.version,
        challenger=contender.model,
        frame=checked.valid,
        spec=checked.spec,
        batch_id=checked.batch.batch_id,
        gate=gate,
        metric=gate.metric_for(checked.spec.task),
        plot_path=str(reports_dir(config) / f"{checked.batch.batch_id}-challenger.png")
        if plots
        else None,
    )
    summary = evidence_summary(state.evidence)
    figures = f"e-value {summary['e_value']:.3g} of {summary['boundary']:.3g}"
    if verdict == "promote":
        crowned = crown(
            contender.version,
            registry=registry,
            name=name,
            previous=champion.version.version,
            reason=f"challenger v{state.version} won on {state.evidence.rows} later rows ({figures})",
            payload={"via": "challenger", "evidence": summary},
        )
        registry.set_alias(
            name, CHALLENGER, None, expected=state.version, reason="promoted", run_id=run_id
        )
        return Shadow(
            contender, None, crowned, [f"challenger v{state.version} promoted ({figures})"]
        )
    if verdict != "continue":
        why = "worse than the champion" if verdict == "drop-worse" else "budget spent"
        drop_challenger(registry, name, state, reason=f"{why} ({figures})", run_id=run_id)
        return Shadow(champion, None, None, [f"challenger v{state.version} dropped: {why}"])
    note = f"challenger v{state.version}: {figures}, batch {state.evidence.batches}/{gate.budget_batches}"
    return Shadow(champion, state, None, [note])


def lineage_models(
    registry: ModelRegistry, champion: Champion, *, trusted: list[str], run_id: str | None
) -> tuple[dict[str, int], dict[int, Champion]]:
    """gate.mode auto: each lineage's version, and the models they name (each read and loaded
    once; the champion among them). A lineage missing (auto just began) or under another contract
    than the champion's (a new contract was accepted) starts the lineages again: all at the
    champion, which is then the `never` lineage."""
    name, start = champion.version.name, champion.version.version
    aliases = {k: registry.alias(name, alias_of(k)) for k in LINEAGES}
    found = {start: champion.version}
    for v in {v for v in aliases.values() if v is not None} - set(found):
        found[v] = registry.get(name, version=v)
    contract = champion.version.metadata["schema"]["hash"]
    if None not in aliases.values() and all(
        mv.metadata["schema"]["hash"] == contract for mv in found.values()
    ):
        models = {
            v: champion if v == start else champion_of(registry, mv, trusted)
            for v, mv in found.items()
        }
        return cast(dict[str, int], aliases), models
    for k, current in aliases.items():
        if current != start:
            registry.set_alias(
                name,
                alias_of(k),
                start,
                expected=current,
                reason="gate.mode auto starts",
                run_id=run_id,
            )
    get_run_logger().info("gate.mode auto: every lineage starts from v%d", start)
    return dict.fromkeys(LINEAGES, start), {start: champion}


def auto_stage(
    champion: Champion,
    checked: Checked,
    *,
    served_metric: float,
    learn: bool,
    registry: ModelRegistry,
    config: CTConfig,
    run_id: str | None,
) -> dict[str, Any]:
    """gate.mode auto (tasks/selection.py): score every lineage on this batch before anything
    learns from it (one record; `served_metric` is the champion's score, which observe took),
    train the two candidates and move each lineage by its rule, then serve the chosen lineage's
    model. Returns the step's outcome fields."""
    logger = get_run_logger()
    name, gate, spec = config.dataset.name, config.gate, checked.spec
    trusted, batch_id = list(config.model.trusted_types), checked.batch.batch_id
    stage(logger, "scoring the lineages")
    versions, models = lineage_models(registry, champion, trusted=trusted, run_id=run_id)
    records, sequence = read_selection(registry, name, last=gate.select_window)
    records = [r for r in records if r.start == versions["never"]]
    if records and records[-1].batch_id == batch_id:  # a re-run: scored before anything learned
        record = records[-1]
    else:
        metric = report_metric(spec, gate.metric_for(spec.task))
        scores = {champion.version.version: served_metric}  # observe scored the champion
        for v in set(versions.values()) - set(scores):
            scores[v] = float(score(models[v].model, checked.valid, spec, metric))
        before = choose(  # the choice the previous step made: who served this batch, and why
            records,
            alpha=gate.select_alpha,
            window=gate.select_window,
            change_alpha=gate.change_alpha,
            probation=gate.select_probation,
        )
        record = SelectionRecord(
            batch_id=batch_id,
            start=versions["never"],
            served=before.chosen,
            dropped=before.dropped,
            metric=metric,
            higher_is_better=get_metric(metric).higher_is_better,
            versions=versions,
            metrics={k: scores[v] for k, v in versions.items()},
        )
        append_record(registry, name, record, expected=sequence)
        records.append(record)

    # the lineages that learn: all but never, unless this batch already moved them (a re-run)
    moving = [
        k
        for k in LINEAGES
        if k != "never"
        and learn
        and models[versions[k]].version.metadata.get("lineage", {}).get("batch_id") != batch_id
    ]
    moves: list[str] = []
    p_value: float | None = None
    if moving:
        stage(logger, "retraining")
        history = config.retrain.history_batches
        alone = any(k in BATCH_ONLY for k in moving)  # a batch-only candidate is wanted
        with without_heartbeats():  # with no history, both are one window, fitted once
            trained = retrain(batch_id, spec, config, windows=[history, 0] if alone else None)
        candidates = {"window": trained[history]}
        if alone:
            candidates["batch-only"] = trained[0]
        stage(logger, "gating and registering")
        registered: dict[str, ModelVersion] = {}
        passed: dict[str, bool] = {}
        for kind, gated in (("window", "batch"), ("batch-only", "batch-h0")):
            if kind not in candidates:
                continue
            if gated not in moving:  # a re-run: the gated lineage took this candidate already
                registered[kind] = models[versions[gated]].version
                passed[kind] = True
                continue
            baseline = models[versions[gated]]
            decision = judge(candidates[kind], baseline, spec, config=config, accepting=False)
            passed[kind] = decision.promote
            if kind == "window":
                p_value = decision.p_value
            registered[kind] = register_version(
                candidates[kind],
                decision,
                checked,
                registry=registry,
                config=config,
                accepting=None,
                previous=baseline.version.version,
                kind=kind,
            )
        for k in moving:
            kind = "batch-only" if k in BATCH_ONLY else "window"
            if k in ALWAYS or passed[kind]:
                new = registered[kind].version
                registry.set_alias(
                    name,
                    alias_of(k),
                    new,
                    expected=versions[k],
                    reason=f"{kind} candidate of batch {batch_id}",
                    run_id=run_id,
                )
                moves.append(f"{k} v{versions[k]}->v{new}")
                versions[k] = new

    choice = select_lineage(
        name,
        records,
        after=dict(versions),
        alpha=gate.select_alpha,
        window=gate.select_window,
        change_alpha=gate.change_alpha,
        probation=gate.select_probation,
    )
    target = versions[choice.chosen]
    previous = champion.version.version
    if target != previous:
        why = choice.reason() if choice.switched else f"auto: {choice.chosen} moved to v{target}"
        crowned = registry.get(name, version=target)
        crown(
            crowned,
            registry=registry,
            name=name,
            previous=previous,
            reason=why,
            payload={
                "decision": decision_summary(
                    GateDecision.model_validate(crowned.metadata["decision"])
                ),
                "via": "selection",
                "lineage": choice.chosen,
                "evidence": choice.evidence(),
            },
        )
    switched = f" (switched from {choice.served})" if choice.switched else ""
    learned = ", ".join(moves) if moves else "no lineage moved" if learn else "no drift (on_drift)"
    return {
        "retrained": bool(moving),
        "p_value": p_value,
        "promoted": target != previous,
        "outcome": f"auto: {choice.chosen} serves v{target}{switched}; {learned}",
        "new_version": target if target != previous else None,
        "champion_after": target,
        "challenger": None,
        "lineage": choice.chosen,
    }


def stage(logger: Any, name: str) -> None:
    """Say which stage the step is in (`ct_stage`: the CLI's spinner shows it)."""
    logger.info("Stage: %s", name, extra={"ct_stage": name})


def _step(data: str, config: CTConfig, accepting: str | None, plots: bool) -> StepResult:
    logger = get_run_logger()
    name, rules = config.dataset.name, config.validation
    registry = open_registry(config)
    if rules.quality_suite:
        gx_suite.warm_up()  # its import and start overlap everything up to the suite

    # 1 load, and the champion whose contract the batch must keep (or a new one, when accepting)
    wanted = [
        config.dataset.target,
        *(config.dataset.numeric or []),
        *(config.dataset.categorical or []),
    ]
    if is_dataset(data, ReadLimits.of(rules)):  # Parquet files: scanned in record batches
        frame, bad_lines = None, list[BadLine]()
        batch = dataset_batch(data)
        logger.info("Dataset %s: %d rows (batch %s)", data, batch.rows, batch.batch_id)
    else:
        frame, batch, bad_lines = load_batch(data, limits=ReadLimits.of(rules), wanted=wanted)
    champion = read_champion(registry, name, list(config.model.trusted_types))
    if accepting is None and (done := already_done(registry, name, batch, champion)):
        logger.info("Batch %s: %s", batch.batch_id, done.outcome)
        return done
    first: pd.DataFrame | None = None  # a dataset's head, when a new contract is inferred
    if champion is not None and accepting is None:
        spec = champion.spec
    else:
        first = head(data, HEAD_ROWS) if frame is None else frame
        spec = infer_spec(first, config.dataset, max_bad_fraction=rules.max_bad_fraction)
        for part, why in spec.inferred.items():
            logger.info("Inferred %s: %s", part, why)

    # 2 validate, 3 observe (before anything learns from the batch)
    stage(logger, "validating")
    judged_by = None if accepting else champion
    if frame is None:
        checked, scanned = scan(
            batch, spec, registry=registry, config=config, champion=judged_by, first=first
        )
    else:
        scanned = None
        checked = validate(
            frame, batch, bad_lines, spec, registry=registry, config=config, champion=champion
        )
    stage(logger, "quality suite and drift")
    seen = observe(
        checked, judged_by, config=config, registry=registry, plots=plots, scanned=scanned
    )
    store_history(checked.valid, batch, str(config.history_dir))
    metric_name = report_metric(spec, config.gate.metric_for(spec.task))
    served = champion  # the champion this batch was served by, reported as such
    run_id = _run_id()

    # 3b the challenger, if any, is judged on this batch before anything learns from it
    shadow = shadow_stage(
        champion,
        checked,
        active=accepting is None,
        registry=registry,
        config=config,
        plots=plots,
        run_id=run_id,
    )
    champion = shadow.champion

    gate = config.gate
    mode = gate.mode if champion is not None and accepting is None else "batch"
    #: The screen's level in mode both (the batch test at gate.screen_alpha).
    screen = gate.screen_alpha if mode == "both" else None

    def result(**kw: Any) -> StepResult:
        """The step's outcome, once the quality suite (run meanwhile) is collected."""
        finish_quality(seen, config, batch.source)
        sampled = checked.sampled
        sample_note = (
            f"a dataset of {checked.outcome.rows_in:,} rows: learned from a sample of "
            f"{sampled['rows']:,}"
            if sampled
            else ""
        )
        notes = [*shadow.notes, sample_note, kw.pop("outcome")]
        return StepResult(
            source=batch.source,
            batch_id=batch.batch_id,
            rows=len(checked.valid),
            task=spec.task,
            metric_name=metric_name,
            champion_version=None if served is None else served.version.version,
            champion_metric=seen.metric,
            drift=None if seen.drift is None else seen.drift.drifted,
            drifted_columns=[] if seen.drift is None else seen.drift.drifted_columns,
            new_classes=seen.new_classes,
            quarantined=checked.outcome.rows_quarantined,
            quarantine_path=checked.quarantine_path,
            outcome="; ".join(n for n in notes if n),
            **kw,
        )

    drifted = seen.drift is not None and seen.drift.drifted
    learn = accepting or config.retrain.policy == "always" or champion is None or drifted
    if mode == "auto":
        assert champion is not None and seen.metric is not None
        return result(
            **auto_stage(
                champion,
                checked,
                served_metric=seen.metric,
                learn=bool(learn),
                registry=registry,
                config=config,
                run_id=run_id,
            )
        )
    keep = (mode == "shadow" and shadow.state is not None) or not learn
    if keep:
        assert champion is not None
        version = champion.version.version
        why = "a challenger is collecting evidence" if shadow.state else "no drift (on_drift)"
        logger.info("Not retraining: %s; champion v%d", why, version)
        return result(
            retrained=False,
            p_value=None,
            promoted=shadow.crowned is not None,
            outcome="" if shadow.state else "kept (no drift)",
            new_version=shadow.crowned,
            champion_after=version,
            challenger=None if shadow.state is None else shadow.state.version,
        )

    # 4 retrain (subflow), 5 gate on rows neither model has seen (in mode both: a screen)
    stage(logger, "retraining")
    with without_heartbeats():
        candidate = retrain(batch.batch_id, spec, config)[config.retrain.history_batches]
    stage(logger, "gating")
    decision = judge(
        candidate,
        champion,
        spec,
        config=config,
        accepting=accepting is not None,
        alpha=screen,
    )
    if mode == "always" and not decision.promote:
        decision = decision.model_copy(
            update={
                "promote": True,
                "reasons": [
                    *decision.reasons,
                    "gate.mode always: promoted whatever the test says.",
                ],
            }
        )
    previous = None if champion is None else champion.version.version
    challenger_now = None if shadow.state is None else shadow.state.version
    # 6 register; then promote by compare-and-swap, or (shadow, both) start it as the challenger
    registered: ModelVersion | None = None
    if mode == "shadow" or decision.promote:
        stage(logger, "registering")
        registered = register_version(
            candidate,
            decision,
            checked,
            registry=registry,
            config=config,
            accepting=accepting,
            previous=previous,
        )
    if mode != "shadow" and not decision.promote:
        announce(
            "ct.gate.rejected",
            name,
            {
                "batch_id": batch.batch_id,
                "champion_version": previous,
                "decision": decision_summary(decision),
            },
        )
        return result(
            retrained=True,
            p_value=decision.p_value,
            promoted=shadow.crowned is not None,
            outcome="rejected" if mode != "both" else "screen not passed",
            new_version=shadow.crowned,
            champion_after=previous,
            challenger=challenger_now,
        )
    assert registered is not None
    if mode in {"shadow", "both"}:
        started = start_challenger(
            registry,
            name,
            registered.version,
            replaces=challenger_now,
            gate=gate,
            reason=decision.reasons[-1] if mode == "both" else "shadow: every new candidate",
            run_id=run_id,
        )
        replaced = f", replacing v{challenger_now}" if challenger_now is not None else ""
        return result(
            retrained=True,
            p_value=decision.p_value,
            promoted=shadow.crowned is not None,
            outcome=f"challenger v{registered.version} started{replaced}",
            new_version=shadow.crowned,
            champion_after=previous,
            challenger=started.version,
        )
    reason = decision.reasons[-1]
    if accepting is not None:
        reason = f"contract accepted from batch {batch.batch_id}: {accepting}. {reason}"
    crown(
        registered,
        registry=registry,
        name=name,
        previous=previous,
        reason=reason,
        payload={"decision": decision_summary(decision), "via": "gate"},
    )
    outcome = (
        "new contract" if accepting else ("promoted" if champion is not None else "first champion")
    )
    return result(
        retrained=True,
        p_value=decision.p_value,
        promoted=True,
        outcome=outcome,
        new_version=registered.version,
        champion_after=registered.version,
        challenger=challenger_now,
    )
