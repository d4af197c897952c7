"""The data contract of a batch: which columns, of which types, and the rules the user declared.

Declared in the config or inferred from the first training batch, stored with every registry
version with a hash. It holds only what a row must be to be *right*: the columns and their types,
the task and its labels, and the hard rules the user declared (a closed class set, bounds, features
that must never be missing). Nothing learned from training data is a rule: ranges, categories and
an open class set describe what the champion saw, and the drift report compares with them. A
contract that refused values outside its training data would refuse the very batches its successor
has to learn from, and CT would freeze on the old champion when the world changes.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tasks.config import DatasetConfig, Label, Task, label_kind
from tasks.labels import (
    LabelKind,
    infer_label_kind,
    infer_task,
    mostly_numeric,
    normalize_labels,
    sorted_labels,
)


class FeatureSpec(BaseModel):
    """Which columns a model uses and how; the contract stored with every model version."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # older contracts carried more

    target: str
    time_column: str | None
    numeric: list[str]
    categorical: list[str]
    task: Task = "classification"
    #: Classification: the labels known so far, sorted, with their type. Grows with each
    #: champion that learned a new class, unless closed.
    classes: list[Label] | None = None
    #: The classes were declared (dataset.classes): labels outside them are quarantined.
    classes_closed: bool = False
    #: Declared hard bounds [low, high] of numeric columns (None: open side).
    bounds: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)
    #: Declared non-null features.
    non_null: list[str] = Field(default_factory=list)
    #: What was inferred rather than declared, and why, for the user (e.g. {"task": "..."}).
    inferred: dict[str, str] = Field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def profiled_categorical(self) -> list[str]:
        """The columns a drift profile counts as categories: the categorical features, and the
        label of a classifier."""
        return [*self.categorical, *([self.target] if self.task == "classification" else [])]

    @property
    def columns(self) -> list[str]:
        return [*([self.time_column] if self.time_column else []), *self.features, self.target]

    @property
    def label_kind(self) -> LabelKind:
        return label_kind(self.classes[0]) if self.classes else "int"

    def schema_hash(self) -> str:
        return hashlib.sha256(
            json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()

    def with_classes(self, labels: list[Label]) -> FeatureSpec:
        """The contract once a model has learned `labels` too (an open set grows; a closed one
        never does: its unknown labels were quarantined)."""
        if self.task != "classification" or self.classes_closed:
            return self
        merged = sorted_labels([*(self.classes or []), *labels])
        return self if merged == self.classes else self.model_copy(update={"classes": merged})


def infer_spec(
    frame: pd.DataFrame, dataset: DatasetConfig, *, max_bad_fraction: float = 0.05
) -> FeatureSpec:
    """The first contract: declared lists as given, the rest inferred from the batch.

    A column is numeric when at least `1 - max_bad_fraction` of its present values parse as
    numbers (the others are then quarantined), so a few bad cells do not turn it into text.
    """
    special = {dataset.target, dataset.time_column}
    rest = [str(c) for c in frame.columns if c not in special]
    inferred: dict[str, str] = {}
    if dataset.numeric is not None and dataset.categorical is not None:
        numeric, categorical = list(dataset.numeric), list(dataset.categorical)
    else:
        inferred_num = [
            c for c in rest if mostly_numeric(frame[c], max_bad_fraction=max_bad_fraction)
        ]
        inferred_cat = [c for c in rest if c not in inferred_num]
        numeric = list(dataset.numeric) if dataset.numeric is not None else inferred_num
        categorical = list(dataset.categorical) if dataset.categorical is not None else inferred_cat
        categorical = [c for c in categorical if c not in numeric]
        inferred["features"] = "numeric where the first batch's values parse as numbers"
    time_column = dataset.time_column if dataset.time_column in frame.columns else None
    target = frame[dataset.target] if dataset.target in frame.columns else pd.Series(dtype=object)
    task: Task
    if dataset.classes is not None:
        task = "classification"
    elif dataset.task is not None:
        task = dataset.task
    else:
        task, why = infer_task(target, max_bad_fraction=max_bad_fraction)
        inferred["task"] = f"{task}: {why}"
    classes: list[Label] | None = None
    closed = dataset.classes is not None
    if closed:
        classes = sorted_labels(dataset.classes or [])
    elif task == "classification":
        kind = infer_label_kind(target, max_bad_fraction=max_bad_fraction)
        labels, _ = normalize_labels(target, kind)
        classes = sorted_labels(labels.dropna())
        inferred["classes"] = (
            f"{len(classes)} {kind} labels from the first batch; the set stays open"
        )
    bounds = {
        column: (None if low is None else float(low), None if high is None else float(high))
        for column, (low, high) in dataset.bounds.items()
    }
    return FeatureSpec(
        target=dataset.target,
        time_column=time_column,
        numeric=numeric,
        categorical=categorical,
        task=task,
        classes=classes,
        classes_closed=closed,
        bounds=bounds,
        non_null=list(dataset.non_null),
        inferred=inferred,
    )
