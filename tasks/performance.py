"""Is the champion doing worse in production than when it was promoted? A one-sided test.

At promotion the gate recorded the champion's level on its held-back rows (e.g. its mean log loss).
On labelled production rows, each row's loss is compared with that level: a one-sample t-test of
H0 "mean loss <= recorded" against H1 "greater" (for accuracy: an exact binomial test that the
error rate exceeds the recorded one). Degraded only when p < alpha and the change reaches
`min_effect`: a point estimate beyond a threshold is not evidence.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats

from tasks.gate.metrics import get_metric
from tasks.gate.paired_tests import paired_t


class Degradation(BaseModel):
    model_config = ConfigDict(frozen=True)

    metric: str
    recorded: float
    observed: float
    change: float  # how much worse, in the metric's units (positive = worse)
    p_value: float
    n: int
    degraded: bool
    reason: str


def degradation_test(
    y_true: np.ndarray,
    pred: np.ndarray,
    *,
    metric: str,
    recorded: float,
    alpha: float = 0.05,
    min_effect: float = 0.0,
) -> Degradation:
    """Test whether the metric on labelled production rows is worse than the recorded level."""
    m = get_metric(metric)
    if m.rows is None:
        raise ValueError(
            f"metric {metric!r} is not a per-row metric; use accuracy, log_loss or brier"
        )
    y = np.asarray(y_true)
    rows = m.rows(y, np.asarray(pred))
    n = rows.size
    observed = float(rows.mean()) if n else float("nan")
    change = m.gain(observed, recorded)  # how much worse it does now than it did
    if n < 10:
        p = 1.0
    elif metric == "accuracy":
        errors = round(n - rows.sum())
        p = float(
            stats.binomtest(
                errors, n, min(max(1 - recorded, 1e-12), 1 - 1e-12), alternative="greater"
            ).pvalue
        )
    else:  # a one-sample t-test of the rows' excess over the recorded level
        p = paired_t(rows - recorded, alpha=alpha).p_value
    degraded = n >= 10 and p < alpha and change >= min_effect and change > 0
    reason = (
        f"{metric} on {n} labelled rows is {observed:.4f} vs {recorded:.4f} recorded at promotion "
        f"({'worse' if change > 0 else 'not worse'} by {abs(change):.4f}); one-sided p = {p:.3g}: "
        + ("degraded." if degraded else "no evidence of degradation.")
    )
    return Degradation(
        metric=metric,
        recorded=recorded,
        observed=observed,
        change=change,
        p_value=p,
        n=n,
        degraded=degraded,
        reason=reason,
    )
