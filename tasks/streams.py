"""Generated streams shaped like real data, not like the demo, to test every stage of CT on.

Real streams move past anything seen in training, flip 0/1 indicators, carry string labels or one
of seven classes, have numeric targets. Each stream here is seeded and documented with what
happens when, so a backtest on it has a known right answer: CT must refuse no batch (drift is not
corruption) and beat the never-updated first model.

| stream | task | what changes |
|---|---|---|
| `demo` | binary 0/1 | the built-in demo (tasks/demo.py): abrupt covariate + concept change, then gradual |
| `range-growth` | binary 0/1 | from batch 4 `demand` grows to twice its first range; the sell-out threshold moves with it |
| `indicator` | binary 0/1 | `promo` is 0 in every row of batches 1-2, then 1 in 40 % of rows and decisive |
| `new-class` | 3 → 4 string classes | the class `enterprise` appears in batch 4 and becomes common |
| `string-labels` | "yes"/"no" | the concept flips at batch 5 (high usage goes from loyal to leaving) |
| `seven-classes` | integers 1-7 | land cover from elevation and 0/1 soil indicators that are all 0 at first; elevation drifts up |
| `regression` | numbers | demand in units: a level shift at batch 4 and a price range that grows |

Four more, each for classification and (`-regression`) for a numeric target, are what the gate's
modes are compared on (benchmarks/policies.py): `flips` (the concept reverses every 3 batches),
`regions` (the first batch mixes 8 hidden regions; every later batch comes mostly from one region,
a different one each time, whose offset no feature explains: a model learned from the newest rows
overfits the region, and a holdout cut from the same batch flatters it), `slow-drift` (the
concept's direction turns a little every batch) and `stable` (no drift at all).

`stream_batches(name)` gives the batches; `write_stream(name, folder)` writes them as CSV files the
way they would land.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.config import Task
from tasks.demo import demo_batch

_START = pd.Timestamp("2026-01-01")
Maker = Callable[[int, int, int, int], pd.DataFrame]  # (batch, batches, rows, seed)


@dataclass(frozen=True)
class Stream:
    """A named generated stream and what a user would configure for it."""

    name: str
    description: str
    target: str
    task: Task
    batches: int
    rows: int
    make: Maker
    time_column: str = "event_time"


def _times(batch: int, rows: int, rng: np.random.Generator) -> pd.DatetimeIndex:
    offsets = np.sort(rng.uniform(0, 86_400, rows))
    return _START + pd.Timedelta(days=batch - 1) + pd.to_timedelta(offsets, unit="s")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _demo(batch: int, batches: int, rows: int, seed: int) -> pd.DataFrame:
    return demo_batch(batch, rows=rows, seed=seed)


def _range_growth(batch: int, batches: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, batch])
    scale = min(2.0, 1.0 + 0.6 * max(0, batch - 3))  # from batch 4 the range grows to twice
    demand = rng.uniform(0.2, 0.6, rows) * scale
    price = rng.normal(10, 2, rows)
    capacity = 0.4 * scale  # capacity is planned for the demand level
    sold_out = rng.random(rows) < _sigmoid(12 * (demand - capacity) / scale - 0.1 * (price - 10))
    return pd.DataFrame(
        {
            "event_time": _times(batch, rows, rng),
            "demand": demand.round(5),
            "price": price.round(2),
            "store": rng.choice(["a", "b", "c"], rows),
            "sold_out": sold_out.astype(int),
        }
    )


def _indicator(batch: int, batches: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, batch])
    promo = (rng.random(rows) < 0.4).astype(int) if batch >= 3 else np.zeros(rows, dtype=int)
    visits = rng.poisson(5, rows).astype(float)
    channel = rng.choice(["web", "app", "store"], rows, p=[0.5, 0.3, 0.2])
    logit = -1.0 + 0.35 * (visits - 5) + 3.0 * promo + np.where(channel == "app", 0.4, 0.0)
    return pd.DataFrame(
        {
            "event_time": _times(batch, rows, rng),
            "visits": visits,
            "promo": promo,
            "channel": channel,
            "converted": (rng.random(rows) < _sigmoid(logit)).astype(int),
        }
    )


def _new_class(batch: int, batches: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, batch])
    seats = rng.lognormal(2.0 + 0.15 * max(0, batch - 3), 0.8, rows)
    usage = rng.gamma(2.0, 10.0, rows)
    score = np.log(seats) + 0.03 * usage + rng.normal(0, 0.3, rows)
    cuts = [2.0, 3.0] if batch < 4 else [2.0, 3.0, 3.6]
    names = np.array(["basic", "plus", "pro", "enterprise"])
    plan = names[np.searchsorted(cuts, score)]
    return pd.DataFrame(
        {
            "event_time": _times(batch, rows, rng),
            "seats": seats.round(1),
            "usage": usage.round(2),
            "region": rng.choice(["emea", "amer", "apac"], rows),
            "plan": plan,
        }
    )


def _string_labels(batch: int, batches: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, batch])
    usage = rng.normal(20, 6, rows)
    tenure = rng.exponential(24, rows)
    flipped = batch >= 5
    logit = (1.5 if flipped else -1.5) * (usage - 20) / 6 - 0.8 * (tenure - 24) / 24
    leaves = rng.random(rows) < _sigmoid(logit)
    return pd.DataFrame(
        {
            "event_time": _times(batch, rows, rng),
            "usage": usage.round(2),
            "tenure": tenure.round(1),
            "segment": rng.choice(["consumer", "business"], rows, p=[0.7, 0.3]),
            "leaves": np.where(leaves, "yes", "no"),
        }
    )


def _seven_classes(batch: int, batches: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, batch])
    elevation = rng.normal(2600 + 60 * (batch - 1), 250, rows)
    slope = rng.gamma(2.0, 6.0, rows)
    soils = 4
    # soil indicators: in batch 1 only soil 0 and 1 occur, later all four (0/1 flips)
    allowed = 2 if batch == 1 else soils
    soil = rng.integers(0, allowed, rows)
    indicators = {f"soil_{k}": (soil == k).astype(int) for k in range(soils)}
    score = (elevation - 2300) / 120 + 0.8 * soil - 0.05 * slope + rng.normal(0, 0.6, rows)
    cover = np.clip(np.floor(score / 1.3).astype(int), 0, 6) + 1  # labels 1..7
    return pd.DataFrame(
        {
            "event_time": _times(batch, rows, rng),
            "elevation": elevation.round(0),
            "slope": slope.round(1),
            **indicators,
            "cover": cover,
        }
    )


def _regression(batch: int, batches: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, batch])
    scale = 1.0 + 0.5 * (batch - 1) / max(batches - 1, 1)
    price = rng.uniform(5, 15, rows) * scale
    temperature = rng.normal(18, 6, rows)
    weekday = rng.choice(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], rows)
    level = 100.0 if batch < 4 else 140.0
    units = (
        level
        - 4.0 * (price - 10)
        + 1.5 * (temperature - 18)
        + np.where(np.isin(weekday, ["sat", "sun"]), 25.0, 0.0)
        + rng.standard_t(5, rows) * 8
    )
    return pd.DataFrame(
        {
            "event_time": _times(batch, rows, rng),
            "price": price.round(2),
            "temperature": temperature.round(1),
            "weekday": weekday,
            "units": units.round(1),
        }
    )


POLICY_BATCHES, POLICY_ROWS = 15, 400
_REGION_OFFSETS = np.array([-1.6, -1.1, -0.6, -0.2, 0.2, 0.6, 1.1, 1.6])


def _concept(kind: str, batch: int, rows: int, seed: int, *, regression: bool) -> pd.DataFrame:
    """The four policy streams: y from x1, x2 (and a hidden region), varying by `kind`."""
    rng = np.random.default_rng([seed, batch, 91])
    x1, x2, x3 = rng.normal(size=(3, rows))
    angle = 0.0
    sign = 1.0
    offset = np.zeros(rows)
    if kind == "flips":
        sign = 1.0 if ((batch - 1) // 3) % 2 == 0 else -1.0
    elif kind == "slow-drift":
        angle = 0.12 * (batch - 1)
    elif kind == "regions":
        if batch == 1:  # the first (training) batch sees every region
            region = rng.integers(0, len(_REGION_OFFSETS), rows)
        else:
            home = np.random.default_rng([seed, batch, 92]).integers(len(_REGION_OFFSETS))
            region = np.where(rng.random(rows) < 0.85, home, rng.integers(0, 8, rows))
        offset = _REGION_OFFSETS[region]
    signal = sign * (np.cos(angle) * 1.6 * x1 + np.sin(angle) * 1.6 * x2) + 0.6 * x3 + offset
    frame = pd.DataFrame(
        {
            "event_time": _times(batch, rows, rng),
            "x1": x1.round(4),
            "x2": x2.round(4),
            "x3": x3.round(4),
            "channel": rng.choice(["web", "app", "store"], rows),
        }
    )
    if regression:
        frame["y"] = (10 * signal + rng.normal(0, 6, rows)).round(3)
    else:
        frame["y"] = (rng.random(rows) < _sigmoid(signal)).astype(int)
    return frame


def _policy_stream(kind: str, *, regression: bool) -> Stream:
    suffix = "-regression" if regression else ""
    what = {
        "flips": "the concept reverses every 3 batches",
        "regions": "rows clustered by a hidden region that changes every batch",
        "slow-drift": "the concept turns a little every batch",
        "stable": "no drift",
    }[kind]
    return Stream(
        f"{kind}{suffix}",
        what,
        "y",
        "regression" if regression else "classification",
        POLICY_BATCHES,
        POLICY_ROWS,
        lambda batch, batches, rows, seed: _concept(
            kind, batch, rows * 3 if batch == 1 else rows, seed, regression=regression
        ),
    )


STREAMS: dict[str, Stream] = {
    s.name: s
    for s in (
        Stream("demo", "the built-in demo stream", "churned", "classification", 12, 800, _demo),
        Stream(
            "range-growth",
            "from batch 4 demand grows to twice its first range; the sell-out threshold moves",
            "sold_out",
            "classification",
            10,
            600,
            _range_growth,
        ),
        Stream(
            "indicator",
            "a 0/1 promo indicator, all 0 in batches 1-2, then 1 in 40 % of rows and decisive",
            "converted",
            "classification",
            8,
            600,
            _indicator,
        ),
        Stream(
            "new-class",
            "string classes basic/plus/pro; 'enterprise' appears in batch 4",
            "plan",
            "classification",
            8,
            700,
            _new_class,
        ),
        Stream(
            "string-labels",
            "labels 'yes'/'no'; the concept flips at batch 5",
            "leaves",
            "classification",
            8,
            600,
            _string_labels,
        ),
        Stream(
            "seven-classes",
            "land cover 1-7 from elevation and 0/1 soil indicators (two all 0 at first)",
            "cover",
            "classification",
            8,
            800,
            _seven_classes,
        ),
        Stream(
            "regression",
            "units sold: a level shift at batch 4 and a growing price range",
            "units",
            "regression",
            8,
            600,
            _regression,
        ),
        *(
            _policy_stream(kind, regression=regression)
            for regression in (False, True)
            for kind in ("flips", "regions", "slow-drift", "stable")
        ),
    )
}


def get_stream(name: str) -> Stream:
    try:
        return STREAMS[name]
    except KeyError:
        raise ValueError(f"unknown stream {name!r}; one of {sorted(STREAMS)}") from None


def stream_batches(
    name: str, *, batches: int | None = None, rows: int | None = None, seed: int = 0
) -> list[pd.DataFrame]:
    """The stream's batches in time order; the same arguments give the same rows."""
    stream = get_stream(name)
    n = batches or stream.batches
    return [stream.make(b, n, rows or stream.rows, seed) for b in range(1, n + 1)]


def write_stream(
    name: str,
    out_dir: str | Path,
    *,
    batches: int | None = None,
    rows: int | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write the stream as one CSV per batch (`batch-01.csv`, ...), the way files would land."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, frame in enumerate(stream_batches(name, batches=batches, rows=rows, seed=seed), 1):
        path = out / f"batch-{number:02d}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths
