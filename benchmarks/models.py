"""Fit, register and load, per model family, on 100k rows: what each costs in a CT step.

Each family is fitted by ct's own code path (`tasks.train.fit_candidate`: feature preparation +
estimator with default parameters) on the same 100,000-row classification table (10 numeric and 1
categorical column, binary labels), registered in a fresh local registry and loaded back through it
(sha256 check, skops with the reviewed types, the structural checks of blocks/model_checks.py).
Beside each, in the same run, the floor: the model saved with skops to a plain file (no fsync, no
hash, no type review) and loaded back by skops trusting whatever the file holds (no checks): the
ratios are what the registry's durability and safety cost.

Usage: `.venv/bin/python benchmarks/models.py` (about 4 minutes on 2 cores; `--rows N`,
`--families a,b`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io

from blocks.registry import ModelRegistry
from tasks.config import DatasetConfig, ModelConfig
from tasks.train import fit_candidate
from tasks.validate import infer_spec

FAMILIES = {
    "logistic regression": "sklearn.linear_model.LogisticRegression",
    "naive Bayes": "sklearn.naive_bayes.GaussianNB",
    "k-neighbours": "sklearn.neighbors.KNeighborsClassifier",
    "decision tree": "sklearn.tree.DecisionTreeClassifier",
    "random forest": "sklearn.ensemble.RandomForestClassifier",
    "extra trees": "sklearn.ensemble.ExtraTreesClassifier",
    "gradient boosting": "sklearn.ensemble.GradientBoostingClassifier",
    "hist gradient boosting": "sklearn.ensemble.HistGradientBoostingClassifier",
    "LightGBM": "lightgbm.LGBMClassifier",
    "XGBoost": "xgboost.XGBClassifier",
}


def table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(10)})
    data["segment"] = rng.choice(["a", "b", "c", "d"], rows)
    logit = data["x0"] - 0.5 * data["x1"] + 0.3 * data["x2"] * data["x3"] + (data["segment"] == "a")
    data["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return data


def timed(fn, repeats: int = 1):  # type: ignore[no-untyped-def]
    """(the last value, the best time of `repeats` calls)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return value, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--families", help="comma-separated subset of: " + ", ".join(FAMILIES))
    args = parser.parse_args()
    wanted = [f.strip() for f in args.families.split(",")] if args.families else list(FAMILIES)
    data = table(args.rows)
    spec = infer_spec(data, DatasetConfig(target="y", time_column=None))
    print(
        f"Model families on {args.rows:,} rows x 11 columns (binary), default parameters; "
        "plain = skops to a plain file and back, unchecked; times are the best of 3 "
        "(1 for files over 100 MB).\n"
    )
    print(
        "| family | fit s | file MB | register s | plain save s | register / plain "
        "| load s | plain load s | load / plain |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for family in wanted:
            model, fit_s = timed(
                lambda family=family: fit_candidate(
                    data, spec, ModelConfig(estimator=FAMILIES[family]), seed=0
                )
            )
            plain = root / f"{family}.skops"
            _, write_s = timed(
                lambda model=model, plain=plain: plain.write_bytes(skops.io.dumps(model.estimator))
            )
            raw = plain.read_bytes()
            repeats = 1 if len(raw) > 100e6 else 3
            if repeats > 1:
                _, write_s = timed(
                    lambda model=model, plain=plain: plain.write_bytes(
                        skops.io.dumps(model.estimator)
                    ),
                    repeats,
                )
            registry = ModelRegistry(url=str(root / family.replace(" ", "-")))
            version, register_s = timed(
                lambda model=model, registry=registry: registry.register(
                    "m", model.estimator, metrics={}, lineage={}, schema={}
                ),
                repeats,
            )
            _, load_s = timed(
                lambda registry=registry: registry.load_model("m", version=1), repeats
            )

            def plain_load(plain: Path = plain) -> object:
                data = plain.read_bytes()
                return skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))

            _, plain_s = timed(plain_load, repeats)
            print(
                f"| {family} | {fit_s:.2f} | {len(raw) / 1e6:.2f} | {register_s:.3f} | "
                f"{write_s:.3f} | {register_s / write_s:.1f}x | {load_s:.3f} | {plain_s:.3f} | "
                f"{load_s / plain_s:.2f}x |",
                flush=True,
            )
            assert version.version == repeats


if __name__ == "__main__":
    main()
