"""The track record that lets `gate.mode: auto` choose, per model, how a candidate is promoted.

No single mode is right on every stream (benchmarks/policies.py): when a fresh candidate's gain on
its own batch carries over to the next batch (slow drift, a stable stream), promoting at once wins;
when rows cluster by region or regime, or the concept keeps flipping, the gain on the held-back
rows of the candidate's own batch is a local overfit, and only evidence from later batches (the
challenger) avoids promoting it. Which case a stream is in is itself measurable: how did the
candidates do on the first batch after they were trained, against the champion they were judged
with? Measured in benchmarks/policies.py (README, The challenger): it follows `batch` on steady
drift and the challenger on clustered rows, but a concept that keeps reversing fools it (three
gains come before each reversal).

In `auto` every candidate is trained and registered (its lineage names the champion it was judged
against), whatever the gate makes of it. On the next batch, before anything learns from it, the
step scores that candidate and its champion on the same rows: one point of the model's track
record (a registry log, `<name>/logs/track-record/`, appended by compare-and-swap, one point per
candidate version), its mean per-row improvement in the gate's metric.

`fast_lane` reads the newest points. When each of the last three candidates gained on its next
batch, a candidate is promoted at once if it is no worse on its own held-back rows (a one-sided
screen at 0.5: the record, not this batch, is the evidence). Otherwise, and before there are three
points, a candidate that passes the screen at `gate.screen_alpha` becomes the challenger when there
is none, and must win on later batches under the anytime-valid test; while a challenger collects
evidence, new candidates are registered for the record but do not replace it (replacing it every
batch would starve it: it could never collect enough evidence). Pure functions first; the
Prefect task at the end.
"""

from __future__ import annotations

from typing import Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.registry import ModelRegistry

LOG = "track-record"
#: The newest points the lane is chosen from.
WINDOW = 3
#: The screen's one-sided level in the fast lane: no worse on its own held-back rows (the
#: record, not this batch, is the evidence).
FAST_SCREEN_ALPHA = 0.5

Route = Literal["promoted", "challenger", "not promoted"]
Lane = Literal["fast", "challenger"]


class TrackPoint(BaseModel):
    """How one screened candidate did on the first batch after it was trained."""

    model_config = ConfigDict(frozen=True)

    version: int
    #: The champion it was judged against when it was trained.
    baseline: int
    batch_id: str
    rows: int
    #: Mean per-row improvement over the baseline in the gate's metric (positive: better).
    mean_improvement: float
    route: Route


def fast_lane(points: list[TrackPoint], window: int = WINDOW) -> bool:
    """Promote at once only when each of the newest `window` screened candidates kept a gain on
    its next batch. One loss among them is enough to wait for evidence: on a stream whose concept
    keeps reversing, most fresh candidates beat the champion they replace, yet the one trained
    across each reversal loses, and promoting them all ends below never updating at all."""
    newest = points[-window:]
    return len(newest) == window and all(p.mean_improvement > 0 for p in newest)


def lane_summary(points: list[TrackPoint], window: int = WINDOW) -> str:
    """The record behind the lane, for the step's outcome and logs."""
    newest = points[-window:]
    if not newest:
        return "no track record yet"
    gains = ", ".join(f"v{p.version} {p.mean_improvement:+.4f}" for p in newest)
    return f"next-batch gains of the last {len(newest)} candidates: {gains}"


def read_track_record(
    registry: ModelRegistry, name: str, *, last: int | None = None
) -> tuple[list[TrackPoint], int]:
    """The model's track record (only the newest `last` points when given: a step needs no more,
    and on object storage each point is a GET), oldest first, and the sequence of its last record
    (0: none)."""
    records = registry.read_log(name, LOG, last=last)
    points = [TrackPoint.model_validate(r["point"]) for r in records]
    return points, (int(records[-1]["sequence"]) if records else 0)


def append_point(registry: ModelRegistry, name: str, point: TrackPoint) -> list[TrackPoint]:
    """Append a point, once per candidate version, by compare-and-swap on the log's sequence (of
    two racing steps one writes, the other gets AliasConflictError); the newest `WINDOW` points
    after it. Points are appended in version order (each step records the newest candidate), so a
    version already recorded is among the newest."""
    points, sequence = read_track_record(registry, name, last=WINDOW)
    if any(p.version == point.version for p in points):
        return points
    registry.append_log(name, LOG, {"point": point.model_dump(mode="json")}, expected=sequence)
    return [*points, point][-WINDOW:]


# ---------------------------------------------------------------- Prefect task
@task(name="record-track-point", cache_policy=NO_CACHE)
def record_track_point(registry: ModelRegistry, name: str, point: TrackPoint) -> list[TrackPoint]:
    """Append the point and log it."""
    points = append_point(registry, name, point)
    get_run_logger().info(
        "Track record of %s: v%d %+.4f vs v%d on batch %s (%s)",
        name,
        point.version,
        point.mean_improvement,
        point.baseline,
        point.batch_id,
        point.route,
    )
    return points
