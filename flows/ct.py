"""ct: continuous training for a deployed model, as Prefect flows.

One CT step (`continuous_training`) takes a new labelled batch through its stages:
load → validate → observe (quality, drift, the champion's score) → retrain (subflow) → decide →
release. How a candidate becomes champion is the configured policy (tasks/policy/: `batch`, the
default, `shadow`, `both`); the step never asks which. Run this file to use it from the command
line; with no arguments it backtests CT over the built-in demo stream (`python flows/ct.py --help`).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # the CLI parses and checks before anything below is imported
    from flows.cli.main import main

    sys.exit(main())

import contextlib
import functools
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.registry import ModelRegistry
from flows.heartbeats import without_heartbeats
from flows.retrain import retrain
from tasks import artifacts, gx_suite
from tasks.challenger import ALIAS as CHALLENGER
from tasks.config import CTConfig, Label, ValidationConfig
from tasks.data import BadLine, Batch, load_batch, store_history
from tasks.drift import DriftReport, ReferenceProfile, build_profile, detect_drift, publish_drift
from tasks.drift.compare import compare_summary
from tasks.errors import DataValidationError
from tasks.gx_suite import QualityReport
from tasks.judge import judge
from tasks.labels import sorted_labels
from tasks.policy import Policy, Settled, Step, Weighed, policy_for, stage
from tasks.refusals import note_passed, note_refusal
from tasks.release import Champion, announce, champion_of, open_registry, run_id, unwalked
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
from tasks.sources import ReadLimits
from tasks.stages import Checked, Observed, Sampled, Trained
from tasks.train import report_metric, score
from tasks.validate import (
    FeatureSpec,
    ValidationOutcome,
    check_quality,
    infer_spec,
    start_quality,
    validate_batch,
)
from tasks.validate.quality import expectation_specs


def reports_dir(config: CTConfig) -> Path:
    """Where plots of this dataset's runs go (beside the registry, in the state folder)."""
    path = Path(config.state_dir) / "reports" / config.dataset.name
    path.mkdir(parents=True, exist_ok=True)
    return path


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
                {"result": result.model_dump(mode="json"), "flow_run_id": run_id()},
            )
        return result


#: How a re-run of a finished step begins its outcome.
ALREADY = "already processed"


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


def dataset_specs(profile: ReferenceProfile, rules: ValidationConfig) -> Any:
    """The quality expectations for a dataset: the batch row limit (for files held in memory)
    does not bound a dataset."""
    return expectation_specs(
        profile, tolerance=rules.range_tolerance, min_rows=rules.min_rows, max_rows=10**15
    )


def scan_profile(
    batch: Batch,
    spec: FeatureSpec,
    *,
    registry: ModelRegistry,
    config: CTConfig,
    champion: Champion | None,
    first: pd.DataFrame | None,
) -> ReferenceProfile:
    """What a dataset's scan compares against: the champion's profile, or for a first model
    (only the counts and the sample are wanted) one built from the dataset's head."""
    if champion is not None:
        return ReferenceProfile.model_validate(registry.load_profile(champion.version))
    first = head(batch.source, HEAD_ROWS) if first is None else first
    return build_profile(
        first[[c for c in [*spec.features, spec.target] if c in first.columns]],
        categorical=spec.profiled_categorical,
        bins=config.drift.bins,
        sample_rows=config.drift.sample_rows,
        seed=config.seed,
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
    profile = scan_profile(
        batch, spec, registry=registry, config=config, champion=champion, first=first
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
    sampled = Sampled(
        rows=len(sample),
        of_valid_rows=scanned.rows_valid,
        seed=profile.seed + KEEP_SEED_OFFSET,
        how="the valid rows with the smallest splitmix64 keys of their positions",
    )
    logger.info(
        "Dataset %s: %d rows, %d valid; learning from a seeded sample of %d",
        source,
        scanned.rows_in,
        scanned.rows_valid,
        len(sample),
    )
    return Checked(batch, spec, sample, outcome, kept, sampled), scanned


def finish_quality(seen: Observed, config: CTConfig, source: str) -> None:
    """Collect the quality suite's report, publish it, and stop the step if it is blocking."""
    if seen.quality is not None and seen.quality_report is not None:
        check_quality(
            seen.quality,
            report_path=seen.quality_report,
            blocking=config.validation.quality_blocking,
            source=source,
        )


def new_classes_in(checked: Checked, champion: Champion | None, name: str) -> list[Label]:
    """Classes the contract has never seen (an open class set): kept, the candidate learns them,
    and `ct.label.new_class` says so."""
    spec, valid, batch = checked.spec, checked.valid, checked.batch
    if spec.task != "classification" or spec.classes_closed:
        return []
    known = set(spec.classes or [])
    found = [c for c in sorted_labels(valid[spec.target].unique()) if c not in known]
    if found:
        get_run_logger().warning(
            "%s: new classes %s (known: %s); kept, the candidate learns them",
            batch.source,
            found,
            spec.classes,
        )
        announce(
            "ct.label.new_class",
            name,
            {
                "batch_id": batch.batch_id,
                "source": batch.source,
                "new_classes": found,
                "known_classes": spec.classes,
                "rows": int(valid[spec.target].isin(found).sum()),
                "champion_version": None if champion is None else champion.version.version,
            },
        )
    return found


def quality_and_drift(
    checked: Checked,
    profile: ReferenceProfile,
    *,
    config: CTConfig,
    plot_path: str | None,
    scanned: PieceScan | None,
) -> tuple[Future[QualityReport] | None, DriftReport]:
    """Start the quality suite (in the background) and measure drift against the champion's
    profile; a dataset's come from the counts and summary its scan took over every row."""
    rules, name = config.validation, config.dataset.name
    observed = checked.valid[[*checked.spec.features, checked.spec.target]]
    if scanned is None:
        quality = None
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
        return quality, drift
    assert scanned.summary is not None
    quality = None
    if rules.quality_suite:  # judged from the counts of every row, by the suite's own rules
        quality = Future()
        quality.set_result(quality_from_scan(dataset_specs(profile, rules), scanned))
    report = compare_summary(profile, scanned.summary, observed.iloc[:0], config.drift)
    return quality, publish_drift(report, profile, observed, name, plot_path)


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
    and any class it has never seen. `scanned`: the batch is a dataset whose quality counts and
    drift summary were taken over all of it (`checked.valid` is then its sample)."""
    batch, name = checked.batch, config.dataset.name
    new_classes = new_classes_in(checked, champion, name)
    if champion is None:
        return Observed(drift=None, metric=None, new_classes=new_classes)
    profile = ReferenceProfile.model_validate(registry.load_profile(champion.version))
    reports = reports_dir(config)
    plot_path = str(reports / f"{batch.batch_id}-drift.png") if plots else None
    quality, drift = quality_and_drift(
        checked, profile, config=config, plot_path=plot_path, scanned=scanned
    )
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
    metric = report_metric(checked.spec, config.gate.metric_for(checked.spec.task))
    seen = Observed(
        drift=drift,
        metric=score(champion.model, checked.valid, checked.spec, metric),
        new_classes=new_classes,
        quality=quality,
        quality_report=str(reports / f"{batch.batch_id}-quality.json"),
    )
    if config.validation.quality_blocking:  # the step may not go on before the suite has passed
        finish_quality(seen, config, batch.source)
        return Observed(drift=drift, metric=seen.metric, new_classes=new_classes)
    return seen


# ---------------------------------------------------------------- one step, stage by stage
def load(data: str, config: CTConfig) -> tuple[pd.DataFrame | None, Batch, list[BadLine]]:
    """Read the batch (a dataset of Parquet files is only identified here: it is scanned in
    record batches by `check`)."""
    limits = ReadLimits.of(config.validation)
    if is_dataset(data, limits):
        batch = dataset_batch(data)
        get_run_logger().info("Dataset %s: %d rows (batch %s)", data, batch.rows, batch.batch_id)
        return None, batch, []
    wanted = [
        config.dataset.target,
        *(config.dataset.numeric or []),
        *(config.dataset.categorical or []),
    ]
    return load_batch(data, limits=limits, wanted=wanted)


def contract_for(
    data: str,
    frame: pd.DataFrame | None,
    champion: Champion | None,
    *,
    config: CTConfig,
    accepting: str | None,
) -> tuple[FeatureSpec, pd.DataFrame | None]:
    """The contract the batch must keep: the champion's, or one inferred from the batch (a first
    model, or a new contract being accepted), with the rows it was inferred from."""
    if champion is not None and accepting is None:
        return champion.spec, None
    first = head(data, HEAD_ROWS) if frame is None else frame
    spec = infer_spec(first, config.dataset, max_bad_fraction=config.validation.max_bad_fraction)
    for part, why in spec.inferred.items():
        get_run_logger().info("Inferred %s: %s", part, why)
    return spec, first


def check(
    frame: pd.DataFrame | None,
    batch: Batch,
    bad_lines: list[BadLine],
    spec: FeatureSpec,
    *,
    first: pd.DataFrame | None,
    registry: ModelRegistry,
    config: CTConfig,
    champion: Champion | None,
    judged_by: Champion | None,
) -> tuple[Checked, PieceScan | None]:
    """Validate a file's rows, or scan a dataset whole (against `judged_by`'s profile: the
    champion, or none when a new contract is being accepted)."""
    if frame is None:
        return scan(batch, spec, registry=registry, config=config, champion=judged_by, first=first)
    checked = validate(
        frame, batch, bad_lines, spec, registry=registry, config=config, champion=champion
    )
    return checked, None


def decide(
    step: Step, policy: Policy, weighed: Weighed, seen: Observed
) -> tuple[Settled, Trained | None, float | None]:
    """Retrain when asked (always, on drift, a first model, a new contract) and the policy wants
    a candidate; judge it on the batch's held-back rows; let the policy settle it. Returns what
    was settled, the candidate trained (None: none) and its test's p-value."""
    config, checked = step.config, step.checked
    wanted = (
        step.accepting is not None
        or config.retrain.policy == "always"
        or weighed.champion is None
        or seen.drifted
    )
    if not (wanted and policy.retrains(weighed)):
        why = "a challenger is collecting evidence" if weighed.collecting else "no drift (on_drift)"
        get_run_logger().info("Not retraining: %s; champion v%s", why, step.champion_version)
        kept = f"kept v{weighed.settled.champion_after}: no drift, not retrained"
        return replace(weighed.settled, outcome="" if weighed.collecting else kept), None, None
    stage("retraining")
    with without_heartbeats():
        candidate = retrain(checked.batch.batch_id, checked.spec, config)
    stage("gating")
    now = replace(step, champion=weighed.champion)  # a challenger may have just won
    judged = judge(
        candidate,
        None if step.accepting is not None else weighed.champion,
        checked.spec,
        config=config,
        alpha=policy.level(config.gate),
    )
    settled = weighed.settled.then(policy.settle(now, weighed, candidate, judged))
    return settled, Trained(candidate.model, checked.spec), judged.decision.p_value


def step_result(
    checked: Checked,
    seen: Observed,
    served: Champion | None,
    settled: Settled,
    *,
    config: CTConfig,
    trained: Trained | None,
    p_value: float | None,
) -> StepResult:
    """The step's outcome, as the CLI, the backtest and the step record show it."""
    spec, sampled = checked.spec, checked.sampled
    sample_note = (
        f"a dataset of {checked.outcome.rows_in:,} rows: learned from a sample of {sampled.rows:,}"
        if sampled
        else ""
    )
    return StepResult(
        source=checked.batch.source,
        batch_id=checked.batch.batch_id,
        rows=len(checked.valid),
        task=spec.task,
        metric_name=report_metric(spec, config.gate.metric_for(spec.task)),
        champion_version=None if served is None else served.version.version,
        champion_metric=seen.metric,
        drift=None if seen.drift is None else seen.drift.drifted,
        drifted_columns=[] if seen.drift is None else seen.drift.drifted_columns,
        new_classes=seen.new_classes,
        quarantined=checked.outcome.rows_quarantined,
        quarantine_path=checked.quarantine_path,
        retrained=trained is not None,
        p_value=p_value,
        promoted=settled.promoted is not None,
        outcome="; ".join(n for n in [*settled.notes, sample_note, settled.outcome] if n),
        new_version=settled.promoted,
        champion_after=settled.champion_after,
        challenger=settled.challenger,
        proof=settled.proof,
        candidate=trained,
    )


def _step(data: str, config: CTConfig, accepting: str | None, plots: bool) -> StepResult:
    name, registry = config.dataset.name, open_registry(config)
    if config.validation.quality_suite:
        gx_suite.warm_up()  # its import and start overlap everything up to the suite
    frame, batch, bad_lines = load(data, config)
    champion = read_champion(registry, name, list(config.model.trusted_types))
    if accepting is None and (done := already_done(registry, name, batch, champion)):
        get_run_logger().info("Batch %s: %s", batch.batch_id, done.outcome)
        return done
    spec, first = contract_for(data, frame, champion, config=config, accepting=accepting)
    stage("validating")
    judged_by = None if accepting else champion
    checked, scanned = check(
        frame,
        batch,
        bad_lines,
        spec,
        first=first,
        registry=registry,
        config=config,
        champion=champion,
        judged_by=judged_by,
    )
    stage("quality suite and drift")
    seen = observe(
        checked, judged_by, config=config, registry=registry, plots=plots, scanned=scanned
    )
    store_history(checked.valid, batch, str(config.history_dir))
    policy = policy_for(config.gate.mode, first=judged_by is None)
    step = Step(registry, config, checked, champion, accepting, plots, reports_dir(config))
    settled, trained, p_value = decide(step, policy, policy.weigh(step), seen)
    finish_quality(seen, config, batch.source)
    return step_result(
        checked, seen, champion, settled, config=config, trained=trained, p_value=p_value
    )
