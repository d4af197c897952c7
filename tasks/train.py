"""Training: the estimator pipeline, the time-ordered hold-out split, and the training window.

The first model and every retrained candidate go through `fit_candidate`: one code path.
`*_score` functions are higher-better.
"""

from __future__ import annotations

import hashlib
import importlib
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sklearn.base import ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tasks.config import ESTIMATOR_MODULES, ModelConfig
from tasks.errors import ConfigError
from tasks.validate import FeatureSpec


class BatchSlice(BaseModel):
    """Rows [start, stop) of one batch, in its validated (time-sorted) order."""

    model_config = ConfigDict(frozen=True)

    batch_id: str
    start: int
    stop: int


class TrainingWindow(BaseModel):
    """Exactly which rows a model learned from: the gate refuses test rows inside it."""

    model_config = ConfigDict(frozen=True)

    slices: list[BatchSlice]
    rows: int
    time_start: datetime | None
    time_end: datetime | None
    fingerprint: str


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the frame's values, row order included: the same data gives the same print."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def _estimator_class(model: ModelConfig) -> type:
    module_name, _, class_name = model.estimator.rpartition(".")
    if module_name not in ESTIMATOR_MODULES:
        raise ConfigError(f"model.estimator {model.estimator!r} is not in an allowed module")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, ClassifierMixin):
        raise ConfigError(f"model.estimator {model.estimator!r} is not a scikit-learn classifier")
    return cls


def make_estimator(model: ModelConfig, spec: FeatureSpec, *, seed: int) -> Pipeline:
    """Impute, scale and one-hot encode, then the configured classifier."""
    cls = _estimator_class(model)
    params: dict[str, Any] = dict(model.params)
    if "random_state" in cls().get_params():
        params.setdefault("random_state", seed)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise ConfigError(f"model.params do not fit {model.estimator}: {exc}") from exc
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("encode", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    prepare = ColumnTransformer(
        [("numeric", numeric, spec.numeric), ("categorical", categorical, spec.categorical)]
    )
    return Pipeline([("prepare", prepare), ("model", estimator)])


def split_holdout(frame: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time-ordered split: the newest `fraction` of rows is held back. `frame` is already sorted."""
    n_hold = round(len(frame) * fraction)
    n_hold = min(max(n_hold, 1), len(frame) - 1)
    cut = len(frame) - n_hold
    return frame.iloc[:cut], frame.iloc[cut:]


def training_window(
    frame: pd.DataFrame, slices: list[BatchSlice], spec: FeatureSpec
) -> TrainingWindow:
    times = frame[spec.time_column] if spec.time_column else None
    return TrainingWindow(
        slices=slices,
        rows=len(frame),
        time_start=None if times is None or times.empty else times.min().to_pydatetime(warn=False),
        time_end=None if times is None or times.empty else times.max().to_pydatetime(warn=False),
        fingerprint=fingerprint(frame),
    )


def fit_candidate(
    train: pd.DataFrame, spec: FeatureSpec, model: ModelConfig, *, seed: int
) -> Pipeline:
    """Fit the configured pipeline; the same call trains the first model and every candidate."""
    classes = set(train[spec.target].unique())
    if len(classes) < 2:
        raise ValueError(f"training data has a single class ({classes}); a classifier needs two")
    return make_estimator(model, spec, seed=seed).fit(train[spec.features], train[spec.target])


def fit_floor(train: pd.DataFrame, spec: FeatureSpec) -> DummyClassifier:
    """The floor the first model must beat: the class frequencies of its training data
    (predicts the majority class; its probabilities are the priors)."""
    return DummyClassifier(strategy="prior").fit(train[spec.features], train[spec.target])


def predict(model: Any, frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    return np.asarray(model.predict(frame[spec.features]))


def accuracy_score(model: Any, frame: pd.DataFrame, spec: FeatureSpec) -> float:
    """Share of rows whose label the model predicts right."""
    return float(np.mean(predict(model, frame, spec) == frame[spec.target].to_numpy()))


def encode_labels(values: np.ndarray, classes: list[int]) -> np.ndarray:
    """Labels as positions in `classes` (0..k-1), the coding the gate's metrics expect."""
    return np.searchsorted(np.asarray(classes), np.asarray(values))


def gate_predictions(
    model: Any, frame: pd.DataFrame, spec: FeatureSpec, *, probabilities: bool
) -> np.ndarray:
    """What the gate compares: labels (coded 0..k-1), or class probabilities in `spec.classes`
    order (for two classes, P(second class))."""
    features = frame[spec.features]
    if not probabilities:
        return encode_labels(model.predict(features), spec.classes)
    if not hasattr(model, "predict_proba"):
        raise ConfigError(
            f"{type(model).__name__} gives no probabilities; set gate.metric: accuracy in the config"
        )
    raw = np.asarray(model.predict_proba(features), dtype=float)
    proba = np.zeros((len(frame), len(spec.classes)))
    for column, cls in enumerate(model.classes_):
        proba[:, spec.classes.index(int(cls))] = raw[:, column]
    return proba[:, 1] if len(spec.classes) == 2 else proba
