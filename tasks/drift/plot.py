"""A picture of drift: reference vs current for the columns that drifted (or the most changed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.drift.compare import DriftReport
from tasks.drift.profile import ReferenceProfile
from tasks.labels import category_label

MAX_PANELS = 6


def plot_drift(
    profile: ReferenceProfile, current: pd.DataFrame, report: DriftReport, path: Path
) -> Path:
    """Overlaid histograms (numeric) or category shares (categorical), one panel per column."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    tested = [c for c in report.columns if c.effect is not None and c.column in current.columns]
    tested.sort(
        key=lambda c: (not c.drifted, -(c.effect or 0.0) / max(1e-12, c.effect_floor or 0.0))
    )
    chosen = tested[:MAX_PANELS]
    cols = min(3, max(1, len(chosen)))
    rows = max(1, int(np.ceil(len(chosen) / cols)))
    fig = Figure(figsize=(4.2 * cols, 3.1 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    reference = profile.sample_frame()
    for ax, item in zip(axes.ravel(), chosen, strict=False):
        colour = "#c0392b" if item.drifted else "#1d6fa5"
        if item.kind == "numeric":
            ref = pd.to_numeric(reference[item.column], errors="coerce").dropna().to_numpy()
            cur = pd.to_numeric(current[item.column], errors="coerce").to_numpy(
                dtype=float, na_value=np.nan
            )
            cur = cur[np.isfinite(cur)]
            both = np.concatenate([ref, cur])
            edges = np.histogram_bin_edges(both, bins=30) if both.size else np.arange(11.0)
            # one filled step path per side, not a patch per bar: the same picture, faster
            for values, shade, label in ((ref, "#888888", "reference"), (cur, colour, "current")):
                if values.size:
                    density, _ = np.histogram(values, bins=edges, density=True)
                    ax.stairs(density, edges, fill=True, alpha=0.5, color=shade, label=label)
            detail = f"moved {item.effect:.2f} sd"
        else:
            shares = category_shares(profile, current, item.column).head(12)
            x = np.arange(len(shares))
            ax.bar(x - 0.2, shares["reference"], 0.4, color="#888888", label="reference")
            ax.bar(x + 0.2, shares["current"], 0.4, color=colour, label="current")
            ax.set_xticks(
                x, [str(i)[:10] for i in shares.index], rotation=30, ha="right", fontsize=8
            )
            detail = f"JS {item.effect:.3f}"
        verdict = "DRIFT" if item.drifted else "ok"
        ax.set_title(
            f"{item.column}: {verdict} ({detail}, p_adj {item.p_adjusted:.1g})",
            fontsize=9,
            color=colour,
        )
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(chosen) :]:
        ax.axis("off")
    fig.suptitle(
        f"Drift vs the champion's reference: {report.n_drifted}/{report.n_columns} features drifted",
        fontsize=11,
    )
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.12, top=0.86, wspace=0.25, hspace=0.55)
    fig.savefig(path)
    return path


def category_shares(profile: ReferenceProfile, current: pd.DataFrame, column: str) -> pd.DataFrame:
    """Each category's share of the reference and of the current rows, by the reference's order;
    categories labelled as the summaries label them (3, 3.0 and "3" are one category)."""
    ref_counts = pd.Series(profile.columns[column].counts, dtype=float)
    cur_counts = current[column].dropna().map(category_label).value_counts().astype(float)
    shares = pd.concat(
        [ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()], axis=1
    ).fillna(0)
    shares.columns = ["reference", "current"]
    return shares.sort_values("reference", ascending=False)
