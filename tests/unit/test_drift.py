"""The drift engine against scipy, its verdict rule, merging, and bad input (issue 4)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from tasks.config import DriftConfig
from tasks.drift import (
    DriftInputError,
    build_profile,
    compute_drift,
    drift_table,
    merge,
    psi,
    summarize,
)
from tasks.drift.plot import category_shares
from tasks.drift.summary import KEY


def frame(rng, n, *, shift=0.0, p=(0.5, 0.3, 0.2), scale=1.0):
    return pd.DataFrame(
        {
            "a": rng.normal(shift, scale, n),
            "b": rng.exponential(1, n),
            "c": rng.choice(["x", "y", "z"], n, p=p),
        }
    )


def by_column(report):
    return {c.column: c for c in report.columns}


@pytest.mark.parametrize("shift", [0.0, 0.08, 0.3])
def test_ks_equals_scipy_on_the_stored_samples(shift):
    rng = np.random.default_rng(0)
    ref, cur = frame(rng, 3000), frame(rng, 2000, shift=shift)
    cur.loc[:9, "a"] = np.nan
    profile = build_profile(ref, sample_rows=10_000)
    columns = by_column(compute_drift(profile, cur))
    col = columns["a"]
    # the samples hold every finite value; the reference's is cut to the current's 1,990
    used = profile.finite_sample("a")[:1990]
    assert col.sample_size == 1990 and np.isin(used, ref["a"]).all()
    current = cur["a"].dropna().to_numpy()
    expected = stats.ks_2samp(used, current)
    assert col.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert col.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    sd = ref["a"].std(ddof=1)
    w = stats.wasserstein_distance(used, current) / sd
    assert col.effect == pytest.approx(w, rel=1e-9) and col.effect_name == "wasserstein_sd"
    # column "b" has no missing values: the current sample is whole, the reference's its first 2,000
    b = columns["b"]
    expected = stats.ks_2samp(profile.finite_sample("b")[:2000], cur["b"])
    assert b.sample_size == 2000 and b.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi_square_js_psi_and_unseen_categories_equal_their_definitions():
    ref = pd.DataFrame({"c": ["x"] * 50 + ["y"] * 30 + ["z"] * 20})
    cur = pd.DataFrame({"c": ["x"] * 20 + ["y"] * 40 + ["z"] * 30 + ["new"] * 10 + [None] * 5})
    col = by_column(compute_drift(build_profile(ref), cur))["c"]
    table = np.array([[0, 50, 30, 20], [10, 20, 40, 30]])  # sorted categories: new, x, y, z
    expected = stats.chi2_contingency(table)
    assert col.statistic == pytest.approx(expected.statistic) and col.p_value == pytest.approx(
        expected.pvalue
    )
    shares = table / table.sum(axis=1, keepdims=True)
    assert col.effect == pytest.approx(jensenshannon(shares[0], shares[1], base=2))
    assert col.psi == pytest.approx(psi(table[0].astype(float), table[1].astype(float)))
    assert col.unseen_categories == 1 and col.unseen_share == pytest.approx(0.1)
    assert "1 categories never seen" in col.reason


def test_psi_on_reference_quantile_bins():
    rng = np.random.default_rng(1)
    ref, cur = frame(rng, 5000), frame(rng, 5000, shift=0.5)
    profile = build_profile(ref, bins=10)
    edges = np.array(profile.edges["a"])
    ref_counts = np.bincount(np.searchsorted(edges, ref["a"], side="right"), minlength=10)
    cur_counts = np.bincount(np.searchsorted(edges, cur["a"], side="right"), minlength=10)
    p, q = ref_counts / 5000, cur_counts / 5000
    col = by_column(compute_drift(profile, cur))["a"]
    assert col.psi == pytest.approx(np.sum((q - p) * np.log(q / p)))
    assert np.allclose(ref_counts, 500, atol=1)  # quantile bins hold equal shares of the reference


def test_bh_across_columns_and_the_effect_floor():
    rng = np.random.default_rng(2)
    ref = frame(rng, 20_000)
    report = compute_drift(build_profile(ref), frame(rng, 20_000, shift=0.4))
    # the family: three distribution tests (nothing is missing, so no missing-rate tests)
    family = np.array([c.p_value for c in report.columns])
    expected = stats.false_discovery_control(family, method="bh")[:3]
    assert [c.p_adjusted for c in report.columns] == pytest.approx(expected)
    assert report.drifted_columns == ["a"]
    # a tiny shift is significant with many rows but below the floor: not drift
    tiny = compute_drift(build_profile(ref, sample_rows=20_000), frame(rng, 20_000, shift=0.05))
    a = by_column(tiny)["a"]
    assert a.p_adjusted < 0.05 and not a.drifted and "small change" in a.reason
    assert not tiny.drifted


def test_missing_rate_change_is_drift_and_named():
    rng = np.random.default_rng(3)
    ref, cur = frame(rng, 2000), frame(rng, 2000)
    cur.loc[:600, "b"] = np.nan
    col = by_column(compute_drift(build_profile(ref), cur))["b"]
    assert col.drifted and col.missing_rate_current == pytest.approx(601 / 2000)
    assert "missing values went from 0.0% to 30.0%" in col.reason


def test_importance_weighted_share_and_threshold():
    rng = np.random.default_rng(4)
    ref, cur = frame(rng, 3000), frame(rng, 3000, shift=1.0)
    profile = build_profile(ref)
    weighted = compute_drift(profile, cur, DriftConfig(importance={"a": 8.0}))
    assert weighted.share_drifted == pytest.approx(8 / 10)
    assert not compute_drift(profile, cur, DriftConfig(min_share_drifted=0.5)).drifted
    assert compute_drift(
        profile, cur, DriftConfig(importance={"a": 8.0}, min_share_drifted=0.5)
    ).drifted


def test_label_and_prediction_drift_are_reported_but_not_counted():
    rng = np.random.default_rng(5)
    ref = frame(rng, 2000).assign(y=rng.integers(0, 2, 2000), p=rng.uniform(0, 1, 2000))
    cur = frame(rng, 2000).assign(
        y=(rng.random(2000) < 0.9).astype(int), p=rng.uniform(0.5, 1, 2000)
    )
    report = compute_drift(build_profile(ref, categorical=["y"], label="y", prediction="p"), cur)
    cols = by_column(report)
    assert cols["y"].drifted and cols["y"].role == "label"
    assert cols["p"].drifted and cols["p"].role == "prediction"
    assert not report.drifted and report.n_columns == 3


@settings(deadline=None, max_examples=25)
@given(st.integers(0, 10_000), st.integers(50, 400))
def test_no_drift_against_itself_and_row_order_does_not_matter(seed, n):
    rng = np.random.default_rng(seed)
    ref = frame(rng, n)
    profile = build_profile(ref, sample_rows=10_000)
    itself = compute_drift(profile, ref)
    assert itself.n_drifted == 0
    shuffled = ref.sample(frac=1, random_state=seed)
    again = compute_drift(profile, shuffled)
    assert [c.p_value for c in again.columns] == pytest.approx([c.p_value for c in itself.columns])
    assert [c.effect for c in again.columns] == pytest.approx([c.effect for c in itself.columns])


def test_summaries_merge_exactly():
    rng = np.random.default_rng(6)
    data = frame(rng, 3000)
    data.loc[::7, "b"] = np.nan
    profile = build_profile(data.iloc[:1000])
    kwargs = {"kinds": profile.kinds, "edges": profile.edges, "sample_rows": 500, "seed": 3}
    whole = summarize(data, **kwargs)
    parts = merge(
        summarize(data.iloc[:1200], **kwargs),
        summarize(data.iloc[1200:], row_offset=1200, **kwargs),
    )
    assert parts.rows == whole.rows and parts.columns.keys() == whole.columns.keys()
    for name, col in whole.columns.items():
        got, want = parts.columns[name].model_dump(), col.model_dump()
        for key in ("total", "m2"):  # float sums: equal up to summation order
            assert got.pop(key) == pytest.approx(want.pop(key), rel=1e-12)
        assert got == want  # counts, missing, min/max, kind: exactly
    pd.testing.assert_frame_equal(parts.sample, whole.sample)
    assert whole.sample[KEY].is_monotonic_increasing


def test_parquet_is_read_in_row_groups_with_the_same_result(tmp_path):
    rng = np.random.default_rng(7)
    ref, cur = frame(rng, 4000), frame(rng, 30_000, shift=0.3)
    profile = build_profile(ref)
    path = tmp_path / "cur.parquet"
    cur.to_parquet(path, row_group_size=4000)
    from_file = compute_drift(profile, path)
    in_memory = compute_drift(profile, cur)
    assert from_file.model_dump() == in_memory.model_dump()
    csv = tmp_path / "cur.csv"
    cur.to_csv(csv, index=False)
    assert compute_drift(profile, csv).drifted_columns == in_memory.drifted_columns


@pytest.mark.parametrize(
    ("mutate", "column", "text"),
    [
        (lambda f: f.assign(a=np.nan), "a", "no finite values in the current data"),
        (lambda f: f.drop(columns="b"), "b", "missing from the current data"),
        (lambda f: f.assign(extra=1.0), "extra", "new column"),
        (
            lambda f: f.assign(a=np.r_[np.inf, -np.inf, f["a"].to_numpy()[2:]]),
            "a",
            "2 infinite values",
        ),
    ],
)
def test_bad_input_gives_a_clear_result_naming_the_column(mutate, column, text):
    rng = np.random.default_rng(8)
    profile = build_profile(frame(rng, 500))
    cols = by_column(compute_drift(profile, mutate(frame(rng, 500))))
    assert text in cols[column].reason and cols[column].reason.startswith(column)


def test_a_new_column_is_reported_with_its_kind():
    rng = np.random.default_rng(9)
    profile = build_profile(frame(rng, 300))
    cols = by_column(compute_drift(profile, frame(rng, 300).assign(x=1.5, y="u")))
    assert (cols["x"].kind, cols["y"].kind) == ("numeric", "categorical")
    assert cols["x"].test == "new-column" and not cols["x"].drifted


def test_constant_reference_and_changed_dtype_and_empty_data():
    const = pd.DataFrame({"a": np.ones(200), "c": ["x"] * 200})
    profile = build_profile(const)
    same = compute_drift(profile, const)
    assert not same.drifted
    moved = by_column(compute_drift(profile, const.assign(a=2.0)))["a"]
    assert moved.drifted and "reference is constant" in moved.reason
    with pytest.raises(DriftInputError, match=r"column 'a'.*non-numeric values, e\.g\. 'abc'"):
        compute_drift(profile, const.assign(a=["abc"] * 200))
    with pytest.raises(DriftInputError, match="no rows"):
        compute_drift(profile, const.iloc[:0])
    with pytest.raises(DriftInputError, match="no rows"):
        build_profile(const.iloc[:0])


def test_integer_coded_categories_match_whatever_their_dtype():  # found by benchmarks/drift_quality.py's author
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"store": rng.integers(0, 5, 2000)})
    cur = pd.DataFrame({"store": rng.integers(0, 5, 2000).astype(float)})
    cur.loc[0, "store"] = np.nan
    report = compute_drift(build_profile(ref, categorical=["store"]), cur)
    assert not report.drifted and report.columns[0].unseen_categories == 0
    as_category = cur.assign(store=cur["store"].astype("category"))
    assert not compute_drift(build_profile(ref, categorical=["store"]), as_category).drifted


def test_sd_is_exact_when_the_mean_dwarfs_the_spread():
    rng = np.random.default_rng(12)
    values = 1e9 + rng.normal(0, 1, 20_000)
    profile = build_profile(pd.DataFrame({"x": values}))
    assert profile.columns["x"].sd == pytest.approx(np.std(values, ddof=1), rel=1e-6)
    shifted = compute_drift(profile, pd.DataFrame({"x": values[:5000] + 0.5}))
    assert shifted.drifted and shifted.columns[0].effect == pytest.approx(0.5, rel=0.1)
    parts = merge(
        summarize(pd.DataFrame({"x": values[:7000]}), kinds={"x": "numeric"}, edges=profile.edges),
        summarize(
            pd.DataFrame({"x": values[7000:]}),
            kinds={"x": "numeric"},
            edges=profile.edges,
            row_offset=7000,
        ),
    )
    assert parts.columns["x"].sd == pytest.approx(np.std(values, ddof=1), rel=1e-6)


def test_drift_table_says_what_each_test_saw():
    rng = np.random.default_rng(8)
    ref, cur = frame(rng, 800), frame(rng, 600, shift=1.0)
    rows = {r["column"]: r for r in drift_table(compute_drift(build_profile(ref), cur))}
    assert rows["a"]["tested_on"] == "600-value samples" and rows["a"]["verdict"] == "DRIFT"
    assert rows["c"]["tested_on"] == "all counts"
    assert list(rows["a"])[:5] == ["column", "role", "verdict", "test", "p_adjusted"]


def test_plot_shares_label_categories_as_the_summaries_do():
    ref = pd.DataFrame({"k": [1.0] * 60 + [2.0] * 40})
    cur = pd.DataFrame({"k": [1.0] * 30 + [2.0] * 50 + [None] * 5 + [3.0] * 20})
    shares = category_shares(build_profile(ref, categorical=["k"]), cur, "k")
    assert list(shares.index) == ["1", "2", "3"]  # not "1.0": one row per category
    assert shares.loc["1"].tolist() == pytest.approx([0.6, 0.3])
    assert shares.loc["3"].tolist() == pytest.approx([0.0, 0.2])


def test_values_outside_the_reference_range_are_counted_not_refused():
    """Issue 12: the share of rows outside the reference range, per numeric column, exactly."""
    rng = np.random.default_rng(40)
    reference = pd.DataFrame({"x": rng.uniform(0, 1, 2000), "flag": np.zeros(2000)})
    current = pd.DataFrame({"x": rng.uniform(0, 2, 1000), "flag": (rng.random(1000) < 0.3) * 1.0})
    current.loc[:4, "x"] = [-0.5, np.inf, -np.inf, np.nan, 0.5]
    report = compute_drift(build_profile(reference), current)
    x, flag = by_column(report)["x"], by_column(report)["flag"]
    values = current["x"].to_numpy()
    finite = values[np.isfinite(values)]
    low, high = reference["x"].min(), reference["x"].max()
    outside = np.count_nonzero((finite < low) | (finite > high))
    assert x.reference_range == (low, high) and x.outside_range == outside
    assert x.outside_range_share == pytest.approx(outside / finite.size)
    assert "outside the reference range" in x.reason and x.drifted
    assert flag.outside_range == int((current["flag"] == 1).sum())  # a 0/1 indicator that flipped
    assert report.outside_range_columns.keys() == {"x", "flag"}
    rows = {r["column"]: r for r in drift_table(report)}
    assert rows["x"]["outside_ref_range"].endswith("(kept)")
    same = compute_drift(build_profile(reference), reference)
    assert by_column(same)["x"].outside_range == 0 and same.outside_range_columns == {}


def test_a_new_class_of_the_label_is_reported_as_a_new_class():
    """Issue 12: a label value the champion never saw is named in the drift report."""
    rng = np.random.default_rng(41)
    ref = frame(rng, 1000).assign(plan=rng.choice(["basic", "pro"], 1000))
    cur = frame(rng, 1000).assign(plan=rng.choice(["basic", "pro", "enterprise"], 1000))
    report = compute_drift(build_profile(ref, categorical=["plan"], label="plan"), cur)
    plan = by_column(report)["plan"]
    assert plan.role == "label" and plan.unseen_values == ["enterprise"]
    assert "1 new classes (enterprise" in plan.reason
    assert drift_table(report)[0]["new_values"].startswith("1 (")


def test_a_numeric_label_drifts_as_a_number():
    """Issue 13: a regression target is profiled and compared as a numeric column."""
    rng = np.random.default_rng(42)
    ref = frame(rng, 1000).assign(units=rng.normal(100, 10, 1000))
    cur = frame(rng, 1000).assign(units=rng.normal(130, 10, 1000))
    units = by_column(compute_drift(build_profile(ref, label="units"), cur))["units"]
    assert units.kind == "numeric" and units.test == "ks" and units.drifted
    assert units.outside_range > 0
