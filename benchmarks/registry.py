"""Registry speed: register and load a 1 MB and a 50 MB model, beside a plain copy of the same bytes.

`register` = skops serialisation + sha256 + atomic, fsync'd writes + the exclusive metadata create;
`load` = read + sha256 check + skops load with the trusted-type list. Baselines, same run, same
bytes: a durable copy (read the serialised model file, write it to a new file and fsync it: what a
store that promises the bytes survive a power cut pays at least, as `register` does), a user-space
copy without fsync, and `shutil.copyfile` (the kernel's copy_file_range, never in Python, no fsync).
The target (≤ 2x) is judged against the durable copy for `register` and the user-space copy for `load`.
Median of 5 runs each, on a local folder. Usage: `.venv/bin/python benchmarks/registry.py`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import skops.io
from sklearn.linear_model import LogisticRegression
from timing import median_seconds

from blocks.registry import ModelRegistry

REPEATS = 5


def model_of_size(megabytes: float) -> LogisticRegression:
    """A fitted logistic regression whose coefficients weigh about `megabytes` MB."""
    model = LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
    n = int(megabytes * 1_000_000 / 8)
    model.coef_ = np.random.default_rng(0).normal(size=(1, n))
    model.n_features_in_ = n
    return model


def measure(
    registry: ModelRegistry, root: Path, megabytes: int
) -> list[tuple[str, float, float, float, str, float]]:
    """(operation, file MB, seconds, baseline s, baseline name, copyfile s) for register and load."""
    model = model_of_size(megabytes)
    data = skops.io.dumps(model)
    source = root / f"model-{megabytes}.skops"
    source.write_bytes(data)
    copies = iter(range(10_000))
    kernel = median_seconds(lambda: shutil.copyfile(source, root / f"copy-{next(copies)}"), REPEATS)
    copy = median_seconds(
        lambda: (root / f"copy-{next(copies)}").write_bytes(source.read_bytes()), REPEATS
    )
    durable = median_seconds(lambda: durable_copy(source, root / f"copy-{next(copies)}"), REPEATS)
    register = median_seconds(
        lambda: registry.register("bench", model, metrics={}, lineage={}, schema={}), REPEATS
    )
    version = registry.versions("bench")[-1]
    load = median_seconds(lambda: registry.load_model("bench", version=version), REPEATS)
    size = len(data) / 1e6
    return [
        (f"register {megabytes} MB", size, register, durable, "durable copy", kernel),
        (f"load {megabytes} MB", size, load, copy, "copy", kernel),
    ]


def durable_copy(source: Path, target: Path) -> None:
    with open(target, "wb") as handle:
        handle.write(source.read_bytes())
        handle.flush()
        os.fsync(handle.fileno())


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ct-registry-bench-") as tmp:
        root = Path(tmp)
        registry = ModelRegistry(url=str(root / "registry"))
        rows = [row for megabytes in (1, 50) for row in measure(registry, root, megabytes)]
    print(
        f"| {'operation':14} | {'file MB':>7} | {'seconds':>8} | {'baseline':12} | {'baseline s':>10} "
        f"| {'ratio':>6} | {'copyfile s':>10} | {'ratio':>6} | target | met |"
    )
    print(
        f"|{'-' * 16}|{'-' * 9}|{'-' * 10}|{'-' * 14}|{'-' * 12}|{'-' * 8}|{'-' * 12}|{'-' * 8}|--------|-----|"
    )
    for name, size, seconds, baseline, label, kernel in rows:
        ratio = seconds / baseline
        print(
            f"| {name:14} | {size:7.1f} | {seconds:8.4f} | {label:12} | {baseline:10.4f} | {ratio:5.1f}x "
            f"| {kernel:10.4f} | {seconds / kernel:5.1f}x | {'2.0x':>6} | {'yes' if ratio <= 2 else 'NO':3} |"
        )


if __name__ == "__main__":
    main()
