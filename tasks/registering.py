"""Register a judged candidate: an immutable registry version with its contract, lineage,
reference profile and the decision that judged it. Not yet champion or challenger: the policy
moves an alias afterwards (tasks/policy/).

A re-run of a step cut off after registering finds its version and registers no second one.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from blocks.registry import ModelRegistry, ModelVersion
from tasks.config import CTConfig
from tasks.drift import ReferenceProfile, build_profile
from tasks.gate import GateDecision
from tasks.refusals import LOG as CONTRACT_LOG
from tasks.release import (
    announce,
    code_revision,
    decision_summary,
    register_candidate,
    run_id,
    unwalked,
)
from tasks.stages import Candidate, Checked
from tasks.train import estimator_name


def registered_already(
    registry: ModelRegistry, name: str, batch_id: str, previous: int | None
) -> ModelVersion | None:
    """The version an earlier run of this step registered from this batch, if any."""
    for number in registry.versions(name)[-3:]:
        earlier = registry.get(name, version=number)
        lineage = earlier.metadata.get("lineage", {})
        if lineage.get("batch_id") == batch_id and lineage.get("compared_with") == previous:
            return earlier
    return None


def lineage_of(
    candidate: Candidate,
    checked: Checked,
    config: CTConfig,
    *,
    accepting: str | None,
    previous: int | None,
) -> dict[str, Any]:
    """Where the version came from: the batch, its training window, the code and the run."""
    batch, spec = checked.batch, checked.spec
    return {
        "batch_id": batch.batch_id,
        "source": batch.source,
        "data_sha256": batch.sha256,
        "training_window": candidate.window.model_dump(mode="json"),
        "flow_run_id": run_id(),
        "code_revision": code_revision(),
        "estimator": estimator_name(config.model, spec.task),
        "task": spec.task,
        "labels": candidate.model.labels,
        "trusted_types": list(config.model.trusted_types),
        "contract_accepted": accepting,
        #: The model it was judged against.
        "compared_with": previous,
        #: A dataset: it learned from (and was gated on) a seeded sample of its valid rows.
        "sample": None if checked.sampled is None else checked.sampled.model_dump(),
    }


def profile_of(candidate: Candidate, checked: Checked, config: CTConfig) -> ReferenceProfile:
    """The drift reference: what the candidate learned from, for later batches to be compared with."""
    spec = checked.spec
    return build_profile(
        candidate.train[[*spec.features, spec.target]],
        categorical=spec.profiled_categorical,
        label=spec.target,
        bins=config.drift.bins,
        sample_rows=config.drift.sample_rows,
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
) -> ModelVersion:
    """Register the candidate with its contract and lineage (not yet champion or challenger)."""
    spec, batch, name = checked.spec, checked.batch, config.dataset.name
    earlier = registered_already(registry, name, batch.batch_id, previous)
    if earlier is not None:
        get_run_logger().info(
            "Batch %s was registered as v%d already", batch.batch_id, earlier.version
        )
        return earlier
    contract = spec.with_classes(candidate.model.labels or [])
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
        lineage=lineage_of(candidate, checked, config, accepting=accepting, previous=previous),
        schema=unwalked({"spec": contract.model_dump(mode="json"), "hash": contract.schema_hash()}),
        profile=unwalked(profile_of(candidate, checked, config).model_dump(mode="json")),
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
