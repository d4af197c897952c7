"""`gate.mode: auto`: five policies run side by side, and the one with the better record serves.

No single gate mode is right on every stream (benchmarks/policies.py, README "The challenger"):
promoting at once wins under steady drift, never updating wins when rows cluster by region or the
concept keeps reversing, and a model trained on the newest batch alone wins when the concept flips
every few batches. Which case a stream is in shows in how the policies do on it, so `auto` runs
them all as *lineages*, each its own line of champions sharing only the data:

- `never`: the champion when `auto` began (the first model);
- `batch`: the configured training window, promoted when it passes the paired gate against this
  lineage's model;
- `always`: the configured training window, promoted on every batch;
- `batch-h0`, `always-h0`: the same with a candidate trained on the new batch alone.

Two candidates are trained per step (the window, and the batch alone), whatever is served. Each
lineage is a registry alias (`lineage-<name>`, moved by compare-and-swap like the champion). On
every batch, before anything learns from it, every lineage's model is scored on the valid rows; the
scores are one record of the model's selection log (`<name>/logs/selection/`, appended by
compare-and-swap, one record per batch), with the lineage that served the batch.

**The switch rule.** Serve `never` first. After each batch, for every other lineage k, take the
per-batch differences d_t = g_k,t - g_served,t over the last `gate.select_window` records (g: the
metric, signed so that larger is better) and the one-sided one-sample t-test of mean(d) > 0
(t = mean(d) / (sd(d)/sqrt(n)), n - 1 degrees of freedom; scipy.stats.ttest_1samp). Switch to the
lineage with the largest t among those with p < `gate.select_alpha`; a lineage identical to the
served one on every batch (the same model) is not a contender. The champion alias then points at
the chosen lineage's model (a `ct.model.promoted` event with `"via": "selection"` and the test).

**A sudden change.** The record can only show that another lineage is better on a batch *after*
the one that changed: every lineage's model was trained before it. Waiting for that record costs a
whole batch served by a stale model, the one cost the t-test cannot avoid (the demo's abrupt change,
a concept that reverses). But the change shows at once in the served lineage's own score: it falls
far below its earlier batches. So, first, the newest score x of the served lineage is compared with
its m earlier scores in the window (mean x̄, standard deviation s): under "nothing changed", with
batch scores independent and normal, T = (x̄ - x) / (s·sqrt(1 + 1/m)) follows Student's t with
m - 1 degrees of freedom (the one-sided prediction interval for a new observation, e.g. Hahn &
Meeker, *Statistical Intervals*, 1991, §4.7). If P(t_{m-1} ≥ T) < `gate.change_alpha` (m ≥ 2),
the served lineage has met a change, and `always-h0` serves next: the model trained on the changed
batch alone, what a drift detector's "retrain on the data since the change" (DDM, Gama et al.
2004; ADWIN, Bifet & Gavaldà 2007) does. From there the t-test goes on as before, and moves to
another lineage when the record says so. A false alarm costs one batch served by `always-h0`,
whose record then sends the selection back; its rate per batch is `change_alpha` (0.001) under
normal batch scores (measured by simulation in tests/unit/test_selection.py), higher under the
heavier tails of clustered rows, which is why it is so small.

**Probation.** The batches that made a lineage win the t-test are the ones where it was luckiest:
the winner's curse of choosing the best of several by the same data that measures them (Thaler
1988; for models, "selection bias in performance estimates", Cawley & Talbot, JMLR 2010). When
rows cluster by region or regime, a lineage whose models chase the last region wins two lucky
batches against `never`, the t-test at 0.2 switches, and its next models, fitted to other regions,
serve for many batches. The first batch a switched-to lineage serves is the first evidence that
did not choose it, as the issue's "judge the candidate on the next batch" says of models. So a
lineage that replaces `never` serves its first batch on probation: if it scored worse there than
`never`, `never` serves again, and the dropped lineage's record starts over from the batch after
(its lucky batches no longer count; the record says so: `dropped`). Only a switch away from
`never` is on probation. `never` is the one lineage whose model never changes, the model issue
14's bar guards (at most 0.5 points below it); between learning lineages, under a concept that
reverses (`flips`), a worse first batch is mostly the next reversal, and probation on every
switch cost `flips` 0.7 accuracy points and `flips-regression` 1.2 % of MAE over 13 seeds
(replayed: benchmarks/switch_rules.py) and gained nothing measurable elsewhere. A change test's
switch away from `never` is on probation too; when a lineage fails it, the change test is made on
`never`, which would serve again: a real change on that batch made both fall, and then
`always-h0` serves.

The rule is a replay of the policies' own backtests: no lineage depends on which one is served,
so what `auto` serves on batch t is exactly what the chosen policy's champion scored there.
Measured that way (benchmarks/selection.py on benchmarks/policies.py's backtests) before it was
built, and with the real step since (README). The t-test over a window is not an anytime-valid
test, nor needs to be: the switch costs nothing but a batch served by the other lineage, which is
itself scored, so a wrong switch is undone by the same rule; alpha 0.2 trades a batch or two of
waiting against switching on noise. Pure functions first; the Prefect task at the end.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict
from scipy import stats

from blocks.registry import ModelRegistry
from tasks.artifacts import publish_markdown

LOG = "selection"
#: The lineages, in the order ties are broken; the first is served first.
LINEAGES = ("never", "batch", "always", "always-h0", "batch-h0")
START = LINEAGES[0]
#: Lineages trained on the new batch alone.
BATCH_ONLY = frozenset({"always-h0", "batch-h0"})
#: Lineages that take their candidate whatever the gate says.
ALWAYS = frozenset({"always", "always-h0"})


def alias_of(lineage: str) -> str:
    return f"lineage-{lineage}"


class SelectionRecord(BaseModel):
    """Every lineage's metric on one batch, before anything learned from it."""

    model_config = ConfigDict(frozen=True)

    batch_id: str
    #: The version every lineage started from (a new contract or a reset starts a new run).
    start: int
    #: The lineage that served this batch.
    served: str
    metric: str
    higher_is_better: bool
    versions: dict[str, int]
    metrics: dict[str, float]
    #: The lineage the choice of `served` dropped: switched to one batch before, it scored worse
    #: there than the one it replaced (probation); its record counts again from this batch on.
    dropped: str | None = None

    def gains(self) -> dict[str, float]:
        sign = 1.0 if self.higher_is_better else -1.0
        return {k: sign * v for k, v in self.metrics.items()}


class Contender(BaseModel):
    """One lineage against the served one over the window."""

    model_config = ConfigDict(frozen=True)

    lineage: str
    #: The batches of the test: the window, from the newest batch that dropped this lineage.
    batches: int
    mean_gain: float
    t: float | None
    p_value: float | None


#: Served after a sudden change: the model trained on the changed batch alone.
AFTER_CHANGE = "always-h0"


class Change(BaseModel):
    """The served lineage's score on the newest batch against its earlier ones in the window: a
    fall outside their one-sided prediction interval is a sudden change."""

    model_config = ConfigDict(frozen=True)

    lineage: str
    #: The newest batch's metric, and the mean of the earlier batches' (as the record has them).
    metric: float
    mean_before: float
    batches_before: int
    t: float
    p_value: float


class Probation(BaseModel):
    """A lineage's first batch served, against the lineage it replaced."""

    model_config = ConfigDict(frozen=True)

    lineage: str
    replaced: str
    metric: float
    replaced_metric: float
    #: Worse than the one it replaced: dropped, and the replaced lineage serves again.
    failed: bool


class Choice(BaseModel):
    """The lineage to serve next, and the test behind it."""

    model_config = ConfigDict(frozen=True)

    served: str
    chosen: str
    batches: int
    contenders: list[Contender]
    #: The change test on the served lineage (None: too few batches, or no spread to judge by).
    change: Change | None = None
    change_alpha: float = 0.0
    #: The served lineage's first batch, when it is on probation (None otherwise).
    probation: Probation | None = None

    @property
    def dropped(self) -> str | None:
        """The lineage this choice drops (its probation failed, and no sudden change came
        first)."""
        p = self.probation
        return p.lineage if p is not None and p.failed and not self.changed else None

    @property
    def changed(self) -> bool:
        """The served lineage met a sudden change (and so `AFTER_CHANGE` serves next)."""
        return self.change is not None and self.change.p_value < self.change_alpha

    @property
    def switched(self) -> bool:
        return self.chosen != self.served

    def evidence(self) -> dict[str, Any]:
        """What travels in the promotion event."""
        won = next((c for c in self.contenders if c.lineage == self.chosen), None)
        return {
            "from": self.served,
            "to": self.chosen,
            "batches": self.batches,
            "mean_gain": None if won is None else won.mean_gain,
            "t": None if won is None else won.t,
            "p_value": None if won is None else won.p_value,
            "change": self.change.model_dump()
            if self.change is not None and self.changed
            else None,
            "probation": self.probation.model_dump()
            if self.probation is not None and self.dropped is not None
            else None,
        }

    def reason(self) -> str:
        """Why the chosen lineage serves, in a sentence."""
        p = self.probation
        if p is not None and self.dropped is not None:
            return (
                f"auto: {p.lineage} scored {p.metric:.4g} on its first batch served, worse than "
                f"{p.replaced}'s {p.replaced_metric:.4g}: on probation, so {p.replaced} serves "
                f"again and {p.lineage}'s record starts over"
            )
        c = self.change
        if c is not None and self.changed:
            return (
                f"auto: {c.lineage}'s score fell to {c.metric:.4g} from {c.mean_before:.4g} over "
                f"{c.batches_before} batches (t {c.t:.2f}, p {c.p_value:.2g} < "
                f"{self.change_alpha}): a sudden change, so {self.chosen}, trained on the new batch "
                "alone, serves"
            )
        e = self.evidence()
        return (
            f"auto: {self.chosen} beat {self.served} over the last {self.batches} batches "
            f"(t {e['t']:.2f}, p {e['p_value']:.3g})"
        )


def detect_change(records: list[SelectionRecord], lineage: str | None = None) -> Change | None:
    """The change test (module docstring) on a lineage, by default the newest record's served
    one; None when fewer than two earlier records, or no spread among them, leave nothing to
    judge by."""
    if len(records) < 3:
        return None
    lineage = lineage or records[-1].served
    before = np.array([r.gains()[lineage] for r in records[:-1]])
    x, m = records[-1].gains()[lineage], len(before)
    spread = float(before.std(ddof=1))
    if spread == 0.0 or not np.isfinite(spread):
        return None
    t = float((before.mean() - x) / (spread * np.sqrt(1.0 + 1.0 / m)))
    sign = 1.0 if records[-1].higher_is_better else -1.0
    return Change(
        lineage=lineage,
        metric=sign * x,
        mean_before=sign * float(before.mean()),
        batches_before=m,
        t=t,
        p_value=float(stats.t.sf(t, m - 1)),
    )


def on_probation(recent: list[SelectionRecord]) -> Probation | None:
    """The served lineage's first batch against `never`, which it replaced (module docstring),
    when the newest record is that batch; a lineage served again because another was dropped is
    not on probation."""
    if len(recent) < 2 or recent[-1].dropped is not None:
        return None
    newest, lineage, replaced = recent[-1], recent[-1].served, recent[-2].served
    if lineage == replaced or replaced != START:
        return None
    gains = newest.gains()
    return Probation(
        lineage=lineage,
        replaced=replaced,
        metric=newest.metrics[lineage],
        replaced_metric=newest.metrics[replaced],
        failed=gains[lineage] < gains[replaced],
    )


def choose(
    records: list[SelectionRecord],
    *,
    alpha: float,
    window: int,
    change_alpha: float = 0.0,
    probation: bool = False,
) -> Choice:
    """The switch rule (module docstring) on the newest `window` records of the current run; the
    served lineage is the newest record's. `change_alpha` 0: no change test; `probation` False:
    no probation."""
    if not records:
        return Choice(served=START, chosen=START, batches=0, contenders=[])
    served = records[-1].served
    recent = [r for r in records if r.start == records[-1].start][-window:]
    rows = [r.gains() for r in recent]
    gains = {k: np.array([row[k] for row in rows]) for k in LINEAGES}
    # a dropped lineage's record counts from the batch that dropped it
    first = {
        k: max((i for i, r in enumerate(recent) if r.dropped == k), default=0) for k in LINEAGES
    }
    chosen, strongest = served, 0.0
    contenders = []
    for k in LINEAGES:
        if k == served:
            continue
        d = gains[k][first[k] :] - gains[served][first[k] :]
        t = p = None
        if len(d) >= 2 and not np.allclose(d, 0.0):
            with warnings.catch_warnings():  # gains nearly equal on every batch: t is large
                warnings.simplefilter("ignore", RuntimeWarning)  # and right, scipy still warns
                test = stats.ttest_1samp(d, 0.0, alternative="greater")
            t, p = float(test.statistic), float(test.pvalue)
            if p < alpha and t > strongest:
                chosen, strongest = k, t
        contenders.append(
            Contender(lineage=k, batches=len(d), mean_gain=float(d.mean()), t=t, p_value=p)
        )
    on_trial = on_probation(recent) if probation else None
    back = on_trial.replaced if on_trial is not None and on_trial.failed else None
    # the change test on the lineage that would serve next (on a real change, both fell)
    change = detect_change(recent, back or served) if change_alpha > 0 else None
    if change is not None and change.p_value < change_alpha:
        chosen = AFTER_CHANGE
    elif back is not None:
        chosen = back
    return Choice(
        served=served,
        chosen=chosen,
        batches=len(recent),
        contenders=contenders,
        change=change,
        change_alpha=change_alpha,
        probation=on_trial,
    )


def read_selection(
    registry: ModelRegistry, name: str, *, last: int
) -> tuple[list[SelectionRecord], int]:
    """The newest `last` records, oldest first, and the sequence of the last one (0: none)."""
    raw = registry.read_log(name, LOG, last=last)
    records = [SelectionRecord.model_validate(r["record"]) for r in raw]
    return records, (int(raw[-1]["sequence"]) if raw else 0)


def append_record(
    registry: ModelRegistry, name: str, record: SelectionRecord, expected: int
) -> int:
    """One record per batch, by compare-and-swap on the log's sequence (of two racing steps one
    writes, the other gets AliasConflictError)."""
    return registry.append_log(
        name, LOG, {"record": record.model_dump(mode="json")}, expected=expected
    )


def selection_markdown(
    name: str, record: SelectionRecord, choice: Choice, alpha: float, after: dict[str, int]
) -> str:
    """Every lineage's model and score on this batch, its test against the served one, and its
    model after learning from the batch (`after`)."""
    by_lineage = {c.lineage: c for c in choice.contenders}
    lines = [
        f"# {name}: auto serves `{choice.chosen}`"
        + (f" (switched from `{choice.served}`)" if choice.switched else ""),
        "",
        f"Batch `{record.batch_id}`, served by `{record.served}`. Each lineage's {record.metric} "
        f"on it before anything learned from it; the one-sided t-test of its per-batch gain over "
        f"`{choice.served}` across the last {choice.batches} batches, or those since it was "
        f"dropped (switch at p < {alpha}).",
        "",
        f"| lineage | scored | {record.metric} | batches | mean gain | t | p | after this batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k in LINEAGES:
        c = by_lineage.get(k)
        mark = " **served next**" if k == choice.chosen else ""
        t = "-" if c is None or c.t is None else f"{c.t:.2f}"
        p = "-" if c is None or c.p_value is None else f"{c.p_value:.3g}"
        gain = "-" if c is None else f"{c.mean_gain:+.4f}"
        n = "-" if c is None else str(c.batches)
        lines.append(
            f"| `{k}`{mark} | v{record.versions[k]} | {record.metrics[k]:.4f} | {n} | {gain} | {t} "
            f"| {p} | v{after[k]} |"
        )
    probation = choice.probation
    if probation is not None:
        verdict = (
            f"worse, so `{probation.replaced}` serves again and `{probation.lineage}`'s record "
            "starts over"
            if choice.dropped is not None
            else "worse, but the sudden change decides"
            if probation.failed
            else "not worse: it stays"
        )
        lines += [
            "",
            f"Probation: `{probation.lineage}`'s first batch served, {probation.metric:.4f} against "
            f"{probation.replaced_metric:.4f} for `{probation.replaced}`, which it replaced: "
            f"{verdict}.",
        ]
    change = choice.change
    if change is not None:
        verdict = (
            f"a sudden change: `{choice.chosen}`, trained on the new batch alone, serves next"
            if choice.changed
            else "no sudden change"
        )
        lines += [
            "",
            f"Change test: `{change.lineage}` scored {change.metric:.4f} on this batch against "
            f"{change.mean_before:.4f} on its {change.batches_before} batches before "
            f"(t {change.t:.2f}, p {change.p_value:.3g}; a change at p < {choice.change_alpha}): "
            f"{verdict}.",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------- Prefect task
@task(name="select-lineage", cache_policy=NO_CACHE)
def select_lineage(
    name: str,
    records: list[SelectionRecord],
    *,
    after: dict[str, int],
    alpha: float,
    window: int,
    change_alpha: float,
    probation: bool,
) -> Choice:
    """Choose the lineage to serve from the records (this batch's the newest), log it and publish
    the `selection` artifact."""
    choice = choose(
        records, alpha=alpha, window=window, change_alpha=change_alpha, probation=probation
    )
    get_run_logger().info(
        "auto: %s serves next%s",
        choice.chosen,
        f" ({choice.reason()})" if choice.switched else "",
    )
    publish_markdown(
        key="selection",
        markdown=selection_markdown(name, records[-1], choice, alpha, after),
        description=f"{name}: auto serves {choice.chosen}",
    )
    return choice
