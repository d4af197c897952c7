"""gate.mode auto's lane rule and its record in the registry (tasks/track_record.py), without a
Prefect server."""

from __future__ import annotations

import pytest

from blocks.errors import AliasConflictError
from blocks.registry import ModelRegistry
from tasks.track_record import (
    LOG,
    TrackPoint,
    append_point,
    fast_lane,
    lane_summary,
    read_track_record,
)


def points(*gains: float) -> list[TrackPoint]:
    return [
        TrackPoint(
            version=v + 2,
            baseline=1,
            batch_id=f"b{v}",
            rows=400,
            mean_improvement=g,
            route="not promoted",
        )
        for v, g in enumerate(gains)
    ]


def test_the_fast_lane_needs_three_gains_in_a_row():
    assert not fast_lane([])
    assert not fast_lane(points(0.1, 0.2))  # too few to tell
    assert fast_lane(points(0.1, 0.2, 0.01))
    assert fast_lane(points(-0.5, 0.1, 0.2, 0.3))  # only the newest three count


def test_one_loss_or_a_tie_among_the_last_three_sends_candidates_to_the_challenger():
    # a concept that reverses every 3 batches: two gains, then the candidate across the reversal
    # loses; the mean gain is positive, yet promoting them all ends below never updating
    assert not fast_lane(points(0.53, 0.74, -0.47))
    assert not fast_lane(points(0.74, -0.47, 0.43))
    assert not fast_lane(points(0.1, 0.0, 0.2))


def test_the_summary_names_the_points_it_decided_on():
    text = lane_summary(points(-0.5, 0.1, 0.2, 0.3))
    assert "v3 +0.1000" in text and "v5 +0.3000" in text and "v2" not in text
    assert lane_summary([]) == "no track record yet"


def test_the_record_is_appended_once_per_candidate_and_a_lost_race_is_refused(tmp_path):
    registry = ModelRegistry(url=str(tmp_path / "registry"))
    first, second = points(0.1, -0.2)
    assert append_point(registry, "m", first) == [first]
    assert append_point(registry, "m", first) == [first]  # a re-run: no second point
    assert append_point(registry, "m", second) == [first, second]
    recorded, sequence = read_track_record(registry, "m")
    assert recorded == [first, second] and sequence == 2
    # a writer that read the log before the second point lost the compare-and-swap
    with pytest.raises(AliasConflictError):
        registry.append_log("m", LOG, {"point": first.model_dump(mode="json")}, expected=1)
    assert read_track_record(registry, "m")[0] == [first, second]
