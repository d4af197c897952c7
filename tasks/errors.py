"""Every error ct raises on purpose: one base class, so the CLI can turn them into one clear line.

The registry block has its own `RegistryError` (blocks do not import tasks).
"""

from __future__ import annotations

from typing import Any


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
    """A batch broke its data contract; `failures` holds one dict per failed check and value.

    `quarantine` holds the records to keep (the whole batch when the step stops); once written,
    `quarantine_path` says where.
    """

    def __init__(
        self,
        source: str,
        failures: list[dict[str, object]],
        *,
        quarantine: Any = None,
        detail: str | None = None,
        quarantine_path: str | None = None,
        note: str | None = None,
    ):
        self.source, self.failures, self.quarantine = source, failures, quarantine
        self.detail, self.quarantine_path, self.note = detail, quarantine_path, note
        first = failures[0]
        more = f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else ""
        row = f" at row {first['row']}" if first.get("row") is not None else ""
        lead = f"{detail}; first: " if detail else ""
        kept = f" The batch is kept in {quarantine_path}." if quarantine_path else ""
        after = f" {note}" if note else ""
        super().__init__(
            f"{source}: {lead}column={first['column']!r} rule={first['check']!r} "
            f"failed, e.g. value {first['failure_case']!r}{row}{more}.{kept}{after}"
        )

    def _copy(self, **changes: Any) -> DataValidationError:
        fields = {
            "quarantine": self.quarantine,
            "detail": self.detail,
            "quarantine_path": self.quarantine_path,
            "note": self.note,
        }
        return DataValidationError(self.source, self.failures, **(fields | changes))

    def with_path(self, path: str) -> DataValidationError:
        return self._copy(quarantine_path=path)

    def with_note(self, note: str) -> DataValidationError:
        return self._copy(note=note)


class GateError(CTError):
    """The gate cannot decide fairly, e.g. the test set overlaps a model's training data."""
