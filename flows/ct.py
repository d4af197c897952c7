"""ct: continuous training for a deployed model, as Prefect flows.

One CT step (`continuous_training`) takes a new labelled batch through
load → validate → drift → retrain → paired gate → register → promote or reject → event.
Run this file to use it from the command line; with no arguments it backtests the CT policy over the
built-in demo stream (see `python flows/ct.py --help`).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from blocks.registry import ModelRegistry, ModelVersion
from flows.retrain import retrain
from tasks.config import CTConfig
from tasks.data import ReadLimits, load_batch, store_history
from tasks.drift import ReferenceProfile, build_profile, detect_drift
from tasks.gate import Guard, check_unseen, gate_candidate, get_metric
from tasks.release import (
    announce,
    decision_summary,
    open_registry,
    promote_champion,
    register_candidate,
)
from tasks.report import StepResult
from tasks.train import (
    TrainingWindow,
    accuracy_score,
    encode_labels,
    fit_floor,
    gate_predictions,
)
from tasks.validate import FeatureSpec, check_quality, fit_contract, infer_spec, validate_batch


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


@task(name="read-champion", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def read_champion(registry: ModelRegistry, name: str) -> tuple[ModelVersion, Any] | None:
    """The current champion and its model, or None before the first promotion."""
    champion = registry.champion(name)
    if champion is None:
        get_run_logger().info("No champion for %s yet: this step trains the first model", name)
        return None
    get_run_logger().info("Champion of %s: version %d", name, champion.version)
    return champion, registry.load_model_of(champion)


def model_lock_name(name: str) -> str:
    return f"ct-model-{name}"


def ensure_model_lock(name: str) -> None:
    """A global concurrency limit of 1 per model, created on first use (a lost creation race is
    fine: the other run created it)."""
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
def continuous_training(data: str, config: CTConfig = CTConfig()) -> StepResult:  # noqa: B008
    """One CT step on one labelled batch (CSV or Parquet path). A failed step changes no champion.

    Two steps for the same model never run at once, whichever deployment started them: each holds
    the global concurrency slot `ct-model-<name>` (limit 1) for its whole duration.
    """
    from prefect.concurrency.sync import concurrency

    ensure_model_lock(config.dataset.name)
    with concurrency(model_lock_name(config.dataset.name), occupy=1, strict=True):
        return _step(data, config)


def _step(data: str, config: CTConfig) -> StepResult:
    logger = get_run_logger()
    name = config.dataset.name
    registry = open_registry(config)

    # 1 load
    wanted = [
        config.dataset.target,
        *(config.dataset.numeric or []),
        *(config.dataset.categorical or []),
    ]
    rules = config.validation
    frame, batch, bad_lines = load_batch(data, limits=ReadLimits.of(rules), wanted=wanted)
    current = read_champion(registry, name)
    champion, champion_model = current if current else (None, None)

    # 2 validate: against the champion's stored contract, or the config's for the first model
    if champion is not None:
        spec = FeatureSpec.model_validate(champion.metadata["schema"]["spec"])
    else:
        spec = infer_spec(frame, config.dataset)
    valid, outcome, quarantined = validate_batch(
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
    # 3 with a champion: the quality suite and drift against what it learned from, and how it does
    # on this batch before anyone learns from it
    drift = None
    champion_metric = None
    if champion is not None:
        profile = ReferenceProfile.model_validate(registry.load_profile(champion))
        observed = valid[[*spec.features, spec.target]]
        reports = reports_dir(config)
        if rules.quality_suite:
            check_quality(
                observed,
                profile,
                tolerance=rules.range_tolerance,
                min_rows=rules.min_rows,
                max_rows=rules.max_rows,
                report_path=str(reports / f"{batch.batch_id}-quality.json"),
                blocking=rules.quality_blocking,
                source=batch.source,
            )
        champion_metric = accuracy_score(champion_model, valid, spec)
        drift = detect_drift(
            profile,
            observed,
            config.drift,
            name=name,
            plot_path=str(reports / f"{batch.batch_id}-drift.png"),
        )
        if drift.drifted:
            announce(
                "ct.drift.detected",
                name,
                {
                    "batch_id": batch.batch_id,
                    "columns": drift.drifted_columns,
                    "share_drifted": drift.share_drifted,
                    "champion_version": champion.version,
                },
            )
    store_history(valid, batch, str(config.history_dir))

    def result(**kw: Any) -> StepResult:
        return StepResult(
            source=batch.source,
            batch_id=batch.batch_id,
            rows=len(valid),
            champion_version=None if champion is None else champion.version,
            champion_metric=champion_metric,
            drift=None if drift is None else drift.drifted,
            drifted_columns=[] if drift is None else drift.drifted_columns,
            quarantined=outcome.rows_quarantined,
            quarantine_path=quarantined,
            **kw,
        )

    if (
        champion is not None
        and config.retrain.policy == "on_drift"
        and not (drift and drift.drifted)
    ):
        logger.info("No drift and retrain.policy is on_drift: keeping version %d", champion.version)
        return result(
            retrained=False,
            p_value=None,
            promoted=False,
            outcome="kept (no drift)",
            new_version=None,
            champion_after=champion.version,
        )

    # 4 retrain (subflow), 5 gate on rows neither model has seen
    model, train, holdout, window, held = retrain(batch.batch_id, spec, config)
    windows = {"candidate": window}
    if champion is not None:
        windows["champion"] = TrainingWindow.model_validate(
            champion.metadata["lineage"]["training_window"]
        )
    holdout_start = (
        holdout[spec.time_column].min().to_pydatetime(warn=False) if spec.time_column else None
    )
    check_unseen(held, holdout_start, windows)
    baseline: Literal["champion", "floor"] = "champion" if champion is not None else "floor"
    baseline_model = champion_model if champion is not None else fit_floor(train, spec)
    gate = config.gate
    metrics = [gate.metric, *(g.metric for g in gate.guards)]
    probabilities = any(get_metric(m).needs == "probabilities" for m in metrics)
    decision = gate_candidate(
        encode_labels(holdout[spec.target].to_numpy(), spec.classes),
        gate_predictions(baseline_model, holdout, spec, probabilities=probabilities),
        gate_predictions(model, holdout, spec, probabilities=probabilities),
        baseline=baseline,
        metric=gate.metric,
        test=gate.test,
        alpha=gate.alpha,
        min_effect=gate.min_effect,
        guards=[Guard(metric=g.metric, tolerance=g.tolerance) for g in gate.guards],
        order=(
            holdout[spec.time_column].to_numpy()
            if gate.time_ordered and spec.time_column
            else (np.arange(len(holdout)) if gate.time_ordered else None)
        ),
        name=name,
        seed=config.seed,
    )
    summary = decision_summary(decision)
    previous = None if champion is None else champion.version
    if not decision.promote:
        announce(
            "ct.gate.rejected",
            name,
            {"batch_id": batch.batch_id, "champion_version": previous, "decision": summary},
        )
        return result(
            retrained=True,
            p_value=decision.p_value,
            promoted=False,
            outcome="rejected",
            new_version=None,
            champion_after=previous,
        )

    # 6 register (with the contract refined from the training rows), promote by CAS, 7 announce
    contract = fit_contract(spec, train, tolerance=rules.range_tolerance)
    run_id = None if flow_run.id is None else str(flow_run.id)
    version = register_candidate(
        registry,
        name,
        model,
        metrics={
            f"holdout_{decision.metric}": decision.candidate_metric or 0.0,
            f"baseline_holdout_{decision.metric}": decision.baseline_metric or 0.0,
            "holdout_rows": float(decision.n),
            "train_rows": float(len(train)),
        },
        lineage={
            "batch_id": batch.batch_id,
            "source": batch.source,
            "data_sha256": batch.sha256,
            "training_window": window.model_dump(mode="json"),
            "flow_run_id": run_id,
            "code_revision": code_revision(),
            "estimator": config.model.estimator,
        },
        schema={"spec": contract.model_dump(mode="json"), "hash": contract.schema_hash()},
        profile=build_profile(
            train[[*spec.features, spec.target]],
            categorical=[*spec.categorical, spec.target],
            label=spec.target,
            bins=config.drift.bins,
            sample_rows=config.drift.sample_rows,
            seed=config.seed,
        ).model_dump(mode="json"),
        decision=decision.model_dump(),
    )
    announce(
        "ct.model.registered",
        name,
        {"version": version.version, "previous_champion": previous, "decision": summary},
    )
    promote_champion(
        registry,
        name,
        version.version,
        expected_champion=previous,
        reason=decision.reasons[-1],
        run_id=run_id,
    )
    announce(
        "ct.model.promoted",
        name,
        {
            "version": version.version,
            "previous_champion": previous,
            "decision": summary,
            "path": version.path,
        },
    )
    verdict = "promoted" if champion is not None else "first champion"
    return result(
        retrained=True,
        p_value=decision.p_value,
        promoted=True,
        outcome=verdict,
        new_version=version.version,
        champion_after=version.version,
    )


if __name__ == "__main__":
    from flows.cli import main

    sys.exit(main())
