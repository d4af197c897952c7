"""Shared test settings: no telemetry (there is no internet) before anything imports Prefect."""

import os

import pytest

from tests.support.devstack import SERVER_SETTINGS  # imports no Prefect

# No telemetry, and the test server records task events in batches, as every server ct starts does.
for name, value in SERVER_SETTINGS.items():
    os.environ.setdefault(name, value)
# Each CLI run in its own process: a warm process (flows/cli/warm.py) would outlive the test that
# started it; tests/flows/test_warm.py turns it on and stops what it started.
os.environ["CT_WARM"] = "0"


TIERS = {"unit": "unit", "flows": "flow", "e2e": "e2e"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test's tier is its folder: `-m unit`, `-m flow`, `-m e2e` (and `-m "not slow"`)."""
    for item in items:
        tier = TIERS.get(item.path.parent.name)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
        if tier == "e2e":
            item.add_marker(pytest.mark.slow)


def _restore(before: dict[str, str]) -> None:
    for name in set(os.environ) - set(before):
        del os.environ[name]
    os.environ.update(before)


@pytest.fixture(autouse=True, scope="module")
def _environment_restored_per_module():
    """As `_environment_restored`, for a module's own fixtures: module-scoped ones run the CLI
    in-process too, before any test's own snapshot. Without it, a later file on the same worker
    ran `demo -v` with Prefect's console lines still turned off."""
    before = dict(os.environ)
    yield
    _restore(before)


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test sees the environment the session started with: the CLI run in-process sets
    variables for its own process (e.g. Prefect's console log level when not verbose), which
    would otherwise reach every later test of this worker and the programs they start."""
    before = dict(os.environ)
    yield
    _restore(before)
