"""`skops.io`, imported in a fraction of a second instead of 2-4 s.

At import, skops builds its default trusted lists, all lists of type names (`module.Class`
strings), in `skops.io._trusted_types`. Building them is most of skops' import time:
- `sklearn.utils.all_estimators()` imports every scikit-learn module (ensemble, svm, manifold, ...)
  to find the estimator classes, whichever model ct will load;
- each scipy ufunc without a `__module__` is looked for in every loaded module in turn, so the
  more a process has imported (Prefect, pandas, pandera), the longer it takes.
Measured in a CT step's process: 3.8 s of the 6.2 s `import flows.ct` took (`python -X importtime`).

The lists depend only on the installed versions of skops, scikit-learn, scipy and numpy. So the
first process builds them with the real module and keeps them in a cache file for those versions;
later processes give skops a module holding the same lists. skops' other modules import only
those lists from it (checked: every `from ._trusted_types import` names a `*_NAMES` list). A
missing, unreadable or mismatched cache file means the real module (and a fresh file).

tests/blocks/test_skops_io.py checks, in fresh processes, that the lists are the ones skops builds
on its own, and that a corrupt cache file falls back to them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

TRUSTED = "skops.io._trusted_types"
PACKAGES = ("skops", "scikit-learn", "scipy", "numpy")


def cache_file() -> Path:
    """`CT_CACHE_DIR`, else `$XDG_CACHE_HOME/ct` (`~/.cache/ct`)."""
    folder = os.environ.get("CT_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "ct"
    )
    return Path(folder) / "skops-trusted-types.json"


def versions() -> dict[str, str]:
    return {package: version(package) for package in PACKAGES}


def _is_names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def trusted_lists(module: ModuleType) -> dict[str, list[str]]:
    """The type-name lists a `_trusted_types` module holds."""
    return {
        key: list(value)
        for key, value in vars(module).items()
        if key.endswith("_NAMES") and _is_names(value)
    }


def _cached(path: Path, wanted: dict[str, str]) -> dict[str, list[str]] | None:
    try:
        stored = json.loads(path.read_text())
        lists = stored["lists"]
        ok = stored["versions"] == wanted and isinstance(lists, dict) and lists
        return lists if ok and all(_is_names(v) for v in lists.values()) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(path: Path, wanted: dict[str, str], lists: dict[str, list[str]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
            json.dump({"versions": wanted, "lists": lists}, f)
        os.replace(f.name, path)
    except OSError:
        pass  # a read-only home: the next process builds them again


def load() -> ModuleType:
    """`skops.io`, with its trusted lists from the cache when they are there for these versions."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    path, wanted = cache_file(), versions()
    lists = _cached(path, wanted)
    if lists is not None:
        module = ModuleType(TRUSTED, f"skops' trusted type names, cached by ct ({path})")
        module.__dict__.update(lists)
        sys.modules[TRUSTED] = module
    import skops.io

    if lists is None:
        _store(path, wanted, trusted_lists(sys.modules[TRUSTED]))
    return skops.io
