"""`CTConfig`: the one configuration of a CT step.

It is the flow parameter (Prefect validates it and renders it as a form) and loads from YAML for the
CLI. Every default serves the built-in demo stream, so `python flows/ct.py` needs no file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from blocks.names import NAME_PATTERN
from tasks.errors import ConfigError

#: Modules an estimator may be imported from. A dotted path is code execution, so it is allow-listed.
ESTIMATOR_MODULES = (
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.tree",
    "sklearn.naive_bayes",
    "sklearn.neighbors",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Section):
    """What the data looks like. Feature lists left empty are inferred from the first batch."""

    name: str = Field("demo", pattern=NAME_PATTERN)
    target: str = "churned"
    time_column: str | None = "event_time"
    numeric: list[str] | None = None
    categorical: list[str] | None = None
    classes: list[int] = Field(default_factory=lambda: [0, 1], min_length=2)

    @model_validator(mode="after")
    def _disjoint(self) -> DatasetConfig:
        numeric, categorical = set(self.numeric or ()), set(self.categorical or ())
        special = {self.target} | ({self.time_column} if self.time_column else set())
        clash = (numeric & categorical) | ((numeric | categorical) & special)
        if clash:
            raise ValueError(f"columns listed twice (features vs target/time): {sorted(clash)}")
        return self


class ModelConfig(_Section):
    """The estimator, by dotted path from an allow-listed sklearn module, and its parameters."""

    estimator: str = "sklearn.linear_model.LogisticRegression"
    params: dict[str, Any] = Field(default_factory=lambda: {"max_iter": 1000})

    @field_validator("estimator")
    @classmethod
    def _allowed(cls, value: str) -> str:
        module, _, name = value.rpartition(".")
        if module not in ESTIMATOR_MODULES or not name.isidentifier():
            raise ValueError(
                f"estimator {value!r} is not allowed; use a class from one of {ESTIMATOR_MODULES}"
            )
        return value


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
    #: Numeric values beyond the training range by more than this share of it are rejected.
    range_tolerance: float = Field(0.5, ge=0)
    #: Run the great-expectations quality suite (built from the champion's profile).
    quality_suite: bool = True
    #: Stop the step when the quality suite fails (otherwise: a warning and an artifact).
    quality_blocking: bool = False


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


class GuardConfig(_Section):
    """A metric the candidate must not make worse by more than `tolerance`."""

    metric: str = "accuracy"
    tolerance: float = Field(0.01, ge=0)


class GateConfig(_Section):
    """The promotion rule: a one-sided paired test on the held-back slice, plus guards.

    The default decides on per-row log loss (a proper score: it uses the probabilities, so it has far
    more power than accuracy on small test sets) and keeps accuracy as a guard. `test: auto` picks
    Diebold-Mariano (HAC variance) when rows are time-ordered, the paired t-test otherwise; use
    `metric: accuracy` (exact McNemar) for models without probabilities.
    """

    metric: str = "log_loss"
    test: str = "auto"
    alpha: float = Field(0.05, gt=0, lt=1)
    #: Minimum improvement, in the metric's units, worth a promotion.
    min_effect: float = Field(0.0, ge=0)
    guards: list[GuardConfig] = Field(default_factory=lambda: [GuardConfig()])
    #: Treat the held-back rows as a time series (they are the newest rows, in time order).
    time_ordered: bool = True

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        known = {"accuracy", "log_loss", "brier", "roc_auc", "f1"}
        if value not in known:
            raise ValueError(f"gate.metric {value!r} is not one of {sorted(known)}")
        return value


class RegistryConfig(_Section):
    """Where models are registered: a saved `ModelRegistry` block, a URL, or `<state_dir>/registry`."""

    #: Name of a saved ct-model-registry block (e.g. "prod"); wins over `url`.
    block: str | None = None
    #: A local folder or an fsspec URL (s3://bucket/path); credentials belong in a block.
    url: str | None = None


class CTConfig(_Section):
    """Configuration of one continuous-training step."""

    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    validation: ValidationConfig = ValidationConfig()
    drift: DriftConfig = DriftConfig()
    retrain: RetrainConfig = RetrainConfig()
    gate: GateConfig = GateConfig()
    registry: RegistryConfig = RegistryConfig()
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
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
