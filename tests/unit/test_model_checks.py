"""Loading a model can neither run code nor crash the process (issue 13, item 4).

Every model family round-trips through the registry; a file crafted with one out-of-range index
(sklearn trees, histogram boosting, LightGBM, XGBoost) is refused with a RegistryError naming the
file and the rule, and a process that loads it survives, where loading it unchecked kills it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from hypothesis import given, settings
from hypothesis import strategies as st
from model_files import (
    edit_hist_nodes,
    edit_lightgbm_text,
    edit_tree_nodes,
    edit_xgboost_snapshot,
    lightgbm_tree_field,
    set_tree_scalar,
    ubjson_dumps,
)
from sklearn.base import BaseEstimator, TransformerMixin

from blocks import ubjson
from blocks.registry import ModelRegistry, RegistryError
from tasks.config import DatasetConfig, ModelConfig
from tasks.train import fit_candidate, predict
from tasks.validate import infer_spec

FAMILIES = {
    "decision-tree": "sklearn.tree.DecisionTree{task}",
    "random-forest": "sklearn.ensemble.RandomForest{task}",
    "extra-trees": "sklearn.ensemble.ExtraTrees{task}",
    "gradient-boosting": "sklearn.ensemble.GradientBoosting{task}",
    "hist-gradient-boosting": "sklearn.ensemble.HistGradientBoosting{task}",
    "lightgbm": "lightgbm.LGBM{task}",
    "xgboost": "xgboost.XGB{task}",
    "k-neighbours": "sklearn.neighbors.KNeighbors{task}",
}
SMALL = {"n_estimators": 5}  # a few trees keep files and fits small


def frame(kind: str, n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.uniform(0, 10, n),
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )
    score = data["x"] + 0.2 * data["z"] + (data["colour"] == "red") + rng.normal(0, 0.5, n)
    if kind == "binary":
        data["y"] = np.where(score > 1.0, "yes", "no")
    elif kind == "multiclass":
        data["y"] = np.digitize(score, [0.5, 1.2, 2.0]) + 3  # labels 3..6
    else:
        data["y"] = score * 10
    return data


def fitted(family: str, kind: str, **params: object):
    data = frame(kind)
    task = "Regressor" if kind == "regression" else "Classifier"
    spec = infer_spec(data, DatasetConfig(target="y", time_column=None))
    defaults = {} if family in {"decision-tree", "k-neighbours"} else dict(SMALL)
    if family == "hist-gradient-boosting":
        defaults = {"max_iter": 5}
    model = ModelConfig(estimator=FAMILIES[family].format(task=task), params={**defaults, **params})
    return fit_candidate(data, spec, model, seed=0), spec, data


def registered(tmp_path: Path, model) -> tuple[ModelRegistry, Path]:
    registry = ModelRegistry(url=str(tmp_path / "registry"))
    version = registry.register("m", model, metrics={}, lineage={}, schema={})
    return registry, Path(version.path)


def tamper(folder: Path, data: bytes) -> None:
    """Replace a version's model file and its recorded sha256: an attacker with write access."""
    (folder / "model.skops").write_bytes(data)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["files"]["model.skops"] = hashlib.sha256(data).hexdigest()
    (folder / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_round_trips_through_the_registry(tmp_path, family, kind):
    model, spec, data = fitted(family, kind)
    registry, _ = registered(tmp_path, model.estimator)
    loaded = registry.load_model("m", version=1)
    again = type(model)(loaded, model.labels)
    if kind == "regression":
        np.testing.assert_allclose(predict(again, data, spec), predict(model, data, spec))
    else:
        assert (predict(again, data, spec) == predict(model, data, spec)).all()
        np.testing.assert_allclose(
            loaded.predict_proba(data[spec.features]),
            model.estimator.predict_proba(data[spec.features]),
        )


def _root_children(nodes: np.ndarray) -> None:
    nodes[0]["left_child"] = 10**9
    nodes[0]["right_child"] = 10**9


def _cycle(nodes: np.ndarray) -> None:
    inner = np.flatnonzero(nodes["left_child"] >= 0)
    nodes[inner[1]]["left_child"] = 0  # back to the root: a walk would never end


def _fifth_input(nodes: np.ndarray) -> None:
    nodes[0]["feature"] = 5


def _nan_threshold(nodes: np.ndarray) -> None:
    nodes[0]["threshold"] = np.nan


def _hist_child(nodes: np.ndarray) -> None:
    nodes[0]["left"] = 60_000


def _lgbm(key: str, position: int, value: object):
    return lambda text: lightgbm_tree_field(text, 0, key, position, value)


def _lgbm_sizes(text: str) -> str:
    return text.replace("tree_sizes=", "tree_sizes=99999", 1)


def _xgb(key: str, position: int, value: int):
    def edit(raw: bytes) -> bytes:
        snapshot = ubjson.loads(raw)
        tree = snapshot["Model"]["learner"]["gradient_booster"]["model"]["trees"][0]
        values = tree[key].copy()
        values[position] = value
        tree[key] = values
        return ubjson_dumps(snapshot)

    return edit


CRAFTED = [
    ("decision-tree", lambda d: edit_tree_nodes(d, _root_children), "child index outside"),
    ("decision-tree", lambda d: edit_tree_nodes(d, _cycle), "child index outside"),
    ("decision-tree", lambda d: edit_tree_nodes(d, _nan_threshold), "threshold that is not finite"),
    ("decision-tree", lambda d: set_tree_scalar(d, "max_depth", 0), "max_depth 0"),
    ("random-forest", lambda d: edit_tree_nodes(d, _root_children, which=3), "child index outside"),
    ("gradient-boosting", lambda d: edit_tree_nodes(d, _root_children, which=2), "child index"),
    ("hist-gradient-boosting", lambda d: edit_hist_nodes(d, _hist_child), "child index outside"),
    ("lightgbm", lambda d: edit_lightgbm_text(d, _lgbm("split_feature", 0, 999)), "split_feature"),
    ("lightgbm", lambda d: edit_lightgbm_text(d, _lgbm("left_child", 0, 50)), "internal child"),
    ("lightgbm", lambda d: edit_lightgbm_text(d, _lgbm_sizes), "tree_sizes"),
    ("xgboost", lambda d: edit_xgboost_snapshot(d, _xgb("left_children", 0, 10**6)), "child"),
    ("xgboost", lambda d: edit_xgboost_snapshot(d, _xgb("parents", 1, 10**6)), "parents"),
    ("xgboost", lambda d: edit_xgboost_snapshot(d, _xgb("split_indices", 0, 999)), "split index"),
]


@pytest.mark.parametrize(
    ("family", "craft", "rule"), CRAFTED, ids=[f"{c[0]}-{c[2]}" for c in CRAFTED]
)
def test_a_crafted_file_is_refused_naming_the_file_and_the_rule(tmp_path, family, craft, rule):
    model, _, _ = fitted(family, "binary")
    registry, folder = registered(tmp_path, model.estimator)
    tamper(folder, craft((folder / "model.skops").read_bytes()))
    with pytest.raises(RegistryError, match="refused: ") as info:
        registry.load_model("m", version=1)
    assert str(folder / "model.skops") in str(info.value) and rule in str(info.value)


def test_the_feature_rule_names_the_inputs(tmp_path):
    model, _, _ = fitted("decision-tree", "binary")
    registry, folder = registered(tmp_path, model.estimator)
    data = (folder / "model.skops").read_bytes()
    tamper(folder, edit_tree_nodes(data, _fifth_input))
    with pytest.raises(RegistryError, match=r"feature index outside \[0, 5\)"):
        registry.load_model("m", version=1)  # x, z and three one-hot colours: 5 inputs


UNCHECKED = """
import sys, numpy as np, pandas as pd, skops.io
model = skops.io.loads(open(sys.argv[1], "rb").read(), trusted=skops.io.get_untrusted_types(
    data=open(sys.argv[1], "rb").read()))
rows = pd.DataFrame({"x": np.zeros(50), "z": np.zeros(50), "colour": ["red"] * 50})
model.predict(rows)
print("predicted")
"""
CHECKED = """
import sys, numpy as np, pandas as pd
from blocks.registry import ModelRegistry, RegistryError
try:
    model = ModelRegistry(url=sys.argv[1]).load_model("m", version=1)
except RegistryError as exc:
    print("refused:", exc)
    sys.exit(0)
rows = pd.DataFrame({"x": np.zeros(50), "z": np.zeros(50), "colour": ["red"] * 50})
model.predict(rows)
print("predicted")
"""


def test_a_process_that_loads_a_crafted_tree_survives(tmp_path):
    """Tested in subprocesses: unchecked, the same file kills the process that predicts with it
    (so the check is what saves it); through the registry it is refused and the process lives."""
    model, _, _ = fitted("decision-tree", "binary")
    registry, folder = registered(tmp_path, model.estimator)
    crafted = edit_tree_nodes((folder / "model.skops").read_bytes(), _root_children)
    tamper(folder, crafted)
    run = {"capture_output": True, "text": True, "timeout": 120, "cwd": Path(__file__).parents[2]}
    unchecked = subprocess.run(
        [sys.executable, "-c", UNCHECKED, str(folder / "model.skops")], check=False, **run
    )
    assert unchecked.returncode < 0, unchecked  # killed by a signal (SIGSEGV)
    checked = subprocess.run([sys.executable, "-c", CHECKED, registry.url], check=False, **run)
    assert checked.returncode == 0, checked.stderr
    assert "refused:" in checked.stdout and "child index outside" in checked.stdout


class Clip(TransformerMixin, BaseEstimator):
    """A user's own transformer: a type skops does not know, so nobody trusts it by default."""

    def fit(self, X, y=None):
        self.high_ = np.nanmax(np.asarray(X, dtype=float), axis=0)
        return self

    def transform(self, X):
        return np.minimum(np.asarray(X, dtype=float), self.high_)


def test_a_model_with_an_unreviewed_type_is_refused_unless_the_user_trusts_it(tmp_path):
    model = Clip().fit(np.arange(6.0).reshape(3, 2))
    registry = ModelRegistry(url=str(tmp_path / "registry"))
    name = f"{Clip.__module__}.Clip"
    with pytest.raises(RegistryError, match=rf"nobody reviewed.*{name}.*model\.trusted_types"):
        registry.register("m", model, metrics={}, lineage={}, schema={})
    assert registry.versions("m") == []  # refused before anything was written
    registry.register("m", model, metrics={}, lineage={}, schema={}, trusted=[name])
    with pytest.raises(RegistryError, match=rf"{name}.*model\.trusted_types"):
        registry.load_model("m", version=1)
    loaded = registry.load_model("m", version=1, trusted=[name])
    assert loaded.high_.tolist() == [4.0, 5.0]


def test_a_neighbour_index_is_rebuilt_not_trusted(tmp_path):
    """A KDTree's stored indices are never used: the loaded model's index is built again from
    the training points, so a crafted index changes nothing."""
    model, spec, data = fitted("k-neighbours", "binary", algorithm="kd_tree")
    registry, folder = registered(tmp_path, model.estimator)
    expected = model.estimator.predict(data[spec.features])
    model.estimator[-1]._tree.get_arrays()[1][:] = 10**6  # idx_array: every point out of range
    crafted = skops.io.dumps(model.estimator)
    unchecked = skops.io.loads(crafted, trusted=skops.io.get_untrusted_types(data=crafted))
    assert unchecked[-1]._tree.get_arrays()[1].max() == 10**6  # the file is crafted
    tamper(folder, crafted)
    loaded = registry.load_model("m", version=1)
    assert sorted(loaded[-1]._tree.get_arrays()[1]) == list(range(len(data)))
    assert (loaded.predict(data[spec.features]) == expected).all()


def test_ubjson_reads_what_xgboost_writes():
    model, _, _ = fitted("xgboost", "multiclass")
    booster = model.estimator[-1].get_booster()
    decoded = ubjson.loads(bytes(booster.save_raw("ubj")))
    expected = json.loads(bytes(booster.save_raw("json")))

    def same(ours, theirs, where="") -> None:
        if isinstance(theirs, dict):
            assert isinstance(ours, dict) and ours.keys() == theirs.keys(), where
            for key in theirs:
                same(ours[key], theirs[key], f"{where}/{key}")
        elif isinstance(theirs, list) and isinstance(ours, np.ndarray):
            np.testing.assert_allclose(ours, np.asarray(theirs, dtype=float), rtol=1e-6)
        elif isinstance(theirs, list):
            assert len(ours) == len(theirs), where
            for a, b in zip(ours, theirs, strict=True):
                same(a, b, where)
        elif isinstance(theirs, float):
            assert ours == pytest.approx(theirs, rel=1e-6), where
        else:
            assert ours == theirs, where

    same(decoded["learner"], expected["learner"])
    # and the test's writer is faithful: XGBoost takes the re-encoded snapshot unchanged
    data = skops.io.dumps(model.estimator)
    rewritten = edit_xgboost_snapshot(data, lambda raw: ubjson_dumps(ubjson.loads(raw)))
    reloaded = skops.io.loads(rewritten, trusted=skops.io.get_untrusted_types(data=rewritten))
    rows = frame("multiclass")
    np.testing.assert_allclose(
        reloaded.predict_proba(rows[["x", "z", "colour"]]),
        model.estimator.predict_proba(rows[["x", "z", "colour"]]),
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 4000))
def test_ubjson_refuses_malformed_bytes_with_a_value_error_only(noise, cut):
    raw = _snapshot()
    for data in (noise, raw[:cut], raw[:cut] + noise):
        with contextlib.suppress(ValueError):  # anything else (or a crash) fails the test
            ubjson.loads(data)


_CACHE: dict[str, bytes] = {}


def _snapshot() -> bytes:
    if "raw" not in _CACHE:
        model, _, _ = fitted("xgboost", "binary")
        _CACHE["raw"] = bytes(model.estimator[-1].get_booster().save_raw("ubj"))
    return _CACHE["raw"]


def test_the_trusted_list_is_exactly_what_the_families_need(tmp_path):
    """No type on the list that no model needs, none missing: every family's untrusted types
    (skops' own audit) are on it, and together they are all of it."""
    from blocks.model_checks import TRUSTED_TYPES

    needed: set[str] = set()
    variants = [(family, {}) for family in FAMILIES] + [
        ("k-neighbours", {"algorithm": "ball_tree"})
    ]
    for family, params in variants:
        for kind in ("binary", "regression"):
            model, _, _ = fitted(family, kind, **params)
            needed |= set(skops.io.get_untrusted_types(data=skops.io.dumps(model.estimator)))
    assert needed == set(TRUSTED_TYPES), needed ^ set(TRUSTED_TYPES)
    assert all(reason for reason in TRUSTED_TYPES.values())
