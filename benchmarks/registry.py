"""Registry speed: register and load a 1 MB and a 50 MB model, beside a plain copy of the same bytes.

`register` = skops serialisation + sha256 + atomic, fsync'd writes + the exclusive metadata create;
`load` = read + sha256 check + skops load with the trusted-type list. Baselines, same run, same
bytes: a durable copy (read the serialised model file, write it to a new file and fsync it: what a
store that promises the bytes survive a power cut pays at least, as `register` does), a user-space
copy without fsync, and `shutil.copyfile` (the kernel's copy_file_range, never in Python, no fsync).
The target (≤ 2x) is judged against the durable copy for `register` and the user-space copy for `load`.

The `floor` rows show what the integrity rules cost by themselves, against the same baselines:
`serialise + sha256` (what `register` must compute before it writes a byte), `read + sha256` (what
`load` must do before it may parse the file) and `read + sha256 + skops` (all of `load` but the
registry's own bookkeeping).

On a local folder, each of `--repeats` (15) rounds runs every operation in turn, interleaved, so
that a busy moment of this noisy machine hits them all alike. Each timed call follows an untimed
call of the same operation, a garbage collection and an `os.sync()`: what ran just before matters
(a call right after a 50 MB `register` pays ~0.1 s of page faults for the memory `register` gave
back, whatever the call is; a 50 MB copy takes 0.035 s after `shutil.copyfile` but 0.14 s after
another copy), so each operation is measured in its own steady state. The table has the medians.
Usage: `.venv/bin/python benchmarks/registry.py`.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import skops.io
from sklearn.linear_model import LogisticRegression

from blocks.registry import TRUSTED_TYPES, ModelRegistry


def model_of_size(megabytes: float) -> LogisticRegression:
    """A fitted logistic regression whose coefficients weigh about `megabytes` MB."""
    model = LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
    n = int(megabytes * 1_000_000 / 8)
    model.coef_ = np.random.default_rng(0).normal(size=(1, n))
    model.n_features_in_ = n
    return model


def measure(
    registry: ModelRegistry, root: Path, megabytes: int, repeats: int
) -> list[tuple[str, float, float, float, str, float]]:
    """(operation, file MB, seconds, baseline s, baseline name, copyfile s) per row."""
    model = model_of_size(megabytes)
    data = skops.io.dumps(model)
    source = root / f"model-{megabytes}.skops"
    source.write_bytes(data)
    copies = iter(range(100_000))
    registry.register("bench", model, metrics={}, lineage={}, schema={})
    version = registry.versions("bench")[-1]
    operations: dict[str, Callable[[], object]] = {
        "copyfile": lambda: shutil.copyfile(source, root / f"copy-{next(copies)}"),
        "copy": lambda: (root / f"copy-{next(copies)}").write_bytes(source.read_bytes()),
        "durable": lambda: durable_copy(source, root / f"copy-{next(copies)}"),
        "register": lambda: registry.register("bench", model, metrics={}, lineage={}, schema={}),
        "load": lambda: registry.load_model("bench", version=version),
        "serialise + sha256": lambda: hashlib.sha256(skops.io.dumps(model)).hexdigest(),
        "read + sha256": lambda: hashlib.sha256(source.read_bytes()).hexdigest(),
        "read + sha256 + skops": lambda: read_check_parse(source),
    }
    times: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(repeats):
        for name, operation in operations.items():
            operation()  # untimed: each timed call follows one of its own kind, not another's
            gc.collect()
            os.sync()  # write back what earlier calls left dirty, so it does not slow this one
            started = time.perf_counter()
            operation()
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in times.items()}
    size, kernel = len(data) / 1e6, median["copyfile"]
    return [
        (
            f"register {megabytes} MB",
            size,
            median["register"],
            median["durable"],
            "durable copy",
            kernel,
        ),
        (f"load {megabytes} MB", size, median["load"], median["copy"], "copy", kernel),
        (
            "  floor: serialise+sha",
            size,
            median["serialise + sha256"],
            median["durable"],
            "durable copy",
            kernel,
        ),
        ("  floor: read+sha", size, median["read + sha256"], median["copy"], "copy", kernel),
        (
            "  floor: read+sha+skops",
            size,
            median["read + sha256 + skops"],
            median["copy"],
            "copy",
            kernel,
        ),
    ]


def read_check_parse(source: Path) -> object:
    """What `load` cannot skip: read the file, check its sha256, parse it with skops."""
    data = source.read_bytes()
    hashlib.sha256(data).hexdigest()
    return skops.io.loads(data, trusted=TRUSTED_TYPES)


def durable_copy(source: Path, target: Path) -> None:
    with open(target, "wb") as handle:
        handle.write(source.read_bytes())
        handle.flush()
        os.fsync(handle.fileno())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ct-registry-bench-") as tmp:
        root = Path(tmp)
        registry = ModelRegistry(url=str(root / "registry"))
        rows = [
            row for megabytes in (1, 50) for row in measure(registry, root, megabytes, args.repeats)
        ]
    print(
        f"| {'operation':24} | {'file MB':>7} | {'seconds':>8} | {'baseline':12} | {'baseline s':>10} "
        f"| {'ratio':>6} | {'copyfile s':>10} | {'ratio':>6} | target | met |"
    )
    print(
        f"|{'-' * 26}|{'-' * 9}|{'-' * 10}|{'-' * 14}|{'-' * 12}|{'-' * 8}|{'-' * 12}|{'-' * 8}|--------|-----|"
    )
    for name, size, seconds, baseline, label, kernel in rows:
        ratio = seconds / baseline
        met = "" if name.startswith(" ") else ("yes" if ratio <= 2 else "NO")
        print(
            f"| {name:24} | {size:7.1f} | {seconds:8.4f} | {label:12} | {baseline:10.4f} | {ratio:5.1f}x "
            f"| {kernel:10.4f} | {seconds / kernel:5.1f}x | {'2.0x' if met else '':>6} | {met:3} |"
        )


if __name__ == "__main__":
    main()
