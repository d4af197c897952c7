"""The built-in demo stream: a seeded binary-classification stream with known drift.

Customers churn or not. Batches are days. The drift is known, so tests and the backtest can check
that ct finds it:

* batches 1-5 are stable;
* batch 6 changes abruptly: `usage_hours` shifts up and the `region` mix changes (covariate drift),
  and heavy usage now *raises* churn instead of lowering it (concept drift);
* batches 9-12 drift gradually: `income` rises a little every batch and matters more and more;
* later batches (`--batches 50`) stay where batch 12 left off: new rows, the same distribution.
  A drift that went on growing would make every customer churn by batch 20 or so, and a
  classifier cannot learn from one class.

About 5 % of `income` and 3 % of `plan` are missing. No download: the stream is computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

N_BATCHES = 12
BATCH_ROWS = 800
ABRUPT_BATCH = 6
GRADUAL_BATCHES = (9, 10, 11, 12)
TARGET = "churned"
TIME_COLUMN = "event_time"
NUMERIC = ["age", "income", "tenure_months", "usage_hours"]
CATEGORICAL = ["region", "plan"]
_REGIONS = np.array(["north", "south", "east", "west"])
_PLANS = np.array(["basic", "plus", "pro"])
_START = pd.Timestamp("2026-01-01")


def demo_batch(batch: int, *, rows: int = BATCH_ROWS, seed: int = 0) -> pd.DataFrame:
    """Batch number `batch` (1-based) of the demo stream; the same arguments give the same rows."""
    rng = np.random.default_rng([seed, batch])
    after = batch >= ABRUPT_BATCH
    # 0 before batch 9, then 1, 2, 3, 4, and 4 from then on
    gradual = min(max(0, batch - GRADUAL_BATCHES[0] + 1), len(GRADUAL_BATCHES))

    age = np.clip(rng.normal(45, 12, rows), 18, 90).round()
    income = rng.lognormal(np.log(52_000) + 0.1 * gradual, 0.35, rows).round(-2)
    tenure = rng.exponential(24, rows).round(1)
    usage = np.clip(rng.normal(26 if after else 20, 6, rows), 0, None).round(1)
    region_p = [0.15, 0.25, 0.2, 0.4] if after else [0.3, 0.3, 0.2, 0.2]
    region = rng.choice(_REGIONS, rows, p=region_p)
    plan = rng.choice(_PLANS, rows, p=[0.5, 0.3, 0.2])

    usage_z = (usage - 23) / 6
    income_z = (np.log(income) - np.log(52_000)) / 0.35
    logit = (
        -0.3
        + (1.2 if after else -2.0) * usage_z
        - 1.2 * (tenure - 24) / 24
        + np.select([plan == "basic", plan == "pro"], [0.8, -0.8], 0.0)
        + np.where(region == "west", 1.2 if after else 0.3, 0.0)
        + 0.3 * gradual * income_z
    )
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)

    offsets = np.sort(rng.uniform(0, 86_400, rows))
    frame = pd.DataFrame(
        {
            TIME_COLUMN: _START + pd.Timedelta(days=batch - 1) + pd.to_timedelta(offsets, unit="s"),
            "age": age,
            "income": income,
            "tenure_months": tenure,
            "usage_hours": usage,
            "region": region,
            "plan": plan,
            TARGET: churned,
        }
    )
    frame.loc[rng.random(rows) < 0.05, "income"] = np.nan
    frame.loc[rng.random(rows) < 0.03, "plan"] = None
    return frame


def demo_stream(
    *, n_batches: int = N_BATCHES, rows: int = BATCH_ROWS, seed: int = 0
) -> list[pd.DataFrame]:
    """All batches of the demo stream, in time order."""
    return [demo_batch(b, rows=rows, seed=seed) for b in range(1, n_batches + 1)]


def write_demo_stream(
    out_dir: str | Path, *, n_batches: int = N_BATCHES, rows: int = BATCH_ROWS, seed: int = 0
) -> list[Path]:
    """Write the stream as one CSV per batch (`batch-01.csv`, ...), the way files would land."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, frame in enumerate(demo_stream(n_batches=n_batches, rows=rows, seed=seed), 1):
        path = out / f"batch-{number:02d}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths
