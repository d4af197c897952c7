"""Metrics the gate can decide on, as per-row values where they exist and as weighted aggregates.

Higher is better for accuracy, ROC AUC and F1; lower for log loss, Brier, MSE and MAE. Every
aggregate takes a weight matrix (resamples x rows), so one call evaluates a whole bootstrap; weights
of 1 give the plain metric. The truth is class codes 0..k-1 (classification) or numbers
(regression); predictions are codes (1-D ints), binary probabilities (1-D P(class 1)), class
probabilities (2-D, columns in class order) or numbers.

Multiclass forms: Brier is the sum over classes of squared probability errors (binary: the usual
(p - y)^2); F1 is the F1 of class 1 for two classes and the macro average over the classes present
in the truth or the predictions for more; ROC AUC is one-vs-rest, the unweighted mean over classes
that have both positives and negatives (scikit-learn's `multi_class="ovr"`, `average="macro"`).
Log loss clips probabilities to [1e-15, 1 - 1e-15], so a class a model never learned (probability
0) costs -log(1e-15) = 34.5 per row, not infinity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

from tasks.errors import CTError

Needs = Literal["labels", "probabilities", "numbers"]
ArrayOrFloat = TypeVar("ArrayOrFloat", float, np.ndarray)
_EPS = 1e-15


class GateInputError(CTError, ValueError):
    """The predictions or labels given to the gate cannot be compared as they are."""


def as_labels(pred: np.ndarray) -> np.ndarray:
    """Labels from labels, binary P(class 1) (threshold 0.5) or class probabilities (argmax)."""
    pred = np.asarray(pred)
    if pred.ndim == 2:
        return np.argmax(pred, axis=1)
    if pred.dtype.kind == "f" and not np.all(np.mod(pred, 1) == 0):
        return (pred >= 0.5).astype(np.int64)
    return pred.astype(np.int64)


def check_probabilities(pred: np.ndarray, who: str) -> np.ndarray:
    pred = np.asarray(pred, dtype=float)
    if np.any((pred < 0) | (pred > 1)):
        bad = pred[(pred < 0) | (pred > 1)].ravel()[:3]
        raise GateInputError(f"{who}: probabilities outside [0, 1], e.g. {bad.tolist()}")
    return pred


def accuracy_rows(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return (as_labels(pred) == y).astype(float)


def log_loss_rows(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(pred, dtype=float), _EPS, 1 - _EPS)
    if p.ndim == 2:
        return -np.log(p[np.arange(len(y)), y.astype(np.int64)])
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def brier_rows(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    p = np.asarray(pred, dtype=float)
    if p.ndim == 2:
        onehot = np.zeros_like(p)
        onehot[np.arange(len(y)), y.astype(np.int64)] = 1.0
        return np.sum((p - onehot) ** 2, axis=1)
    return (p - y) ** 2


def squared_error_rows(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return (np.asarray(pred, dtype=float) - y) ** 2


def absolute_error_rows(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(pred, dtype=float) - y)


def weighted_mean(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row-mean metric under each weight row: (resamples,)."""
    return (weights @ rows) / weights.sum(axis=1)


def _class_f1(y: np.ndarray, labels: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    tp = weights @ ((labels == k) & (y == k)).astype(float)
    fp = weights @ ((labels == k) & (y != k)).astype(float)
    fn = weights @ ((labels != k) & (y == k)).astype(float)
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def weighted_f1(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """F1 under each weight row: of class 1 for two classes (0 where there are no true or
    predicted positives), else macro-averaged over the classes present in the truth or the
    predictions of each resample."""
    labels = as_labels(pred)
    y = np.asarray(y).astype(np.int64)
    k = max(int(y.max(initial=0)), int(labels.max(initial=0))) + 1
    if np.asarray(pred).ndim == 2:
        k = max(k, np.asarray(pred).shape[1])
    if k <= 2:
        return _class_f1(y, labels, 1, weights)
    total = np.zeros(weights.shape[0])
    present = np.zeros(weights.shape[0])
    for c in range(k):
        seen = weights @ ((y == c) | (labels == c)).astype(float) > 0
        total += np.where(seen, _class_f1(y, labels, c, weights), 0.0)
        present += seen
    return np.divide(total, present, out=np.zeros_like(total), where=present > 0)


def scores_for_auc(pred: np.ndarray) -> np.ndarray:
    """Binary scores: P(class 1) from 1-D probabilities or the second of two columns."""
    pred = np.asarray(pred, dtype=float)
    if pred.ndim == 2 and pred.shape[1] != 2:
        raise GateInputError(
            f"{pred.shape[1]} classes: a binary ROC AUC (DeLong) does not apply; use the bootstrap"
        )
    return pred[:, 1] if pred.ndim == 2 else pred


def weighted_roc_auc(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Binary ROC AUC, or for class probabilities of more than two classes the one-vs-rest mean
    over the classes with both positives and negatives under each weight row."""
    pred = np.asarray(pred, dtype=float)
    if pred.ndim == 1 or pred.shape[1] == 2:
        return weighted_auc(y, scores_for_auc(pred), weights)
    per_class = np.stack(
        [weighted_auc((y == k).astype(np.int64), pred[:, k], weights) for k in range(pred.shape[1])]
    )
    defined = np.isfinite(per_class)
    count = defined.sum(axis=0)
    total = np.where(defined, per_class, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def weighted_auc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC under each weight row, ties counted half.

    The negatives are sorted once; for every positive, the weight of the negatives scored below it
    is read off a cumulative sum over the (transposed, so contiguous) weights: O(rows x resamples).
    """
    positive = np.flatnonzero(y == 1)
    negative = np.flatnonzero(y != 1)
    negative = negative[np.argsort(scores[negative], kind="stable")]
    ordered = scores[negative]
    left = np.searchsorted(ordered, scores[positive], "left")
    right = np.searchsorted(ordered, scores[positive], "right")
    wt = np.ascontiguousarray(np.asarray(weights, dtype=float).T)
    below = np.zeros((negative.size + 1, wt.shape[1]))
    np.cumsum(wt[negative], axis=0, out=below[1:])
    counted = below[left] if np.array_equal(left, right) else 0.5 * (below[left] + below[right])
    w_pos = wt[positive]
    pairs = np.einsum("ic,ic->c", w_pos, counted)
    positives = w_pos.sum(axis=0)
    total = positives * (wt.sum(axis=0) - positives)
    return np.divide(pairs, total, out=np.full_like(pairs, np.nan), where=total > 0)


@dataclass(frozen=True)
class Metric:
    """A gate metric: per-row values (None if it is not a row mean) and a weighted aggregate."""

    name: str
    higher_is_better: bool
    needs: Needs
    rows: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    aggregate: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

    def value(self, y: np.ndarray, pred: np.ndarray) -> float:
        return float(self.aggregate(y, pred, np.ones((1, len(y))))[0])

    def gain(self, baseline: ArrayOrFloat, candidate: ArrayOrFloat) -> ArrayOrFloat:
        """How much better `candidate` is than `baseline` in this metric's units (positive:
        better, whichever direction the metric runs): the one place the sign is decided."""
        return candidate - baseline if self.higher_is_better else baseline - candidate

    def gain_rows(self, y: np.ndarray, baseline: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """The paired per-row gains of `candidate` over `baseline` on the same rows: what the
        gate's row tests and the challenger's evidence are computed from."""
        if self.rows is None:
            raise GateInputError(f"metric {self.name!r} has no per-row values")
        return np.asarray(self.gain(self.rows(y, baseline), self.rows(y, candidate)), dtype=float)


def _row_metric(
    name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], higher: bool, needs: Needs
) -> Metric:
    return Metric(name, higher, needs, fn, lambda y, p, w: weighted_mean(fn(y, p), w))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _row_metric("accuracy", accuracy_rows, True, "labels"),
        _row_metric("log_loss", log_loss_rows, False, "probabilities"),
        _row_metric("brier", brier_rows, False, "probabilities"),
        _row_metric("mse", squared_error_rows, False, "numbers"),
        _row_metric("mae", absolute_error_rows, False, "numbers"),
        Metric("roc_auc", True, "probabilities", None, weighted_roc_auc),
        Metric("f1", True, "labels", None, weighted_f1),
    )
}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise GateInputError(
            f"unknown gate metric {name!r}; use one of {sorted(METRICS)}"
        ) from None
