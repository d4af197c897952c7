"""Drift verdicts: the current data against the champion's reference profile.

Numeric columns: two-sample Kolmogorov-Smirnov on the two bounded samples (exactly
scipy.stats.ks_2samp on them), with the Wasserstein distance in reference standard deviations as
the effect and PSI on the reference's quantile bins. The two samples are cut to the same size
(`equal_samples`), which makes the exact KS p-value an O(n) sum instead of an O(n * m) lattice
count. Categorical columns: chi-square on the full category
counts (scipy.stats.chi2_contingency), with the Jensen-Shannon distance as the effect, PSI, and
unseen categories. Every column: the change of its missing rate, tested too. All p-values are
adjusted together with Benjamini-Hochberg; a column drifts only when significant *and* its effect
reaches the floor, so huge samples do not turn trivia into alarms.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats
from scipy.spatial.distance import jensenshannon

from tasks.config import DriftConfig
from tasks.drift.kernels import compare_sorted, ks_exact_equal_n, on_every_core
from tasks.drift.profile import ReferenceProfile, infer_kinds
from tasks.drift.summary import ColumnSummary, Kind, Role, Summary, iter_chunks, summarize_chunks

PSI_FLOOR_PROPORTION = 1e-4  # empty bins count as this share, so PSI stays finite
KS_EXACT_MAX_N = 10_000  # scipy.stats.ks_2samp's method="auto" is exact up to this size


class ColumnDrift(BaseModel):
    """The verdict on one column, with every number behind it (None where it does not apply)."""

    model_config = ConfigDict(frozen=True)

    column: str
    kind: str
    role: str
    test: str
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    effect: float | None
    effect_name: str
    #: The effect a column must reach to drift (with significance); None where it does not apply.
    effect_floor: float | None = None
    psi: float | None = None
    #: Values per side in the KS / Wasserstein samples (numeric columns).
    sample_size: int | None = None
    missing_rate_reference: float | None = None
    missing_rate_current: float | None = None
    missing_p_adjusted: float | None = None
    infinite_current: int = 0
    unseen_categories: int = 0
    unseen_share: float = 0.0
    #: The first unseen categories (or new classes of a label), as text.
    unseen_values: list[str] = Field(default_factory=list)
    #: Numeric: the reference's [min, max], and the current values outside it (kept: drift).
    reference_range: tuple[float, float] | None = None
    outside_range: int = 0
    outside_range_share: float | None = None
    drifted: bool
    reason: str


class DriftReport(BaseModel):
    """The verdict on a batch. `drifted` considers features only; label and prediction drift are
    reported in `columns` with their role."""

    model_config = ConfigDict(frozen=True)

    drifted: bool
    share_drifted: float
    n_drifted: int
    n_columns: int
    alpha: float
    reference_rows: int
    current_rows: int
    columns: list[ColumnDrift]

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted and c.role == "feature"]

    @property
    def outside_range_columns(self) -> dict[str, float]:
        """Numeric columns with values outside the reference range: column -> share of values."""
        return {
            c.column: c.outside_range_share
            for c in self.columns
            if c.outside_range and c.outside_range_share is not None
        }


def _finite(values: pd.Series) -> np.ndarray:
    array = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return array[np.isfinite(array)]


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    p = np.maximum(reference / max(reference.sum(), 1), PSI_FLOOR_PROPORTION)
    q = np.maximum(current / max(current.sum(), 1), PSI_FLOOR_PROPORTION)
    return float(np.sum((q - p) * np.log(q / p)))


def missing_test(ref: ColumnSummary, cur: ColumnSummary) -> float:
    """P-value that the share of missing (or infinite) values changed: chi-square on the 2 x 2."""
    table = np.array(
        [[ref.missing + ref.infinite, ref.present], [cur.missing + cur.infinite, cur.present]],
        dtype=float,
    )
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


class _Pending(BaseModel):
    """A column's numbers before the p-values are adjusted across columns."""

    column: str
    kind: Kind
    role: Role
    test: str
    statistic: float | None
    p_value: float | None
    effect: float | None
    effect_name: str
    floor: float
    psi: float | None
    sample_size: int | None = None
    ref: ColumnSummary
    cur: ColumnSummary
    missing_p: float
    unseen: int = 0
    unseen_share: float = 0.0
    unseen_values: list[str] = []
    note: str = ""


def equal_samples(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two finite samples cut to the smaller one's size, each keeping its first values.

    Each sample is in random-key order, so its first n values are still a uniform random sample of
    the column's finite values; a missing rate that differs between the two costs a few values,
    not validity (the missing-rate test looks at that change on the full counts).
    """
    n = min(reference.size, current.size)
    return reference[:n], current[:n]


def ks_and_wasserstein(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """KS statistic, its p-value and the Wasserstein distance of two finite, non-empty samples.

    Equal to scipy.stats.ks_2samp (method "auto") and scipy.stats.wasserstein_distance on the same
    samples; equal sizes up to scipy's exact limit take the compiled path.
    """
    a, b = np.sort(reference), np.sort(current)
    comparison = compare_sorted(a, b)
    if a.size == b.size <= KS_EXACT_MAX_N:
        p = ks_exact_equal_n(a.size, comparison.steps)
        if 0.0 <= p <= 1.0:
            return comparison.statistic, p, comparison.wasserstein
    # unequal sizes, large samples, or where scipy's exact sum would give up: scipy itself
    result = stats.ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue), comparison.wasserstein


def _numeric(
    column: str, profile: ReferenceProfile, current: Summary, config: DriftConfig
) -> _Pending:
    ref, cur = profile.columns[column], current.columns[column]
    reference = profile.finite_sample(column)
    ref_sample, cur_sample = equal_samples(
        reference,
        _finite(current.sample[column]) if column in current.sample else np.array([]),
    )
    common = {
        "column": column,
        "kind": "numeric",
        "role": ref.role,
        "ref": ref,
        "cur": cur,
        "missing_p": missing_test(ref, cur),
        "effect_name": "wasserstein_sd",
        "floor": config.wasserstein_floor,
    }
    bins = len(profile.edges[column]) + 1
    counts_ref = np.array([ref.counts.get(str(i), 0) for i in range(bins)], dtype=float)
    counts_cur = np.array([cur.counts.get(str(i), 0) for i in range(bins)], dtype=float)
    index = psi(counts_ref, counts_cur) if counts_ref.sum() and counts_cur.sum() else None
    if ref_sample.size == 0:
        side = "current" if reference.size else "reference"
        return _Pending(
            test="none",
            statistic=None,
            p_value=None,
            effect=None,
            psi=index,
            note=f"no finite values in the {side} data to compare",
            **common,
        )
    statistic, p_value, distance = ks_and_wasserstein(ref_sample, cur_sample)
    sd = ref.sd
    if not math.isfinite(sd) or sd == 0.0:
        effect = 0.0 if distance == 0.0 else math.inf
        note = "the reference is constant, so any change is a full effect"
    else:
        effect, note = distance / sd, ""
    return _Pending(
        test="ks",
        statistic=statistic,
        p_value=p_value,
        effect=effect,
        psi=index,
        sample_size=ref_sample.size,
        note=note,
        **common,
    )


def _categorical_pending(
    column: str, profile: ReferenceProfile, current: Summary, config: DriftConfig
) -> _Pending:
    ref, cur = profile.columns[column], current.columns[column]
    categories = sorted(set(ref.counts) | set(cur.counts))
    counts = np.array(
        [[ref.counts.get(k, 0) for k in categories], [cur.counts.get(k, 0) for k in categories]],
        dtype=float,
    )
    unseen = [k for k in cur.counts if k not in ref.counts]
    unseen_rows = sum(cur.counts[k] for k in unseen)
    common = {
        "column": column,
        "kind": "categorical",
        "role": ref.role,
        "ref": ref,
        "cur": cur,
        "missing_p": missing_test(ref, cur),
        "effect_name": "jensen_shannon",
        "floor": config.js_floor,
        "unseen": len(unseen),
        "unseen_share": unseen_rows / cur.present if cur.present else 0.0,
        "unseen_values": sorted(unseen, key=lambda k: -cur.counts[k])[:10],
    }
    if counts[0].sum() == 0 or counts[1].sum() == 0:
        side = "current" if counts[1].sum() == 0 else "reference"
        return _Pending(
            test="none",
            statistic=None,
            p_value=None,
            effect=None,
            psi=None,
            note=f"no values in the {side} data to compare",
            **common,
        )
    kept = counts[:, counts.sum(axis=0) > 0]
    if kept.shape[1] < 2:
        statistic, p = 0.0, 1.0
    else:
        result = stats.chi2_contingency(kept)
        statistic, p = float(result.statistic), float(result.pvalue)
    shares = counts / counts.sum(axis=1, keepdims=True)
    distance = float(jensenshannon(shares[0], shares[1], base=2))
    return _Pending(
        test="chi2",
        statistic=statistic,
        p_value=p,
        effect=distance,
        psi=psi(counts[0], counts[1]),
        **common,
    )


def _fmt_p(p: float) -> str:
    return f"{p:.2g}"


def _missing_share(summary: ColumnSummary) -> float:
    """The share of a side's rows that were missing or infinite."""
    return (summary.missing + summary.infinite) / summary.rows if summary.rows else 0.0


def _headline(item: _Pending, p_adj: float | None, alpha: float) -> str:
    """The verdict's first clause: drifted (significant and large), significant but small, no
    evidence, or not tested."""
    name = {"wasserstein_sd": "moved", "jensen_shannon": "Jensen-Shannon distance"}[
        item.effect_name
    ]
    if item.effect is None:
        size = item.note
    elif item.effect_name == "wasserstein_sd":
        size = f"{name} {item.effect:.2f} reference sd (floor {item.floor:g})"
    else:
        size = f"{name} {item.effect:.3f} (floor {item.floor:g})"
    significant = p_adj is not None and p_adj < alpha
    large = item.effect is not None and item.effect >= item.floor
    if p_adj is None:
        return f"{item.column}: not tested ({item.note})"
    if significant and large:
        return (
            f"{item.column} drifted: {item.test} adjusted p {_fmt_p(p_adj)} < {alpha:g} and {size}"
        )
    if significant:
        return f"{item.column}: a significant (adjusted p {_fmt_p(p_adj)}) but small change, {size}; not drift"
    return f"{item.column}: no evidence of change ({item.test} adjusted p {_fmt_p(p_adj)})"


def _reference_range(item: _Pending) -> tuple[float, float] | None:
    if item.kind == "numeric" and item.ref.minimum is not None and item.ref.maximum is not None:
        return (item.ref.minimum, item.ref.maximum)
    return None


def _details(
    item: _Pending,
    missing_adj: float,
    missing_drift: bool,
    reference_range: tuple[float, float] | None,
) -> str:
    """What the verdict adds after its headline: missing values, the share outside the reference
    range, unseen categories, and the test's note."""
    text = ""
    if missing_drift:
        text += (
            f"; missing{' or infinite' if item.cur.infinite else ''} values went from "
            f"{_missing_share(item.ref):.1%} to {_missing_share(item.cur):.1%} "
            f"(adjusted p {_fmt_p(missing_adj)})"
        )
    elif item.cur.infinite:
        text += f"; {item.cur.infinite} infinite values were set aside"
    outside = item.cur.below_range + item.cur.above_range
    if outside and reference_range:
        text += (
            f"; {outside / item.cur.present:.1%} of values outside the reference range "
            f"[{reference_range[0]:.4g}, {reference_range[1]:.4g}] ({item.cur.below_range} below, "
            f"{item.cur.above_range} above; kept and learned)"
        )
    if item.unseen:
        what = "new classes" if item.role == "label" else "categories never seen in the reference"
        shown = ", ".join(item.unseen_values[:5]) + (", ..." if item.unseen > 5 else "")
        text += f"; {item.unseen} {what} ({shown}: {item.unseen_share:.1%} of rows)"
    return text


def _verdict(
    item: _Pending, p_adj: float | None, missing_adj: float, config: DriftConfig
) -> ColumnDrift:
    """A column's drift: a significant (adjusted p < alpha) and large (effect at or above its
    floor) change, or a significant change in the missing rate by at least `missing_floor`."""
    alpha = config.alpha
    significant = p_adj is not None and p_adj < alpha
    large = item.effect is not None and item.effect >= item.floor
    ref_missing, cur_missing = _missing_share(item.ref), _missing_share(item.cur)
    missing_drift = missing_adj < alpha and abs(cur_missing - ref_missing) >= config.missing_floor
    reference_range = _reference_range(item)
    sentence = _headline(item, p_adj, alpha) + _details(
        item, missing_adj, missing_drift, reference_range
    )
    if item.note and p_adj is not None and item.note not in sentence:
        sentence += f" ({item.note})"
    outside = item.cur.below_range + item.cur.above_range
    return ColumnDrift(
        column=item.column,
        kind=item.kind,
        role=item.role,
        test=item.test,
        statistic=item.statistic,
        p_value=item.p_value,
        p_adjusted=p_adj,
        effect=None if item.effect is None else float(item.effect),
        effect_name=item.effect_name,
        effect_floor=item.floor,
        psi=item.psi,
        sample_size=item.sample_size,
        missing_rate_reference=ref_missing,
        missing_rate_current=cur_missing,
        missing_p_adjusted=missing_adj,
        infinite_current=item.cur.infinite,
        unseen_categories=item.unseen,
        unseen_share=item.unseen_share,
        unseen_values=item.unseen_values,
        reference_range=reference_range,
        outside_range=outside,
        outside_range_share=outside / item.cur.present
        if reference_range and item.cur.present
        else None,
        drifted=bool((significant and large) or missing_drift),
        reason=sentence + ".",
    )


def compute_drift(
    profile: ReferenceProfile,
    current: pd.DataFrame | str | Path,
    config: DriftConfig | None = None,
) -> DriftReport:
    """Compare `current` (a DataFrame, or a Parquet/CSV path read in chunks) with the profile."""
    summary, schema = summarize_chunks(iter_chunks(current), **summary_options(profile))
    return compare_summary(profile, summary, schema, config)


def summary_options(profile: ReferenceProfile) -> dict[str, Any]:
    """How current data is summarised to be compared with `profile` (its edges, kinds, roles,
    sample size and range; the sample seeded apart from the reference's): the same for a frame,
    a file read in chunks, a dataset scanned in record batches or reduced on a Dask cluster."""
    return {
        "kinds": profile.kinds,
        "edges": profile.edges,
        "roles": profile.roles,
        "sample_rows": profile.sample_rows,
        "seed": profile.seed + 1,
        "ranges": {
            c: (s.minimum, s.maximum)
            for c, s in profile.columns.items()
            if s.kind == "numeric" and s.minimum is not None and s.maximum is not None
        },
    }


def _adjusted(pending: list[_Pending]) -> tuple[list[float | None], dict[str, float]]:
    """Benjamini-Hochberg over one family: every column's test and the missing-rate tests.

    A missing-rate test joins the family only where something was missing on either side: an
    untestable hypothesis would only make the correction stricter for the others."""
    main = [p.p_value for p in pending if p.p_value is not None]
    testable = [
        p for p in pending if p.ref.missing + p.ref.infinite + p.cur.missing + p.cur.infinite
    ]
    family = np.array(main + [p.missing_p for p in testable], dtype=float)
    adjusted = stats.false_discovery_control(family, method="bh") if family.size else family
    main_adj = iter(adjusted[: len(main)])
    per_column = [None if p.p_value is None else float(next(main_adj)) for p in pending]
    missing_adj = dict(zip((p.column for p in testable), adjusted[len(main) :], strict=True))
    return per_column, missing_adj


def _untested(
    column: str, kind: str, role: str, test: str, drifted: bool, reason: str
) -> ColumnDrift:
    return ColumnDrift(
        column=column,
        kind=kind,
        role=role,
        test=test,
        statistic=None,
        p_value=None,
        p_adjusted=None,
        effect=None,
        effect_name="-",
        drifted=drifted,
        reason=reason,
    )


def _absent(profile: ReferenceProfile, column: str) -> ColumnDrift:
    """A reference column missing from the current data: drift for a feature; a label or a
    prediction column may simply not be there yet."""
    role = profile.roles[column]
    feature = role == "feature"
    reason = (
        f"{column}: in the reference but missing from the current data."
        if feature
        else f"{column}: the {role} is not in this batch; not tested."
    )
    return _untested(column, profile.kinds[column], role, "column-missing", feature, reason)


def compare_summary(
    profile: ReferenceProfile,
    summary: Summary,
    schema: pd.DataFrame,
    config: DriftConfig | None = None,
) -> DriftReport:
    """Drift of data summarised with `summary_options(profile)` (`schema`: its columns and
    dtypes, no rows), however the summary was built."""
    config = config or DriftConfig()

    def judge(column: str) -> _Pending:
        if profile.kinds[column] == "numeric":
            return _numeric(column, profile, summary, config)
        return _categorical_pending(column, profile, summary, config)

    pending = on_every_core(judge, [c for c in profile.kinds if c in summary.columns])
    per_column, missing_adj = _adjusted(pending)
    columns = [
        _verdict(p, p_adj, missing_adj.get(p.column, 1.0), config)
        for p, p_adj in zip(pending, per_column, strict=True)
    ]
    columns += [_absent(profile, c) for c in profile.kinds if c not in summary.columns]
    new = [str(c) for c in schema.columns if str(c) not in profile.kinds]
    if new:
        kinds = infer_kinds(schema[new], None)  # from the dtypes: the sample has no new columns
        reason = "{}: new column, not in the reference; not tested."
        columns += [
            _untested(c, kinds[c], "feature", "new-column", False, reason.format(c)) for c in new
        ]
    features = [c for c in columns if c.role == "feature" and c.test != "new-column"]
    weights = config.importance or {}
    total = sum(weights.get(c.column, 1.0) for c in features)
    share = sum(weights.get(c.column, 1.0) for c in features if c.drifted) / total if total else 0.0
    n_drifted = sum(c.drifted for c in features)
    return DriftReport(
        drifted=n_drifted > 0 and share > config.min_share_drifted,
        share_drifted=share,
        n_drifted=n_drifted,
        n_columns=len(features),
        alpha=config.alpha,
        reference_rows=profile.rows,
        current_rows=summary.rows,
        columns=columns,
    )
