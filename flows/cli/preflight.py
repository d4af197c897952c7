"""Pre-flight: everything a command can check before Prefect starts, with the same messages.

A config error, a data path that is missing, unreadable, a folder, outside the allowed roots or
over the size limit, a registry that cannot be reached, and a backtest's --out folder that already
holds an earlier backtest are reported in about a second, as one line, instead of after a server
start-up and seconds of imports. Only light modules are imported
here (pydantic, fsspec); the checks are the ones the flows run again (`tasks.sources`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from blocks.errors import RegistryError
from tasks.config import CTConfig
from tasks.errors import CTError, DataLoadError
from tasks.sources import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    ReadLimits,
    check_dataset,
    check_source,
    is_folder,
)

#: Commands that read a data file (--data), and those that use the configured registry.
READS_DATA = {"run", "contract"}
USES_REGISTRY = {"run", "contract", "registry"}


def load_config(path: str | None, **overrides: Any) -> CTConfig:
    """The config file (or the built-in default) with command-line overrides applied
    (`state_dir=...`, or a whole section as a dict)."""
    config = CTConfig.from_yaml(path) if path else CTConfig()
    if not overrides:
        return config
    data = config.model_dump()
    for section, value in overrides.items():
        data[section] = value
    return CTConfig.model_validate(data)


def check_registry(config: CTConfig) -> None:
    """Can the registry be reached? A local folder (or its nearest existing parent) must be a
    writable folder; a URL must answer a listing within a couple of seconds. A saved block is
    checked when it is loaded (that needs Prefect)."""
    if config.registry.block:
        return
    url = config.registry_url
    if "://" not in url or url.startswith("file://"):
        folder = Path(url.removeprefix("file://")).resolve()
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
            raise RegistryError(
                f"registry {url}: {existing or folder} is not a writable folder; set registry.url "
                "or state_dir to a folder you can write"
            )
        return
    from blocks.storage import Store

    options: dict[str, Any] = {}
    if url.startswith("s3://"):
        options["config_kwargs"] = {
            "connect_timeout": 2,
            "read_timeout": 2,
            "retries": {"max_attempts": 1},
        }
    try:
        store = Store(url, options)
        store.children(store.root)
    except Exception as exc:  # any transport failure: the registry is not reachable
        raise RegistryError(
            f"registry {url} cannot be reached ({type(exc).__name__}: {exc}); check the URL, the "
            "endpoint and the credentials (a saved ct-model-registry block holds them)"
        ) from exc


def check_backtest_data(path: str) -> None:
    """A backtest reads one file or a folder of them."""
    local = Path(path)
    if local.is_dir():
        suffixes = PARQUET_SUFFIXES | CSV_SUFFIXES
        if not any(p.suffix.lower() in suffixes for p in local.iterdir()):
            raise DataLoadError(path, "folder has no .csv or .parquet files")
        return
    check_source(path, ReadLimits())


#: What a backtest leaves in its --out folder that a second backtest there would start from.
BACKTEST_STATE = ("registry", "history")


def check_fresh_out(out: str | None) -> None:
    """A backtest (and the demo) starts from a fresh registry in its --out folder: one that holds
    an earlier backtest's registry would judge every batch against that run's last champion,
    which learned from them all (every step would fail with a leak error)."""
    if out is None:
        return  # a new folder under .ct/backtests/ each time
    left = [name for name in BACKTEST_STATE if (Path(out) / name).exists()]
    if left:
        raise CTError(
            f"--out {out} already holds an earlier backtest ({', '.join(f'{n}/' for n in left)}); "
            "a backtest starts from a fresh registry: pass a new --out folder, delete this one, "
            "or leave --out out (a new folder under .ct/backtests/ each time)"
        )


def preflight(args: argparse.Namespace) -> None:
    """Run the checks that apply to the parsed command; raise CTError/RegistryError on the first
    failure (the CLI prints it as one line and exits 1)."""
    command = args.command
    if command in {"server", "demo-data"}:
        return
    overrides = {"state_dir": args.state_dir} if getattr(args, "state_dir", None) else {}
    config = load_config(getattr(args, "config", None), **overrides)
    if command in READS_DATA and getattr(args, "data", None):
        limits = ReadLimits.of(config.validation)
        if is_folder(args.data):
            check_dataset(args.data, limits)
        else:
            check_source(args.data, limits)
    if command == "backtest":
        check_backtest_data(args.data)
    if command in {"backtest", "demo"}:
        check_fresh_out(args.out)
    if command in USES_REGISTRY and not (command == "registry" and (args.registry or args.block)):
        check_registry(config)
    if command == "registry" and args.registry:
        check_registry(
            config.model_copy(
                update={
                    "registry": config.registry.model_copy(
                        update={"url": args.registry, "block": None}
                    )
                }
            )
        )
