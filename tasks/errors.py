"""Every error ct raises on purpose: one base class, so the CLI can turn them into one clear line.

The registry block has its own `RegistryError` (blocks do not import tasks).
"""

from __future__ import annotations


class CTError(Exception):
    """Base of all errors ct raises on purpose; the message says what went wrong and what to do."""


class ConfigError(CTError):
    """The configuration is invalid or refers to something that is not allowed."""


class DataLoadError(CTError):
    """A data file is missing, unreadable, empty or has none of the configured columns."""

    def __init__(self, source: str, problem: str):
        self.source, self.problem = source, problem
        super().__init__(f"{source}: {problem}")


class DataValidationError(CTError):
    """A batch broke its data contract; `failures` holds one row per failed check and value."""

    def __init__(self, source: str, failures: list[dict[str, object]]):
        self.source, self.failures = source, failures
        first = failures[0]
        more = f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else ""
        row = f" at row {first['row']}" if first.get("row") is not None else ""
        super().__init__(
            f"{source}: column={first['column']!r} rule={first['check']!r} "
            f"failed, e.g. value {first['failure_case']!r}{row}{more}"
        )


class GateError(CTError):
    """The gate cannot decide fairly, e.g. the test set overlaps a model's training data."""
