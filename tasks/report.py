"""What a person reads: the step result, the backtest table and plot, and the artifact contents.

The builders are pure (rows and markdown in, rows and markdown out); the Prefect artifact calls are
the thin tasks at the end.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from tasks.format import fmt


class StepResult(BaseModel):
    """The outcome of one CT step, as the CLI and the backtest report it."""

    model_config = ConfigDict(frozen=True)

    source: str
    batch_id: str
    rows: int
    champion_version: int | None
    champion_metric: float | None
    drift: bool | None
    drifted_columns: list[str]
    quarantined: int = 0
    quarantine_path: str | None = None
    retrained: bool
    p_value: float | None
    promoted: bool
    outcome: str
    new_version: int | None
    champion_after: int | None


BACKTEST_COLUMNS = [
    "batch",
    "source",
    "rows",
    "champion_version",
    "metric_champion",
    "metric_static",
    "drift",
    "drifted_columns",
    "quarantined",
    "retrained",
    "promoted",
    "p_value",
    "new_version",
    "outcome",
]


def backtest_row(batch: int, step: StepResult, metric_static: float | None) -> dict[str, object]:
    """One line of backtest.csv: the champion's accuracy on the batch *before* learning from it."""
    return {
        "batch": batch,
        "source": step.source,
        "rows": step.rows,
        "champion_version": step.champion_version,
        "metric_champion": step.champion_metric,
        "metric_static": metric_static,
        "drift": step.drift,
        "drifted_columns": " ".join(step.drifted_columns),
        "quarantined": step.quarantined,
        "retrained": step.retrained,
        "promoted": step.promoted,
        "p_value": step.p_value,
        "new_version": step.new_version,
        "outcome": step.outcome,
    }


#: The backtest columns a person reads first (CLI table, artifact), and their headings.
SHOWN_COLUMNS = {
    "batch": "batch",
    "rows": "rows",
    "champion_version": "champion",
    "metric_champion": "champion acc",
    "metric_static": "first-model acc",
    "drift": "drift",
    "p_value": "gate p",
    "outcome": "decision",
}


def backtest_markdown(table: pd.DataFrame) -> str:
    """The per-batch backtest table as markdown, for the artifact and the README."""
    shown = list(SHOWN_COLUMNS)
    header = "| " + " | ".join(shown) + " |"
    rule = "|" + "---|" * len(shown)
    body = [
        "| " + " | ".join(fmt(row[c]) for c in shown) + " |"
        for row in table[shown].astype(object).where(table[shown].notna(), None).to_dict("records")
    ]
    return "\n".join([header, rule, *body])


def plot_backtest(table: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Accuracy per batch for CT and the never-updated first model, promotions and drift marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    x = table["batch"]
    for batch in table.loc[table["drift"].fillna(False).astype(bool), "batch"]:
        ax.axvspan(batch - 0.5, batch + 0.5, color="#f4a261", alpha=0.18, lw=0)
    ax.plot(x, table["metric_static"], "o--", color="#888888", label="never-updated first model")
    ax.plot(x, table["metric_champion"], "o-", color="#1d6fa5", lw=2, label="continuous training")
    promoted = table[table["promoted"].astype(bool)]
    for _, row in promoted.iterrows():
        ax.axvline(row["batch"] + 0.5, color="#2a9d8f", ls=":", lw=1.2)
        ax.annotate(
            f"v{int(row['new_version'])}",
            (row["batch"] + 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=8,
            color="#2a9d8f",
        )
    ax.plot([], [], color="#2a9d8f", ls=":", label="promotion (serves from next batch)")
    ax.fill_between([], [], color="#f4a261", alpha=0.3, label="drift detected")
    ax.set_xlabel("batch (champion scored before it learns from the batch)")
    ax.set_ylabel("accuracy")
    ax.set_xticks(list(x))
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title(title, pad=16)
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
