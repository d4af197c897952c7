"""What a person reads: the step result, the backtest table and plot, and the artifact contents.

The builders are pure (rows and markdown in, rows and markdown out); the Prefect artifact calls are
the thin tasks at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from blocks.proof import Proof
from tasks.config import Label, Task
from tasks.format import fmt


class StepResult(BaseModel):
    """The outcome of one CT step, as the CLI and the backtest report it."""

    model_config = ConfigDict(frozen=True)

    source: str
    batch_id: str
    rows: int
    task: Task = "classification"
    #: What `champion_metric` measures: accuracy (classification) or the error the gate decides on.
    metric_name: str = "accuracy"
    champion_version: int | None
    champion_metric: float | None
    drift: bool | None
    drifted_columns: list[str]
    new_classes: list[Label] = Field(default_factory=list)
    refused: bool = False
    quarantined: int = 0
    quarantine_path: str | None = None
    retrained: bool
    p_value: float | None
    promoted: bool
    outcome: str
    new_version: int | None
    champion_after: int | None
    #: The challenger after the step (gate.mode shadow or both), if one is collecting evidence.
    challenger: int | None = None
    #: The decision the step took, as the registry's alias log records it when it promotes: the
    #: test, the rows neither model learned from, the p-value or e-value and the level.
    proof: Proof | None = None
    #: The candidate this step trained (a `tasks.stages.Trained`), handed to a backtest in the
    #: same process, which scores it on the next batch as always-retrain's model. Never stored or
    #: sent (this module is imported by the CLI, which must not import scikit-learn).
    candidate: object | None = Field(default=None, exclude=True, repr=False)


def batch_line(step: StepResult) -> str:
    """One line per backtest batch, for logs and the CLI's progress display."""
    champion = "-" if step.champion_version is None else f"v{step.champion_version}"
    metric = "-" if step.champion_metric is None else f"{step.champion_metric:.3f}"
    drift = {None: "-", True: "yes", False: "no"}[step.drift]
    gate = "" if step.p_value is None else f" (p-value {fmt(step.p_value)})"
    outcome = step.outcome if len(step.outcome) < 90 else step.outcome[:87] + "..."
    return f"champion {champion} {step.metric_name} {metric}, drift {drift}: {outcome}{gate}"


BACKTEST_COLUMNS = [
    "batch",
    "source",
    "rows",
    "task",
    "metric_name",
    "champion_version",
    "metric_champion",
    "metric_static",
    "metric_always",
    "drift",
    "drifted_columns",
    "new_classes",
    "quarantined",
    "refused",
    "retrained",
    "promoted",
    "p_value",
    "new_version",
    "challenger",
    "outcome",
    "proof",
]
#: What a step's outcome says when the batch test kept the champion (tasks/policy/batch.py
#: writes it; the summary counts rejections by it).
REJECTED = "the new model was not better"
#: Metrics for which lower is better, as backtests show them.
LOWER_IS_BETTER = {"mae", "mse", "log_loss", "brier"}


def backtest_row(
    batch: int, step: StepResult, metric_static: float | None, metric_always: float | None = None
) -> dict[str, object]:
    """One line of backtest.csv: the champion's metric on the batch *before* learning from it,
    beside the never-updated first model's and always-retrain's (the newest candidate trained
    before the batch) on the same rows. `proof`: the decision's test as JSON (blocks/proof.py).

    New classes are written as JSON, so their type survives the CSV (`[7]` vs `["7"]`)."""
    return {
        "batch": batch,
        "source": step.source,
        "rows": step.rows,
        "task": step.task,
        "metric_name": step.metric_name,
        "champion_version": step.champion_version,
        "metric_champion": step.champion_metric,
        "metric_static": metric_static,
        "metric_always": metric_always,
        "drift": step.drift,
        "drifted_columns": " ".join(step.drifted_columns),
        "new_classes": json.dumps(step.new_classes) if step.new_classes else "",
        "quarantined": step.quarantined,
        "refused": step.refused,
        "retrained": step.retrained,
        "promoted": step.promoted,
        "p_value": step.p_value,
        "new_version": step.new_version,
        "challenger": step.challenger,
        "outcome": step.outcome,
        "proof": "" if step.proof is None else step.proof.model_dump_json(),
    }


def backtest_table(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=BACKTEST_COLUMNS).astype(
        {"champion_version": "Int64", "new_version": "Int64", "challenger": "Int64"}
    )


class BacktestSummary(BaseModel):
    """The backtest in one sentence's numbers. CT and the never-updated model are compared over
    the batches both were scored on, refused batches included (production served them)."""

    model_config = ConfigDict(frozen=True)

    batches: int
    refused: int
    failed: int
    promotions: int
    rejections: int
    metric: str
    lower_is_better: bool
    compared: int
    ct_mean: float | None
    static_mean: float | None
    #: Always-retrain's mean over the batches all three were scored on, and CT's and the
    #: never-updated model's over those same batches.
    always_compared: int = 0
    always_mean: float | None = None
    ct_mean_always: float | None = None
    static_mean_always: float | None = None

    @property
    def gain(self) -> float | None:
        """How much better CT did than the never-updated model (positive = better)."""
        if self.ct_mean is None or self.static_mean is None:
            return None
        sign = -1.0 if self.lower_is_better else 1.0
        return sign * (self.ct_mean - self.static_mean)

    @property
    def kept(self) -> float | None:
        """The share of always-retrain's gain over the never-updated model that CT kept (1.0: all
        of it; above 1: CT did better than always-retrain; None when always-retrain gained
        nothing)."""
        if None in (self.always_mean, self.ct_mean_always, self.static_mean_always):
            return None
        assert self.always_mean is not None and self.ct_mean_always is not None
        assert self.static_mean_always is not None
        always_gain = self.always_mean - self.static_mean_always
        ct_gain = self.ct_mean_always - self.static_mean_always
        if self.lower_is_better:
            always_gain, ct_gain = -always_gain, -ct_gain
        return None if always_gain <= 0 else ct_gain / always_gain

    def sentence(self) -> str:
        counts = (
            f"{self.batches} batches, {self.refused} refused, {self.promotions} promotions, "
            f"{self.rejections} rejections" + (f", {self.failed} failed" if self.failed else "")
        )
        if self.gain is None:
            return counts + "."
        direction = "lower" if self.lower_is_better else "higher"
        text = (
            f"{counts}. Mean {self.metric} ({direction} is better) over the {self.compared} "
            f"batches both were scored on: CT {self.ct_mean:.4f}, never-updated model "
            f"{self.static_mean:.4f} ({'CT better' if self.gain > 0 else 'CT not better'} by "
            f"{abs(self.gain):.4f})."
        )
        if self.always_mean is None:
            return text
        kept = self.kept
        share = (
            "always-retrain gained nothing over the never-updated model"
            if kept is None
            else f"CT kept {100 * kept:.0f}% of always-retrain's gain"
        )
        return (
            f"{text} Always-retrain (every candidate promoted) {self.always_mean:.4f} over "
            f"{self.always_compared} batches: {share}."
        )


def summarize_backtest(table: pd.DataFrame) -> BacktestSummary:
    metric = str(table["metric_name"].iloc[-1]) if len(table) else "accuracy"
    both = table.dropna(subset=["metric_champion", "metric_static"])
    three = both.dropna(subset=["metric_always"]) if "metric_always" in both else both.iloc[:0]
    return BacktestSummary(
        always_compared=len(three),
        always_mean=float(three["metric_always"].mean()) if len(three) else None,
        ct_mean_always=float(three["metric_champion"].mean()) if len(three) else None,
        static_mean_always=float(three["metric_static"].mean()) if len(three) else None,
        batches=len(table),
        refused=int(table["refused"].astype(bool).sum()),
        failed=int(table["outcome"].astype(str).str.startswith("failed").sum()),
        promotions=int(table["promoted"].astype(bool).sum()),
        rejections=int(table["outcome"].astype(str).str.contains(REJECTED, regex=False).sum()),
        metric=metric,
        lower_is_better=metric in LOWER_IS_BETTER,
        compared=len(both),
        ct_mean=float(both["metric_champion"].mean()) if len(both) else None,
        static_mean=float(both["metric_static"].mean()) if len(both) else None,
    )


#: The backtest columns a person reads first (CLI table, artifact), and their headings.
SHOWN_COLUMNS = {
    "batch": "batch",
    "rows": "rows",
    "champion_version": "champion",
    "metric_champion": "champion",
    "metric_static": "first model",
    "metric_always": "always-retrain",
    "drift": "drift",
    "p_value": "p-value",
    "outcome": "decision",
}


def shown_headings(metric: str) -> list[str]:
    """The headings of SHOWN_COLUMNS with the metric named (e.g. 'champion mae')."""
    return [
        f"{heading} {metric}"
        if column in {"metric_champion", "metric_static", "metric_always"}
        else heading
        for column, heading in SHOWN_COLUMNS.items()
    ]


def backtest_markdown(table: pd.DataFrame) -> str:
    """The per-batch backtest table as markdown, for the artifact and the README."""
    shown = list(SHOWN_COLUMNS)
    metric = str(table["metric_name"].iloc[-1]) if len(table) else "accuracy"
    header = "| " + " | ".join(shown_headings(metric)) + " |"
    rule = "|" + "---|" * len(shown)
    body = [
        "| " + " | ".join(fmt(row[c]) for c in shown) + " |"
        for row in table[shown].astype(object).where(table[shown].notna(), None).to_dict("records")
    ]
    return "\n".join([header, rule, *body])


def plot_backtest(table: pd.DataFrame, path: Path, *, title: str) -> Path:
    """The metric per batch for CT and the never-updated first model; promotions, drift and
    refused batches marked; the axis says which metric and which direction is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize_backtest(table)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    x = table["batch"]
    for batch in table.loc[table["drift"].fillna(False).astype(bool), "batch"]:
        ax.axvspan(batch - 0.5, batch + 0.5, color="#f4a261", alpha=0.18, lw=0)
    for batch in table.loc[table["refused"].astype(bool), "batch"]:
        ax.axvspan(batch - 0.5, batch + 0.5, color="#e63946", alpha=0.15, lw=0, hatch="//")
    ax.plot(x, table["metric_static"], "o--", color="#888888", label="never-updated first model")
    if "metric_always" in table:
        ax.plot(
            x,
            table["metric_always"],
            "s:",
            color="#e76f51",
            ms=4,
            label="always-retrain (every candidate promoted)",
        )
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
    if summary.refused:
        ax.fill_between([], [], color="#e63946", alpha=0.3, label=f"refused ({summary.refused})")
    ax.set_xlabel("batch (champion scored before it learns from the batch)")
    better = "lower" if summary.lower_is_better else "higher"
    ax.set_ylabel(f"{summary.metric} ({better} is better)")
    ax.set_xticks(list(x) if len(x) <= 30 else list(x)[:: max(1, len(x) // 30)])
    if summary.metric == "accuracy":
        ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title(title, pad=16)
    ax.text(
        0.0,
        -0.2,
        summary.sentence(),
        transform=ax.transAxes,
        fontsize=7,
        wrap=True,
        va="top",
    )
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
