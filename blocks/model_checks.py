"""What the registry checks in a model file, so that loading it can neither run code nor crash.

skops loads only the types it is told to trust (no pickle). Some types ct must trust hold raw
indices that native code follows without bounds checks: a crafted file with one bad index makes
`predict` (or, for LightGBM and XGBoost, the load itself) read out of bounds and kill the process.
So each such type is trusted only together with a check of its structure:

* scikit-learn trees (`sklearn.tree._tree.Tree`: decision trees, forests, extra trees, gradient
  boosting) and histogram gradient boosting (`TreePredictor`): skops builds them (their
  `__setstate__` checks dtypes and shapes, not indices), and `secure_loaded` checks every one
  before the model is returned: children inside the tree and after their parent (so every walk
  ends), one parent per node, feature indices within the model's inputs, finite thresholds and
  values of the right shape, the recorded depth the real one.
* k-neighbours' KDTree/BallTree index (raw indices into the training points): never trusted as
  stored; `secure_loaded` checks the training points and builds the index again from them.
* LightGBM and XGBoost boosters: their native loaders follow the indices while loading, so
  `check_file` reads the booster out of the skops file *before* skops hands it to them: the
  LightGBM text model, and XGBoost's UBJSON snapshot (read by `blocks.ubjson`), checked tree by
  tree with the same rules. Categorical splits and linear trees are refused: ct one-hot encodes.

Everything else a model may hold must be on `TRUSTED_TYPES` (reviewed, with the reason beside each)
or on the user's own `model.trusted_types` list.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any, NoReturn

import numpy as np

from blocks.ubjson import loads as ubjson_loads

#: Types beyond skops' defaults that a stored model may contain, and why each is safe.
TRUSTED_TYPES: dict[str, str] = {
    "numpy.dtype": "OneHotEncoder(dtype=...) stores a dtype: building one runs no code",
    "sklearn.tree._tree.Tree": "node arrays: checked by check_loaded before any use",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": (
        "node records: checked by check_loaded before any use"
    ),
    "lightgbm.basic.Booster": "its text model is checked by check_file before LightGBM parses it",
    "lightgbm.sklearn.LGBMClassifier": "the wrapper: parameters and fitted attributes only",
    "lightgbm.sklearn.LGBMRegressor": "the wrapper: parameters and fitted attributes only",
    "collections.OrderedDict": "a dict (LightGBM keeps its parameters in one)",
    "sklearn.neighbors._kd_tree.KDTree": (
        "k-neighbours' index: never used as stored; secure_loaded rebuilds it from the checked "
        "training points"
    ),
    "sklearn.neighbors._ball_tree.BallTree": "as KDTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64": (
        "the default k-neighbours metric: no arrays; the rebuilt index makes its own"
    ),
    "xgboost.core.Booster": "its UBJSON snapshot is checked by check_file before XGBoost reads it",
    "xgboost.sklearn.XGBClassifier": "the wrapper: parameters and fitted attributes only",
    "xgboost.sklearn.XGBRegressor": "the wrapper: parameters and fitted attributes only",
}
_LEAF, _UNDEFINED = -1, -2  # sklearn's TREE_LEAF and TREE_UNDEFINED
_LIGHTGBM_OBJECTIVES = {
    "binary",
    "multiclass",
    "multiclassova",
    "regression",
    "regression_l1",
    "huber",
    "fair",
    "poisson",
    "quantile",
    "mape",
    "gamma",
    "tweedie",
    "cross_entropy",
}
_ROOT_PARENT = 0x7FFFFFFF  # XGBoost marks the root's parent so


class ModelCheckError(ValueError):
    """A model file breaks a structural rule; the message names where and which rule."""


def _fail(where: str, rule: str) -> NoReturn:
    raise ModelCheckError(f"{where}: {rule}")


def check_binary_tree(
    left: np.ndarray, right: np.ndarray, where: str, *, leaf: int = _LEAF
) -> np.ndarray:
    """Child arrays indexed by node (`leaf` marks a leaf): both children or none, children after
    their parent and inside the array, one parent per node but the root. Returns the inner mask."""
    n = left.size
    if n < 1 or right.size != n:
        _fail(where, f"children arrays of lengths {left.size} and {right.size}")
    is_leaf = left == leaf
    if not np.array_equal(is_leaf, right == leaf):
        _fail(where, "a node with exactly one child")
    inner = ~is_leaf
    index = np.arange(n)
    for children in (left[inner], right[inner]):
        if np.any(children <= index[inner]) or np.any(children >= n):
            _fail(where, f"child index outside (parent, {n}) (rule: children in [-1, node_count))")
    parents = np.bincount(np.concatenate([left[inner], right[inner]]), minlength=n)
    if parents[0] != 0 or np.any(parents[1:] != 1):
        _fail(where, "not a tree: a node with no parent or two")
    return inner


# ---------------------------------------------------------------- scikit-learn, after load
def check_sklearn_tree(
    tree: Any, where: str, *, n_features: int, n_outputs: int, n_classes: np.ndarray
) -> None:
    """Every rule a `Tree` must keep before predict, apply or decision_path may touch it."""
    from sklearn.tree._tree import Tree

    if type(tree) is not Tree:
        _fail(where, f"expected a Tree, found {type(tree).__name__}")
    n = int(tree.node_count)
    if n < 1 or tree.capacity != n:
        _fail(where, f"node_count {n} with {tree.capacity} nodes stored")
    if tree.n_features != n_features or tree.n_outputs != n_outputs:
        _fail(
            where,
            f"n_features {tree.n_features} / n_outputs {tree.n_outputs} differ from the model's",
        )
    if not np.array_equal(tree.n_classes, n_classes):
        _fail(where, f"n_classes {tree.n_classes.tolist()} differ from the model's")
    left, right, feature, threshold = (
        tree.children_left,
        tree.children_right,
        tree.feature,
        tree.threshold,
    )
    if not left.size == right.size == feature.size == threshold.size == n:
        _fail(where, "node arrays of lengths other than node_count")
    inner = check_binary_tree(left, right, where)
    if np.any(feature[inner] < 0) or np.any(feature[inner] >= n_features):
        _fail(
            where,
            f"feature index outside [0, {n_features}) (rule: features in [-2, n_features_in_))",
        )
    if np.any(feature[~inner] != _UNDEFINED):
        _fail(where, "a leaf with a split feature")
    if not np.all(np.isfinite(threshold[inner])):
        _fail(where, "a split threshold that is not finite")
    if not np.all(np.isin(tree.missing_go_to_left, (0, 1))):
        _fail(where, "missing_go_to_left other than 0 or 1")
    value = tree.value
    if value.shape != (n, n_outputs, int(n_classes.max())) or not np.all(np.isfinite(value)):
        _fail(where, f"value array of shape {value.shape} or not finite")
    depth = int(tree.compute_node_depths().max()) - 1  # safe now: every walk ends
    if tree.max_depth != depth:
        _fail(where, f"max_depth {tree.max_depth}, but the tree is {depth} deep")


def _check_tree_estimator(estimator: Any, where: str, n_features: int) -> int:
    if getattr(estimator, "n_features_in_", None) != n_features:
        _fail(where, "a member tree expects another number of inputs than its ensemble")
    n_outputs = int(estimator.n_outputs_)
    n_classes = (
        np.atleast_1d(np.asarray(estimator.n_classes_, dtype=np.intp))
        if hasattr(estimator, "classes_")
        else np.ones(n_outputs, dtype=np.intp)
    )
    if n_classes.size != n_outputs:
        _fail(where, "n_classes_ does not match n_outputs_")
    check_sklearn_tree(
        estimator.tree_, where, n_features=n_features, n_outputs=n_outputs, n_classes=n_classes
    )
    return id(estimator.tree_)


def _check_hist_gradient_boosting(estimator: Any, where: str) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    n_features, per_iteration = int(estimator.n_features_in_), int(estimator.n_trees_per_iteration_)
    stages = estimator._predictors
    if not isinstance(stages, list) or any(
        not isinstance(s, list) or len(s) != per_iteration for s in stages
    ):
        _fail(where, "_predictors is not a list of per-iteration lists")
    for i, stage in enumerate(stages):
        for k, predictor in enumerate(stage):
            at = f"{where} predictor [{i}][{k}]"
            if type(predictor) is not TreePredictor:
                _fail(at, f"expected a TreePredictor, found {type(predictor).__name__}")
            nodes = predictor.nodes
            if not (
                isinstance(nodes, np.ndarray)
                and nodes.dtype == PREDICTOR_RECORD_DTYPE
                and nodes.ndim == 1
                and nodes.size >= 1
                and nodes.flags.c_contiguous
            ):
                _fail(at, "nodes is not a contiguous array of predictor records")
            if np.any(nodes["is_leaf"] > 1) or np.any(nodes["is_categorical"] != 0):
                _fail(at, "flags other than 0/1, or categorical splits (ct one-hot encodes)")
            left = np.where(nodes["is_leaf"] == 1, _LEAF, nodes["left"].astype(np.int64))
            right = np.where(nodes["is_leaf"] == 1, _LEAF, nodes["right"].astype(np.int64))
            inner = check_binary_tree(left, right, at)
            features = nodes["feature_idx"][inner]
            if np.any(features < 0) or np.any(features >= n_features):
                _fail(at, f"feature index outside [0, {n_features})")
            if not np.all(np.isfinite(nodes["value"][~inner])):
                _fail(at, "a leaf value that is not finite")
            for bits in (predictor.raw_left_cat_bitsets, predictor.binned_left_cat_bitsets):
                if not (
                    isinstance(bits, np.ndarray)
                    and bits.dtype == np.uint32
                    and bits.ndim == 2
                    and bits.shape[1] == 8
                ):
                    _fail(at, "category bitsets of the wrong type or shape")


def _objects(root: Any) -> Iterator[Any]:
    """Every object reachable from `root` through attributes, containers and object arrays."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, np.ndarray):
            if item.dtype == object:
                stack.extend(item.ravel().tolist())
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack.extend(vars(item).values())


def secure_loaded(model: Any, source: str) -> None:
    """Make a loaded model safe to use: check every tree-holding estimator in it (a bare
    estimator, a Pipeline, or a user's own composition) and that no `Tree` or `TreePredictor`
    escaped the checks, and rebuild k-neighbours' indexes from their training points."""
    from sklearn.ensemble import (
        BaseEnsemble,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree import BaseDecisionTree
    from sklearn.tree._tree import Tree

    checked: set[int] = set()
    hist_checked: set[int] = set()
    for item in list(_objects(model)):
        name = f"{source}: {type(item).__name__}"
        n_features = getattr(item, "n_features_in_", None)
        if isinstance(item, BaseDecisionTree) and hasattr(item, "tree_"):
            if not isinstance(n_features, int):
                raise ModelCheckError(f"{name}: a fitted tree without n_features_in_")
            checked.add(_check_tree_estimator(item, name, n_features))
        elif isinstance(item, BaseGradientBoosting) and hasattr(item, "estimators_"):
            stages = item.estimators_
            per_iteration = int(item.n_trees_per_iteration_)
            if not (
                isinstance(stages, np.ndarray)
                and stages.ndim == 2
                and stages.shape == (item.n_estimators_, per_iteration)
            ):
                _fail(name, "estimators_ is not an (n_estimators_, n_trees_per_iteration_) array")
            for index, member in enumerate(stages.ravel()):
                if type(member).__name__ != "DecisionTreeRegressor" or member.n_outputs_ != 1:
                    _fail(f"{name} stage {index}", "not a single-output regression tree")
                if member.n_features_in_ != n_features:  # stages are called without input checks
                    _fail(f"{name} stage {index}", "expects another number of inputs")
        elif isinstance(item, BaseEnsemble) and hasattr(item, "estimators_"):
            for member in item.estimators_:
                if not isinstance(member, BaseDecisionTree):
                    continue  # bagging of other models: their own checks apply
                # members are called without input checks: the forest's check must cover them
                if member.n_features_in_ != n_features or member.n_outputs_ != item.n_outputs_:
                    _fail(name, "a member tree with other inputs or outputs than its forest")
                if not np.array_equal(
                    np.atleast_1d(getattr(member, "n_classes_", 1)),
                    np.atleast_1d(getattr(item, "n_classes_", 1)),
                ):
                    _fail(name, "a member tree with other classes than its forest")
        elif isinstance(
            item, HistGradientBoostingClassifier | HistGradientBoostingRegressor
        ) and hasattr(item, "_predictors"):
            if getattr(item, "_in_fit", False):
                _fail(name, "stored in the middle of fitting")
            _check_hist_gradient_boosting(item, name)
            hist_checked.update(id(p) for stage in item._predictors for p in stage)
    for item in _objects(model):
        if isinstance(item, Tree) and id(item) not in checked:
            _fail(source, "a tree outside any estimator ct knows how to check")
        if isinstance(item, TreePredictor) and id(item) not in hist_checked:
            _fail(source, "a histogram tree outside any estimator ct knows how to check")
    _check_booster_wrappers(model, source)
    _rebuild_neighbour_indexes(model, source)


def _rebuild_neighbour_indexes(model: Any, source: str) -> None:
    """A stored KDTree/BallTree holds indices that queries follow unchecked; rather than check
    them, build the index again from the training points (as fit does), which are checked."""
    from sklearn.neighbors import BallTree, KDTree
    from sklearn.neighbors._base import NeighborsBase

    for item in list(_objects(model)):
        if not isinstance(item, NeighborsBase) or not hasattr(item, "_fit_method"):
            continue
        where = f"{source}: {type(item).__name__}"
        points = getattr(item, "_fit_X", None)
        if item._fit_method not in {"kd_tree", "ball_tree", "brute"}:
            _fail(where, f"an unknown neighbour search {item._fit_method!r}")
        if not (
            isinstance(points, np.ndarray)
            and points.ndim == 2
            and points.dtype.kind == "f"
            and points.shape == (item.n_samples_fit_, item.n_features_in_)
            and np.all(np.isfinite(points))
        ):
            _fail(where, "training points of the wrong shape or not finite")
        if item._fit_method == "brute":
            item._tree = None
            continue
        index = KDTree if item._fit_method == "kd_tree" else BallTree
        item._tree = index(
            points,
            item.leaf_size,
            metric=item.effective_metric_,
            **(item.effective_metric_params_ or {}),
        )


def _check_booster_wrappers(model: Any, source: str) -> None:
    """LightGBM and XGBoost wrappers: the booster's inputs match the wrapper's, and no parameter
    turns off the libraries' own check of the input width."""
    for item in _objects(model):
        module = type(item).__module__
        if module.startswith("lightgbm") and hasattr(item, "_Booster"):
            params = item.get_params()
            if params.get("predict_disable_shape_check") or (
                isinstance(params.get("params"), dict)
                and params["params"].get("predict_disable_shape_check")
            ):
                _fail(f"{source}: {type(item).__name__}", "predict_disable_shape_check is set")
            if item._Booster is not None and item._Booster.num_feature() != item.n_features_in_:
                _fail(f"{source}: {type(item).__name__}", "booster and wrapper differ in inputs")
        if module.startswith("xgboost") and hasattr(item, "_Booster"):
            booster = item.get_booster()
            if booster.num_features() != item.n_features_in_:
                _fail(f"{source}: {type(item).__name__}", "booster and wrapper differ in inputs")


# ---------------------------------------------------------------- LightGBM and XGBoost, before load
def _numbers(
    text: str, count: int, where: str, *, integer: bool, allow_inf: bool = False
) -> np.ndarray:
    parts = text.split(" ") if text else []
    if len(parts) != count:
        _fail(where, f"{len(parts)} values where {count} belong")
    try:
        values = np.array([int(p) for p in parts] if integer else [float(p) for p in parts])
    except ValueError:
        _fail(where, "a value that is not a number")
    if (
        not integer
        and count
        and (np.any(np.isnan(values)) or (not allow_inf and not np.all(np.isfinite(values))))
    ):
        _fail(where, "a value that is not finite")
    return values


_LIGHTGBM_INTS = {
    "split_feature": -1,
    "left_child": -1,
    "right_child": -1,
    "decision_type": -1,
    "internal_count": -1,
    "leaf_count": 0,
}
_LIGHTGBM_FLOATS = {
    "split_gain": -1,
    "threshold": -1,
    "internal_value": -1,
    "internal_weight": -1,
    "leaf_value": 0,
    "leaf_weight": 0,
}
_LIGHTGBM_TREE_KEYS = (
    {"num_leaves", "num_cat", "is_linear", "shrinkage"}
    | set(_LIGHTGBM_INTS)
    | set(_LIGHTGBM_FLOATS)
)


def check_lightgbm_text(text: str, where: str) -> int:
    """A LightGBM v4 text model, as its parser will read it; returns the number of inputs.

    Children of an internal node are internal nodes after it (c >= 0) or leaves (~c); the tree
    sizes in the header, which the parser uses as raw offsets, must be the real ones.
    """
    if "\x00" in text or "\r" in text:
        _fail(where, "NUL or CR characters in the model text")
    head, found, rest = text.partition("\nTree=0\n")
    if not found:
        _fail(where, "no trees")
    lines = head.split("\n")
    if lines[0] != "tree":
        _fail(where, "not a LightGBM text model")
    header: dict[str, str] = {}
    for line in lines[1:]:
        if not line:  # the blank line before the first tree
            continue
        key, eq, value = line.partition("=")
        if not eq:
            _fail(where, f"header line without '=': {line[:40]!r}")
        header[key] = value
    if header.get("version") != "v4":
        _fail(where, f"model version {header.get('version')!r}, not v4")
    try:
        n_features = int(header["max_feature_idx"]) + 1
        n_classes = int(header["num_class"])
        per_iteration = int(header["num_tree_per_iteration"])
    except (KeyError, ValueError):
        _fail(where, "header without max_feature_idx, num_class or num_tree_per_iteration")
    if not (
        1 <= n_features <= 1_000_000 and 1 <= n_classes <= 10_000 and per_iteration == n_classes
    ):
        _fail(where, "header counts out of range")
    if header.get("objective", "").split(" ")[0] not in _LIGHTGBM_OBJECTIVES:
        _fail(where, f"objective {header.get('objective')!r} is not one ct knows")
    for key in ("feature_names", "feature_infos"):
        if len(header.get(key, "").split(" ")) != n_features:
            _fail(where, f"{key} does not list {n_features} features")
    body, found, _ = ("Tree=0\n" + rest).partition("end of trees")
    if not found:
        _fail(where, "no 'end of trees'")
    blocks = body.split("\n\n\n")
    if blocks[-1] != "":
        _fail(where, "the tree section is laid out unlike LightGBM's")
    blocks = blocks[:-1]
    if "tree_sizes" in header and header["tree_sizes"] != " ".join(str(len(b) + 3) for b in blocks):
        _fail(where, "tree_sizes do not match the trees (the parser would read past them)")
    if len(blocks) % per_iteration:
        _fail(where, "the number of trees is not a multiple of num_tree_per_iteration")
    for number, block in enumerate(blocks):
        at = f"{where} tree {number}"
        lines = block.split("\n")
        if lines[0] != f"Tree={number}" or len(lines) - 1 > 22:
            _fail(at, "a tree block unlike LightGBM's")
        fields: dict[str, str] = {}
        for line in lines[1:]:
            key, eq, value = line.partition("=")
            if not eq or key in fields or key not in _LIGHTGBM_TREE_KEYS:
                _fail(at, f"unexpected line {line[:40]!r}")
            fields[key] = value
        try:
            leaves, categorical = int(fields["num_leaves"]), int(fields["num_cat"])
            float(fields.get("shrinkage", "1"))
        except (KeyError, ValueError):
            _fail(at, "num_leaves, num_cat or shrinkage missing or not a number")
        if fields.get("is_linear", "0") != "0" or categorical != 0:
            _fail(at, "linear trees and categorical splits are refused (ct one-hot encodes)")
        if not 1 <= leaves <= 10_000_000:
            _fail(at, f"num_leaves {leaves}")
        _numbers(fields.get("leaf_value", ""), leaves, f"{at} leaf_value", integer=False)
        if leaves == 1:
            continue
        arrays = {}
        for key, offset in _LIGHTGBM_INTS.items():
            if key in fields or offset == -1:
                arrays[key] = _numbers(
                    fields.get(key, ""), leaves + offset, f"{at} {key}", integer=True
                )
        for key, offset in _LIGHTGBM_FLOATS.items():
            if key in fields:  # LightGBM itself writes threshold=inf for some missing-value splits
                arrays[key] = _numbers(
                    fields[key],
                    leaves + offset,
                    f"{at} {key}",
                    integer=False,
                    allow_inf=key == "threshold",
                )
        if "threshold" not in arrays:
            _fail(at, "no thresholds")
        features = arrays["split_feature"]
        if np.any(features < 0) or np.any(features >= n_features):
            _fail(at, f"split_feature outside [0, {n_features})")
        kinds = arrays["decision_type"]
        if np.any(kinds < 0) or np.any(kinds & 1) or np.any(kinds > 11):
            _fail(at, "a decision_type LightGBM does not write for numeric splits")
        _check_lightgbm_children(arrays["left_child"], arrays["right_child"], leaves, at)
    return n_features


def _check_lightgbm_children(left: np.ndarray, right: np.ndarray, leaves: int, where: str) -> None:
    internal = leaves - 1
    parent = np.concatenate([np.arange(internal), np.arange(internal)])
    children = np.concatenate([left, right])
    inner = children >= 0
    if np.any(children[inner] <= parent[inner]) or np.any(children[inner] >= internal):
        _fail(where, f"an internal child outside (parent, {internal})")
    to_leaves = ~children[~inner]
    if np.any(to_leaves >= leaves):
        _fail(where, f"a leaf index outside [0, {leaves})")
    if (
        np.bincount(children[inner], minlength=internal)[0] != 0
        or np.any(np.bincount(children[inner], minlength=internal)[1:] != 1)
        or np.any(np.bincount(to_leaves, minlength=leaves) != 1)
    ):
        _fail(where, "not a tree: a node with no parent or two")


def check_xgboost_snapshot(raw: bytes, where: str) -> int:
    """XGBoost's booster snapshot (UBJSON {Config, Model}), as its loader will read it; returns
    the number of inputs. Prediction steps to `left + !decision`, so right = left + 1."""
    try:
        snapshot = ubjson_loads(raw)
        learner = snapshot["Model"]["learner"]
        params = learner["learner_model_param"]
        n_features, n_classes = int(params["num_feature"]), int(params["num_class"])
        booster = learner["gradient_booster"]
        model = booster["model"]
        trees, tree_info = model["trees"], model["tree_info"]
        declared = int(model["gbtree_model_param"]["num_trees"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ModelCheckError(f"{where}: not an XGBoost booster snapshot ({exc})") from None
    if booster.get("name") != "gbtree":
        _fail(where, f"booster {booster.get('name')!r}; only gbtree is accepted")
    if not (1 <= n_features <= 1_000_000 and 0 <= n_classes <= 10_000):
        _fail(where, "num_feature or num_class out of range")
    info = np.asarray(tree_info)
    if not isinstance(trees, list) or len(trees) != declared or info.size != declared:
        _fail(where, "the number of trees differs from num_trees")
    if info.size and (info.min() < 0 or info.max() >= max(n_classes, 1)):
        _fail(where, "tree_info names an output that does not exist")
    for number, tree in enumerate(trees):
        at = f"{where} tree {number}"
        try:
            param = tree["tree_param"]
            n = int(param["num_nodes"])
            arrays = {
                key: tree[key]
                for key in (
                    "left_children",
                    "right_children",
                    "parents",
                    "split_indices",
                    "split_conditions",
                    "default_left",
                    "loss_changes",
                    "sum_hessian",
                    "base_weights",
                )
            }
        except (KeyError, TypeError, ValueError):
            _fail(at, "a tree without its node arrays")
        if int(param.get("num_deleted", "0")) != 0 or str(
            param.get("size_leaf_vector", "1")
        ) not in {"0", "1"}:
            _fail(at, "deleted nodes or multi-target leaves are refused")
        for key, values in arrays.items():
            if not isinstance(values, np.ndarray) or values.shape != (n,):
                _fail(at, f"{key} is not an array of num_nodes ({n}) values")
        categorical = any(len(tree.get(k, [])) for k in ("categories", "categories_nodes"))
        if categorical or ("split_type" in tree and np.any(np.asarray(tree["split_type"]) != 0)):
            _fail(at, "categorical splits are refused (ct one-hot encodes)")
        left, right = (
            arrays["left_children"].astype(np.int64),
            arrays["right_children"].astype(np.int64),
        )
        inner = check_binary_tree(left, right, at)
        if np.any(right[inner] != left[inner] + 1):
            _fail(at, "a right child that is not left + 1")
        expected = np.full(n, _ROOT_PARENT, dtype=np.int64)
        expected[left[inner]] = np.flatnonzero(inner)
        expected[right[inner]] = np.flatnonzero(inner)
        if not np.array_equal(arrays["parents"].astype(np.int64) & _ROOT_PARENT, expected):
            _fail(at, "parents do not match the children")
        features = arrays["split_indices"].astype(np.int64)[inner]
        if np.any(features < 0) or np.any(features >= n_features):
            _fail(at, f"split index outside [0, {n_features})")
        if not (
            np.all(np.isfinite(arrays["split_conditions"]))
            and np.all(np.isfinite(arrays["base_weights"]))
        ):
            _fail(at, "a split condition or weight that is not finite")
    return n_features


def _booster_nodes(schema: Any) -> Iterator[dict[str, Any]]:
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("__class__") == "Booster":
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_file(data: bytes, source: str) -> None:
    """Check every LightGBM and XGBoost booster in a skops file before skops builds it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ModelCheckError(f"{source}: not a skops file ({exc})") from None
    for node in _booster_nodes(schema):
        module = node.get("__module__")
        where = f"{source}: {module}.Booster"
        state = node.get("content", {})
        if (
            node.get("__loader__") != "ObjectNode"
            or module not in {"lightgbm.basic", "xgboost.core"}
            or not isinstance(state, dict)
            or state.get("__loader__") != "DictNode"
        ):
            _fail(where, "a booster stored unlike LightGBM's or XGBoost's")
        fields = state.get("content", {})
        if module == "lightgbm.basic":
            handle = fields.get("_handle", {})
            if (
                "handle" in fields
                or handle.get("__loader__") != "JsonNode"
                or handle.get("__class__") != "str"
            ):
                _fail(where, "the model is not stored as text")
            text = json.loads(handle["content"])
            if not isinstance(text, str):
                _fail(where, "the model is not stored as text")
            check_lightgbm_text(text, where)
        else:
            handle = fields.get("handle", {})
            if handle.get("__loader__") != "BytearrayNode" or "file" not in handle:
                _fail(where, "the snapshot is not stored as bytes")
            try:
                raw = archive.read(handle["file"])
            except KeyError:
                _fail(where, "the snapshot's file is missing")
            check_xgboost_snapshot(raw, where)
