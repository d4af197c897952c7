"""How numbers look in tables, artifacts and the CLI: one place, so they look the same everywhere."""

from __future__ import annotations

import base64
import math
from pathlib import Path


def fmt(value: object, digits: int = 3) -> str:
    """A cell: '-' for missing, yes/no for flags, small p-values in scientific notation."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits - 1}e}" if 0 < abs(value) < 0.001 else f"{value:.{digits}f}"
    return str(value)


def png_markdown(path: Path, alt: str) -> str:
    """A PNG inline in markdown (a data URI): the Prefect UI shows it; a file:// link it cannot."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{data})\n\nAlso written to `{path.resolve()}`."
