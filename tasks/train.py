"""Training: the estimator pipeline, the time-ordered hold-out split, and the training window.

The first model and every retrained candidate go through `fit_candidate`: one code path. A
classifier is fitted on label codes 0..k-1 (the positions of its training labels in sorted order;
`tasks.labels`), and the `Fitted` model carries that list, so its predictions read back as labels
and the gate can line up two models that know different classes. `*_score` functions are
higher-better.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tasks.config import ESTIMATOR_MODULES, Label, ModelConfig, Task
from tasks.errors import ConfigError
from tasks.gate.metrics import get_metric
from tasks.labels import decode, encode, sorted_labels
from tasks.validate import FeatureSpec

#: The estimator when model.estimator is null, per task, with its default parameters.
DEFAULT_ESTIMATORS: dict[Task, tuple[str, dict[str, Any]]] = {
    "classification": ("sklearn.linear_model.LogisticRegression", {"max_iter": 1000}),
    "regression": ("sklearn.linear_model.Ridge", {}),
}
#: Quiet defaults for libraries that print per fit (a user's params win).
_LIBRARY_DEFAULTS: dict[str, dict[str, Any]] = {
    "lightgbm": {"verbose": -1},
    "xgboost": {"verbosity": 0},
}


@dataclass(frozen=True)
class Fitted:
    """A fitted model and the labels its codes stand for (None for a regressor)."""

    estimator: Any
    labels: list[Label] | None


def _estimator_class(path: str, task: Task) -> type:
    module_name, _, class_name = path.rpartition(".")
    if module_name not in ESTIMATOR_MODULES:
        raise ConfigError(f"model.estimator {path!r} is not in an allowed module")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model.estimator {path!r}: cannot import {module_name} ({exc})") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ConfigError(f"model.estimator {path!r}: {module_name} has no class {class_name}")
    return cls


def load_factory(path: str) -> Any:
    """The unfitted estimator or pipeline that `package.module:function` returns."""
    module_name, _, function_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"model.factory {path!r}: cannot import {module_name} ({exc}); is it installed or on "
            "PYTHONPATH?"
        ) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"model.factory {path!r}: {module_name} has no function {function_name}")
    estimator = function()
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
        raise ConfigError(
            f"model.factory {path!r} returned {type(estimator).__name__}, which has no fit/predict"
        )
    return estimator


def preprocessing(spec: FeatureSpec) -> ColumnTransformer:
    """Impute, scale and one-hot encode: ct's feature preparation for a named estimator. Dense
    output, which every estimator accepts (histogram gradient boosting takes no sparse input)."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("encode", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    return ColumnTransformer(
        [("numeric", numeric, spec.numeric), ("categorical", categorical, spec.categorical)],
        sparse_threshold=0.0,
    )


def make_estimator(model: ModelConfig, spec: FeatureSpec, *, seed: int) -> Any:
    """The unfitted model: the user's factory as it is, or ct's preparation + the named estimator."""
    if model.factory is not None:
        return load_factory(model.factory)
    path, defaults = DEFAULT_ESTIMATORS[spec.task]
    if model.estimator is not None:
        path, defaults = model.estimator, {}
    cls = _estimator_class(path, spec.task)
    params: dict[str, Any] = {
        **_LIBRARY_DEFAULTS.get(path.split(".")[0], {}),
        **defaults,
        **(model.params or {}),
    }
    if "random_state" in cls().get_params():
        params.setdefault("random_state", seed)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise ConfigError(f"model.params do not fit {path}: {exc}") from exc
    fits = is_classifier(estimator) if spec.task == "classification" else is_regressor(estimator)
    if not fits:
        kind = "classifier" if spec.task == "classification" else "regressor"
        raise ConfigError(
            f"model.estimator {path!r} is not a {kind}, and the task is {spec.task}; pick a "
            f"{kind} (or set dataset.task)"
        )
    return Pipeline([("prepare", preprocessing(spec)), ("model", estimator)])


def estimator_name(model: ModelConfig, task: Task) -> str:
    """What trained the model, for lineage and messages."""
    if model.factory is not None:
        return f"factory {model.factory}"
    return model.estimator or DEFAULT_ESTIMATORS[task][0]


def split_holdout(frame: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time-ordered split: the newest `fraction` of rows is held back. `frame` is already sorted."""
    n_hold = round(len(frame) * fraction)
    n_hold = min(max(n_hold, 1), len(frame) - 1)
    cut = len(frame) - n_hold
    return frame.iloc[:cut], frame.iloc[cut:]


def fit_candidate(
    train: pd.DataFrame, spec: FeatureSpec, model: ModelConfig, *, seed: int
) -> Fitted:
    """Fit the configured model; the same call trains the first model and every candidate."""
    estimator = make_estimator(model, spec, seed=seed)
    features = train[spec.features]
    if spec.task == "regression":
        return Fitted(estimator.fit(features, train[spec.target].to_numpy(float)), None)
    labels = sorted_labels(train[spec.target].unique())
    if len(labels) < 2:
        raise ValueError(
            f"training data has a single class ({labels}); a classifier needs two. Nothing was "
            "registered. Check the batch's labels, or widen retrain.history_batches so that the "
            "training window holds at least two"
        )
    return Fitted(estimator.fit(features, encode(train[spec.target], labels)), labels)


def fit_floor(train: pd.DataFrame, spec: FeatureSpec, *, metric: str) -> Fitted:
    """The floor the first model must beat: the class frequencies of its training data (predicts
    the majority class; its probabilities are the priors), or for regression the training mean
    (squared error) or median (absolute error)."""
    features = train[spec.features]
    if spec.task == "regression":
        strategy = "median" if metric == "mae" else "mean"
        return Fitted(DummyRegressor(strategy=strategy).fit(features, train[spec.target]), None)
    labels = sorted_labels(train[spec.target].unique())
    codes = encode(train[spec.target], labels)
    return Fitted(DummyClassifier(strategy="prior").fit(features, codes), labels)


def predict(model: Fitted, frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """Labels (an object array of the contract's label values), or numbers for regression."""
    raw = np.asarray(model.estimator.predict(frame[spec.features]))
    if model.labels is None:
        return raw.astype(float)
    return decode(raw.astype(np.int64), model.labels)


def class_probabilities(
    model: Fitted, frame: pd.DataFrame, spec: FeatureSpec, classes: Sequence[Label]
) -> np.ndarray:
    """(rows, len(classes)) probabilities in `classes` order; a class the model never learned gets
    probability 0 (the log loss clips it to 1e-15)."""
    if not hasattr(model.estimator, "predict_proba"):
        raise ConfigError(
            f"{type(model.estimator).__name__} gives no probabilities; set gate.metric: accuracy "
            "in the config"
        )
    assert model.labels is not None
    raw = np.asarray(model.estimator.predict_proba(frame[spec.features]), dtype=float)
    proba = np.zeros((len(frame), len(classes)))
    position = {label: i for i, label in enumerate(classes)}
    for column, code in enumerate(model.estimator.classes_):
        proba[:, position[model.labels[int(code)]]] = raw[:, column]
    return proba


def gate_inputs(
    frame: pd.DataFrame, spec: FeatureSpec, models: Sequence[Fitted], *, probabilities: bool
) -> tuple[np.ndarray, list[np.ndarray], list[Label] | None]:
    """What the gate compares: the truth and each model's predictions in one coding.

    Regression: numbers. Classification: the classes are every label either model knows or the
    rows hold, sorted; the truth is coded 0..k-1 by them, and each model gives labels (coded
    alike) or class probabilities (for two classes, P(second class)).
    """
    truth = frame[spec.target]
    if spec.task == "regression":
        return truth.to_numpy(float), [predict(m, frame, spec) for m in models], None
    classes = sorted_labels([*truth.unique(), *(label for m in models for label in m.labels or [])])
    y = encode(truth, classes)
    predictions = []
    for model in models:
        if probabilities:
            proba = class_probabilities(model, frame, spec, classes)
            predictions.append(proba[:, 1] if len(classes) == 2 else proba)
        else:
            predictions.append(encode(predict(model, frame, spec), classes))
    return y, predictions, classes


def score(model: Fitted, frame: pd.DataFrame, spec: FeatureSpec, metric: str) -> float:
    """One model's metric on labelled rows (e.g. the champion's accuracy on a new batch)."""
    m = get_metric(metric)
    y, (pred,), _ = gate_inputs(frame, spec, [model], probabilities=m.needs == "probabilities")
    return m.value(y, pred)


def report_metric(spec: FeatureSpec, gate_metric: str) -> str:
    """The metric backtests and step results show: accuracy for classification (what a person
    reads at a glance), the gate's error metric for regression."""
    return "accuracy" if spec.task == "classification" else gate_metric
