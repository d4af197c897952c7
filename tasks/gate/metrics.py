"""Metrics the gate can decide on, as per-row values where they exist and as weighted aggregates.

`*_score` metrics are higher-better, `*_loss`/`*_error` metrics lower-better. Every aggregate takes a
weight matrix (resamples x rows), so one call evaluates a whole bootstrap; weights of 1 give the
plain metric. Predictions are labels (1-D ints), binary probabilities (1-D P(class 1)), class
probabilities (2-D, columns in class order) or numbers (regression).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tasks.errors import CTError

Needs = Literal["labels", "probabilities", "numbers"]
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


def weighted_f1(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """F1 of class 1 under each weight row; 0 where there are no true or predicted positives."""
    labels = as_labels(pred)
    tp = weights @ ((labels == 1) & (y == 1)).astype(float)
    fp = weights @ ((labels == 1) & (y != 1)).astype(float)
    fn = weights @ ((labels != 1) & (y == 1)).astype(float)
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def scores_for_auc(pred: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred, dtype=float)
    return pred[:, 1] if pred.ndim == 2 else pred


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
        _row_metric("squared_error", squared_error_rows, False, "numbers"),
        _row_metric("absolute_error", absolute_error_rows, False, "numbers"),
        Metric(
            "roc_auc",
            True,
            "probabilities",
            None,
            lambda y, p, w: weighted_auc(y, scores_for_auc(p), w),
        ),
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
