"""`CTConfig`: the one configuration of a CT step.

It is the flow parameter (Prefect validates it and renders it as a form) and loads from YAML for the
CLI. Every default serves the built-in demo stream, so `python flows/ct.py` needs no file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from blocks.names import NAME_PATTERN, is_name
from tasks.errors import ConfigError

#: Modules an estimator may be imported from. A dotted path is code execution, so it is allow-listed.
ESTIMATOR_MODULES = (
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.tree",
    "sklearn.naive_bayes",
    "sklearn.neighbors",
    "lightgbm",
    "xgboost",
)
#: A class label as a contract stores it: the type it had in the data is kept.
Label = bool | int | str
Task = Literal["classification", "regression"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Section):
    """What the data looks like. Whatever is left null is inferred from the first batch and then
    fixed in the model's contract; what is declared here is a hard rule.

    Only declared rules quarantine rows: `classes` (a closed set), `bounds` and `non_null`. Nothing
    learned from training data (ranges, categories, an open class set) ever does: values outside
    what the champion saw are drift, which the next candidate learns.
    """

    name: str = Field("demo", pattern=NAME_PATTERN)
    target: str = "churned"
    time_column: str | None = "event_time"
    numeric: list[str] | None = None
    categorical: list[str] | None = None
    #: null: inferred from the first batch's target (a float target, or more than 50 distinct
    #: integers, is regression).
    task: Task | None = None
    #: null: the classes are inferred from the first batch and the set stays open (a new label is
    #: kept, reported and learned). A list is a closed set: other labels are quarantined. Labels
    #: keep their type (integers, strings or booleans; quote strings such as "yes" in YAML).
    classes: list[Label] | None = Field(default=None, min_length=2)
    #: Hard bounds the user declares, e.g. {age: [0, 120]}; null for an open side.
    bounds: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)
    #: Features that must never be missing (the target never may).
    non_null: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetConfig:
        numeric, categorical = set(self.numeric or ()), set(self.categorical or ())
        special = {self.target} | ({self.time_column} if self.time_column else set())
        clash = (numeric & categorical) | ((numeric | categorical) & special)
        if clash:
            raise ValueError(f"columns listed twice (features vs target/time): {sorted(clash)}")
        if self.classes is not None:
            kinds = {label_kind(c) for c in self.classes}
            if len(kinds) > 1:
                raise ValueError(
                    f"dataset.classes mixes {' and '.join(sorted(kinds))} labels: {self.classes}; "
                    "use one type (quote strings in YAML)"
                )
            if len(set(self.classes)) != len(self.classes):
                raise ValueError(f"dataset.classes lists a class twice: {self.classes}")
            if self.task == "regression":
                raise ValueError("dataset.classes is for classification, but task is regression")
        for column, (low, high) in self.bounds.items():
            if low is not None and high is not None and low > high:
                raise ValueError(f"dataset.bounds[{column!r}]: low {low} is above high {high}")
            if column in categorical or (self.time_column and column == self.time_column):
                raise ValueError(f"dataset.bounds[{column!r}]: bounds are for numeric columns")
        if self.target in self.non_null:
            raise ValueError("dataset.non_null: the target is never nullable; list features only")
        return self


def label_kind(label: object) -> Literal["bool", "int", "str"]:
    """The type a class label keeps in a contract (bool is checked first: it is an int too)."""
    if isinstance(label, bool):
        return "bool"
    return "int" if isinstance(label, int) else "str"


class ModelConfig(_Section):
    """The model: an estimator class by dotted path from an allow-listed module (ct adds the
    imputing, scaling and one-hot encoding), or your own pipeline from `factory`.

    `estimator: null` picks LogisticRegression for classification and Ridge for regression.
    """

    estimator: str | None = None
    #: Parameters of `estimator`; null: {max_iter: 1000} for the default LogisticRegression.
    params: dict[str, Any] | None = None
    #: `package.module:function` returning an unfitted scikit-learn-compatible estimator or
    #: pipeline (feature engineering included); it gets the feature columns as a DataFrame.
    factory: str | None = None
    #: Types outside ct's reviewed list that your factory's models contain (e.g. your own
    #: transformer, "my_package.features.Ratio"). Reviewed by you; recorded in each version's
    #: lineage; a stored model with any other type is refused on load.
    trusted_types: list[str] = Field(default_factory=list)

    @field_validator("estimator")
    @classmethod
    def _allowed(cls, value: str | None) -> str | None:
        if value is None:
            return value
        module, _, name = value.rpartition(".")
        if module not in ESTIMATOR_MODULES or not name.isidentifier():
            raise ValueError(
                f"estimator {value!r} is not allowed; use a class from one of {ESTIMATOR_MODULES}"
            )
        return value

    @field_validator("factory")
    @classmethod
    def _factory_path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        module, colon, function = value.partition(":")
        if (
            not colon
            or not function.isidentifier()
            or not all(part.isidentifier() for part in module.split("."))
        ):
            raise ValueError(f"model.factory {value!r} must look like 'package.module:function'")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.factory is not None and (self.estimator is not None or self.params is not None):
            raise ValueError(
                "model.factory builds the whole model; leave model.estimator and model.params unset"
            )
        return self


class ValidationConfig(_Section):
    """What a batch may be, and what happens to rows that break the contract."""

    max_rows: int = Field(5_000_000, gt=0)
    #: Fewer valid rows than this stops the step.
    min_rows: int = Field(20, gt=0)
    #: Files larger than this are refused before they are read.
    max_bytes: int = Field(2_000_000_000, gt=0)
    #: Rows that fail a row-level check are quarantined; above this share the step stops.
    max_bad_fraction: float = Field(0.05, ge=0, le=1)
    #: Local folders or URL prefixes batches must come from; null allows any path.
    allowed_roots: list[str] | None = None
    #: CSV text encoding; null means UTF-8.
    encoding: str | None = None
    #: CSV delimiter; null means detected from the header (, ; tab |).
    delimiter: str | None = None
    #: The quality suite's numeric ranges: the reference's 0.5-99.5 % quantile range widened by
    #: this share of it. Only the suite uses it (a warning); values outside never stop a batch.
    range_tolerance: float = Field(0.5, ge=0)
    #: Run the great-expectations quality suite (built from the champion's profile).
    quality_suite: bool = True
    #: Stop the step when the quality suite fails (otherwise: a warning and an artifact).
    quality_blocking: bool = False
    #: After this many batches in a row are refused for the same model, ct emits
    #: `ct.contract.blocked` (the README says how to accept a new contract).
    max_refused_in_a_row: int = Field(3, ge=1)


class DriftConfig(_Section):
    """How drift is judged. A column drifts only when its Benjamini-Hochberg-adjusted p-value is
    below `alpha` *and* its effect reaches a floor: with a million rows every p-value is tiny, so
    significance alone would alarm on differences nobody cares about."""

    alpha: float = Field(0.05, gt=0, lt=1)
    #: Numeric effect: Wasserstein distance in reference standard deviations.
    wasserstein_floor: float = Field(0.1, ge=0)
    #: Categorical effect: Jensen-Shannon distance (base 2, 0..1); 0.05 is about a 5-point shift
    #: of one category's share.
    js_floor: float = Field(0.05, ge=0)
    #: Missing-rate change (absolute, 0..1) that counts as drift when significant.
    missing_floor: float = Field(0.05, ge=0, le=1)
    #: The batch drifts when the (importance-weighted) share of drifted features exceeds this.
    min_share_drifted: float = Field(0.0, ge=0, lt=1)
    #: Feature importance weights for the share; features not listed weigh 1.
    importance: dict[str, float] | None = None
    #: Rows kept as the exact-test sample (KS, Wasserstein); read when a champion's profile is
    #: built (a stored profile keeps the size it was built with).
    sample_rows: int = Field(5_000, ge=50)
    #: Reference quantile bins for PSI and the plots; likewise fixed in each stored profile.
    bins: int = Field(10, ge=2, le=100)


class RetrainConfig(_Section):
    """The training window and the held-back test slice."""

    #: Past batches from history joined to the new batch's training part.
    history_batches: int = Field(2, ge=0)
    #: Newest share of the new batch held back as the gate's test set (nobody trains on it).
    holdout_fraction: float = Field(0.3, gt=0, lt=1)
    #: "always": retrain on every batch and let the gate decide; "on_drift": only when drift is found.
    policy: Literal["always", "on_drift"] = "always"
    #: A dataset (a folder of Parquet files, possibly larger than memory) is validated, checked and
    #: compared whole, in record batches; what learns from it (and the gate's test slice) is a
    #: seeded uniform sample of at most this many of its valid rows, recorded in the lineage.
    sample_rows: int = Field(500_000, ge=100)


class GuardConfig(_Section):
    """A metric the candidate must not make worse by more than `tolerance`."""

    metric: str = "accuracy"
    tolerance: float = Field(0.01, ge=0)


CLASSIFICATION_METRICS = ("accuracy", "log_loss", "brier", "roc_auc", "f1")
REGRESSION_METRICS = ("mae", "mse")


class GateConfig(_Section):
    """The promotion rule: a one-sided paired test on the held-back slice, plus guards.

    `metric: null` decides on per-row log loss for classification (a proper score: it uses the
    probabilities, so it has far more power than accuracy on small test sets) with accuracy as a
    guard, and on absolute error for regression (see the README: measured in
    benchmarks/gate_quality.py). `test: auto` picks Diebold-Mariano (HAC variance) when rows are
    time-ordered, the paired t-test otherwise; use `metric: accuracy` (exact McNemar) for models
    without probabilities.
    """

    metric: str | None = None
    test: str = "auto"
    #: One-sided level of the test; at most 0.5 (a larger one would promote on no evidence).
    alpha: float = Field(0.05, gt=0, le=0.5)
    #: Minimum improvement, in the metric's units, worth a promotion.
    min_effect: float = Field(0.0, ge=0)
    #: null: accuracy (tolerance 0.01) for classification, none for regression.
    guards: list[GuardConfig] | None = None
    #: Treat the held-back rows as a time series (they are the newest rows, in time order).
    time_ordered: bool = True
    #: How a candidate becomes champion (tasks/policy/). batch: the paired test on this batch's
    #: held-back rows. shadow: it becomes the challenger, judged on the batches that arrive after
    #: it by an anytime-valid test (no screen). both: the batch test, at screen_alpha, is a
    #: screen; a candidate that passes becomes the challenger (replacing one). Whichever the mode,
    #: a model becomes champion only through a test it passed against the model it replaces, on
    #: rows neither learned from (docs/decisions/001-one-decider.md).
    mode: Literal["batch", "shadow", "both"] = "batch"
    #: The screen's one-sided level in mode both.
    screen_alpha: float = Field(0.2, gt=0, le=0.5)
    #: A challenger that has not won after this many batches is dropped.
    budget_batches: int = Field(10, ge=1)
    #: The challenger's evidence: rows per block (longer than the rows' dependence), and the
    #: blocks needed before any decision.
    block_rows: int = Field(50, ge=5)
    min_blocks: int = Field(10, ge=3)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        known = {*CLASSIFICATION_METRICS, *REGRESSION_METRICS}
        if value is not None and value not in known:
            raise ValueError(f"gate.metric {value!r} is not one of {sorted(known)}")
        return value

    def metric_for(self, task: Task) -> str:
        """The deciding metric for a task; a configured metric must suit it."""
        if self.metric is None:
            return "log_loss" if task == "classification" else "mae"
        allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
        if self.metric not in allowed:
            raise ConfigError(
                f"gate.metric {self.metric!r} does not suit {task}; use one of {list(allowed)}"
            )
        return self.metric

    def guards_for(self, task: Task) -> list[GuardConfig]:
        if self.guards is not None:
            allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
            wrong = [g.metric for g in self.guards if g.metric not in allowed]
            if wrong:
                raise ConfigError(f"gate.guards {wrong} do not suit {task}; use {list(allowed)}")
            return list(self.guards)
        return [GuardConfig()] if task == "classification" else []


class RegistryConfig(_Section):
    """Where models are registered: a saved `ModelRegistry` block, a URL, or `<state_dir>/registry`."""

    #: Name of a saved ct-model-registry block (e.g. "prod"); wins over `url`.
    block: str | None = None
    #: A local folder or an fsspec URL (s3://bucket/path); credentials belong in a block.
    url: str | None = None


class FleetConfig(_Section):
    """Many models from one deployment (`flows/fleet.py`): every model has its own folder of
    batches under `landing`, its own registry entries and its own decisions; the rest of this
    configuration is shared by all of them."""

    #: A folder or fsspec URL (s3://bucket/landing) with one subfolder of batches per model;
    #: null: `<state_dir>/landing`.
    landing: str | None = None
    #: The models to run; null: every subfolder of `landing`.
    models: list[str] | None = None
    #: An existing Dask scheduler (tcp://host:8786); null: a local cluster of `workers` processes.
    dask_address: str | None = None
    workers: int = Field(default=2, ge=1)
    threads_per_worker: int = Field(default=1, ge=1)

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not is_name(name):
                raise ValueError(f"{name!r} is not a model name (1-64 letters, digits, _ . -)")
        return value


class CTConfig(_Section):
    """Configuration of one continuous-training step."""

    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    validation: ValidationConfig = ValidationConfig()
    drift: DriftConfig = DriftConfig()
    retrain: RetrainConfig = RetrainConfig()
    gate: GateConfig = GateConfig()
    registry: RegistryConfig = RegistryConfig()
    fleet: FleetConfig = FleetConfig()
    #: Where ct keeps its state: registry/, history/.
    state_dir: str = ".ct"
    seed: int = 0

    def for_dataset(self, name: str) -> CTConfig:
        """The same configuration for another dataset (model) name, e.g. the one an event names."""
        return self.model_copy(update={"dataset": self.dataset.model_copy(update={"name": name})})

    @property
    def registry_url(self) -> str:
        return self.registry.url or str(Path(self.state_dir) / "registry")

    @property
    def history_dir(self) -> Path:
        return Path(self.state_dir) / "history" / self.dataset.name

    @classmethod
    def from_yaml(cls, path: str | Path) -> CTConfig:
        """Load a config file; unknown keys are errors, so typos do not pass silently."""
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: config file not found") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top, got {type(raw).__name__}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {config_problems(exc)}") from exc


def config_problems(exc: ValidationError) -> str:
    """Pydantic's errors in one line: `gate.alpah: unknown key; dataset.classes: ...`."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "config"
        what = (
            "unknown key"
            if error["type"] == "extra_forbidden"
            else str(error["msg"]).removeprefix("Value error, ")
        )
        parts.append(f"{where}: {what}")
    return "; ".join(parts)
