"""A user's own package, as `model.factory` names it: feature engineering with a custom
transformer inside an ordinary scikit-learn pipeline (the README's example)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


class Ratio(TransformerMixin, BaseEstimator):
    """x / z, a feature the model cannot build from the columns alone (z is never 0 here)."""

    def fit(self, X: pd.DataFrame, y: object = None) -> Ratio:
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        values = np.asarray(X, dtype=float)
        return (values[:, 0] / np.where(values[:, 1] == 0, 1.0, values[:, 1]))[:, None]


def make_model() -> Pipeline:
    features = ColumnTransformer(
        [
            ("ratio", Ratio(), ["x", "z"]),
            ("raw", "passthrough", ["x", "z"]),
            ("shop", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["shop"]),
        ]
    )
    return Pipeline(
        [("features", features), ("model", HistGradientBoostingClassifier(max_iter=30))]
    )
