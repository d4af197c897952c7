"""Bring your own pipeline (issue 13, item 5): `model.factory` names a function returning an
unfitted pipeline with the user's own transformer; ct fits, gates, stores and reloads it, but only
once the user has listed the transformer's type in `model.trusted_types`."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_estimators import batch

from blocks.registry import ModelRegistry
from flows.ct import continuous_training
from tasks.config import CTConfig


@pytest.fixture
def user_code(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "user_code"))


def config_for(tmp_path, trusted: list[str]) -> CTConfig:
    return CTConfig.model_validate(
        {
            "dataset": {"name": "shop", "target": "target"},
            "model": {"factory": "shop_models:make_model", "trusted_types": trusted},
            "state_dir": str(tmp_path / "state"),
            "validation": {"quality_suite": False},
        }
    )


def files(tmp_path) -> list[str]:
    paths = []
    for number in (1, 2, 3):
        path = tmp_path / f"batch-{number}.csv"
        batch(number, regression=False).to_csv(path, index=False)
        paths.append(str(path))
    return paths


def test_a_users_pipeline_is_fitted_gated_stored_and_reloaded(tmp_path, user_code):
    config = config_for(tmp_path, ["shop_models.Ratio"])
    paths = files(tmp_path)
    assert continuous_training(paths[0], config).outcome == "first model v1"
    for path in paths[1:]:
        step = continuous_training(path, config)  # the champion reloads with the user's type
        assert step.retrained and step.champion_metric is not None, step
    version = ModelRegistry(url=config.registry_url).champion("shop")
    assert version is not None
    lineage = version.metadata["lineage"]
    assert lineage["estimator"] == "factory shop_models:make_model"
    assert lineage["trusted_types"] == ["shop_models.Ratio"]


def test_an_unreviewed_type_is_refused_before_anything_is_registered(tmp_path, user_code):
    config = config_for(tmp_path, [])
    state = continuous_training(files(tmp_path)[0], config, return_state=True)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "['shop_models.Ratio']" in message and "model.trusted_types" in message
    registry = ModelRegistry(url=config.registry_url)
    assert registry.versions("shop") == [] and registry.champion("shop") is None
