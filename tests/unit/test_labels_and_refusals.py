"""The target column (task, label types, codes) and the refusal streak (issues 12 and 13)."""

import numpy as np
import pandas as pd
import pytest

from tasks.labels import (
    decode,
    encode,
    infer_label_kind,
    infer_task,
    mostly_numeric,
    normalize_labels,
    sorted_labels,
)
from tasks.refusals import refusal_streak


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([0, 1, 1, 0], "classification"),
        ([1.0, 2.0, np.nan, 7.0], "classification"),  # whole floats (NaN made them float)
        (["yes", "no"], "classification"),
        ([True, False], "classification"),
        ([0.5, 1.25, 3.0], "regression"),
        (list(range(51)), "regression"),
        (list(range(50)), "classification"),
        (["1", "2", "abc"] + ["3"] * 97, "classification"),  # 1 % text: numbers, whole
    ],
)
def test_the_task_is_inferred_from_the_target(values, task):
    assert infer_task(pd.Series(values), max_bad_fraction=0.05)[0] == task


def test_mostly_numeric_allows_a_few_bad_cells():
    assert mostly_numeric(pd.Series(["1", "2"] * 49 + ["abc", "x"]), max_bad_fraction=0.05)
    assert not mostly_numeric(pd.Series(["1"] * 90 + ["abc"] * 10), max_bad_fraction=0.05)
    assert not mostly_numeric(pd.Series([True, False]), max_bad_fraction=0.05)


@pytest.mark.parametrize(
    ("raw", "kind", "expected", "bad"),
    [
        (
            ["1", "2", "2.5", None, "x"],
            "int",
            [1, 2, None, None, None],
            [False, False, True, False, True],
        ),
        (
            ["true", "No", "1", None, "maybe"],
            "bool",
            [True, False, True, None, None],
            [0, 0, 0, 0, 1],
        ),
        ([3.0, "a", None], "str", ["3", "a", None], [0, 0, 0]),
    ],
)
def test_labels_are_read_as_their_kind_and_unreadable_ones_are_flagged(raw, kind, expected, bad):
    labels, unreadable = normalize_labels(pd.Series(raw, dtype=object), kind)
    assert [None if pd.isna(v) else v for v in labels] == expected
    assert unreadable.tolist() == [bool(b) for b in bad]


def test_label_kinds_codes_and_their_round_trip():
    assert infer_label_kind(pd.Series([True, False]), max_bad_fraction=0.05) == "bool"
    assert infer_label_kind(pd.Series([1, 7]), max_bad_fraction=0.05) == "int"
    assert infer_label_kind(pd.Series(["a", "b"]), max_bad_fraction=0.05) == "str"
    labels = sorted_labels(pd.Series([7, 1, 3, 1, None], dtype="Int64"))
    assert labels == [1, 3, 7] and all(type(v) is int for v in labels)
    codes = encode([7, 1, 3, 3], labels)
    assert codes.tolist() == [2, 0, 1, 1]
    assert decode(codes, labels).tolist() == [7, 1, 3, 3]
    with pytest.raises(ValueError, match="label 9 is not one of"):
        encode([9], labels)
    assert encode(np.array(["yes", "no"], dtype=object), ["no", "yes"]).tolist() == [1, 0]


def test_the_refusal_streak_counts_batches_since_the_last_pass():
    def refused(batch):
        return {"outcome": "refused", "batch_id": batch}

    log = [
        refused("a"),
        {"outcome": "passed", "batch_id": "b"},
        refused("c"),
        refused("c"),
        refused("d"),
    ]
    assert [r["batch_id"] for r in refusal_streak(log)] == ["c", "d"]
    assert refusal_streak([*log, {"outcome": "accepted", "batch_id": "e"}]) == []
    assert refusal_streak([]) == []
