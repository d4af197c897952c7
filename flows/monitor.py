"""Watching production: drift of the inputs, and the champion's performance once labels arrive.

Deployed as `ct-monitor` (a cron schedule in prefect.yaml). It scores a production batch against the
champion: drift of the features against the champion's reference profile (and of the labels, when
the batch has them) emits `ct.drift.detected`, which `ct-on-drift` reacts to; when labels are
present, a one-sided test against the level recorded at promotion emits `ct.performance.degraded`.
"""

from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from blocks.registry import ModelVersion
from tasks.config import CTConfig
from tasks.data import read_batch
from tasks.drift import DriftReport, ReferenceProfile, compute_drift, drift_table
from tasks.errors import CTError
from tasks.gate import get_metric
from tasks.performance import Degradation, degradation_test
from tasks.release import Champion, announce, champion_of, open_registry
from tasks.report import StepResult
from tasks.sources import ReadLimits
from tasks.train import gate_inputs
from tasks.validate.rows import validate_rows


class MonitorResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    champion_version: int
    rows: int
    drift: DriftReport
    performance: Degradation | None


def _performance(
    frame: pd.DataFrame, champion: Champion, version: ModelVersion, data: str, config: CTConfig
) -> Degradation | None:
    """The champion's score on the labelled rows against the score its gate recorded, and the
    `ct.performance.degraded` event when a one-sided test says it fell (None when the champion
    recorded no score to fall from)."""
    spec = champion.spec
    valid, _, _ = validate_rows(
        frame.dropna(subset=[spec.target]), spec, source=data, max_bad_fraction=1.0
    )
    decision = version.metadata.get("decision") or {}
    metric = decision.get("metric", "accuracy")
    recorded = decision.get("candidate_metric")
    if recorded is None:
        return None
    probabilities = get_metric(metric).needs == "probabilities"
    y, (pred,), _ = gate_inputs(valid, spec, [champion.model], probabilities=probabilities)
    performance = degradation_test(
        y, pred, metric=metric, recorded=float(recorded), alpha=config.gate.alpha
    )
    get_run_logger().info(performance.reason)
    if performance.degraded:
        announce(
            "ct.performance.degraded",
            config.dataset.name,
            {"source": data, "champion_version": version.version, **performance.model_dump()},
            origin="monitor",
        )
    return performance


@flow(name="monitor")
def monitor(data: str, config: CTConfig | None = None) -> MonitorResult:
    """Score one production batch (features, and the target when labels have arrived)."""
    config = config or CTConfig()
    logger = get_run_logger()
    name = config.dataset.name
    registry = open_registry(config)
    version = registry.champion(name)
    if version is None:
        raise CTError(f"{name}: no champion to monitor yet; run a CT step first")
    champion = champion_of(registry, version, list(config.model.trusted_types))
    spec = champion.spec
    profile = ReferenceProfile.model_validate(registry.load_profile(version))
    frame, batch, _ = read_batch(data, ReadLimits.of(config.validation))
    labelled = spec.target in frame.columns and frame[spec.target].notna().any()
    columns = [*spec.features, *([spec.target] if labelled else [])]
    drift = compute_drift(profile, frame[[c for c in columns if c in frame.columns]], config.drift)
    logger.info("%s: %d/%d features drifted", data, drift.n_drifted, drift.n_columns)
    if drift.drifted:
        announce(
            "ct.drift.detected",
            name,
            {
                "source": data,
                "labelled": bool(labelled),  # ct-on-drift retrains only on labelled batches
                "batch_id": batch.batch_id,
                "champion_version": version.version,
                "columns": drift.drifted_columns,
                "share_drifted": drift.share_drifted,
                "report": drift_table(drift),
            },
            origin="monitor",
        )
    performance = _performance(frame, champion, version, data, config) if labelled else None
    return MonitorResult(
        source=data,
        champion_version=version.version,
        rows=len(frame),
        drift=drift,
        performance=performance,
    )


@flow(name="on-drift")
def on_drift(
    dataset: str, source: str, labelled: bool | None = None, config: CTConfig | None = None
) -> StepResult | None:
    """Drift was seen in production: retrain on that batch if it has labels; else wait for them.

    Deployed as `ct-on-drift`, triggered by `ct.drift.detected` from the monitor or from an outside
    alert (the webhook receiver's /hooks/drift), not by a CT step's own drift events.
    `labelled: null` (an alert that does not say) means: look at the file for target values.
    """
    from flows.ct import continuous_training

    config = config or CTConfig()
    config = config.for_dataset(dataset)
    if labelled is None:
        frame, _, _ = read_batch(source, ReadLimits.of(config.validation))
        target = config.dataset.target
        labelled = target in frame.columns and bool(frame[target].notna().any())
    if not labelled:
        get_run_logger().info("Drift on unlabelled data (%s): retraining waits for labels", source)
        return None
    return continuous_training(source, config)
