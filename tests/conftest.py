"""Shared test settings: no telemetry (there is no internet) before anything imports Prefect."""

import os

from flows.prefect_server import RECORDER_ENV  # imports no Prefect

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The test server records task events in batches, as every server ct starts does.
for name, value in RECORDER_ENV.items():
    os.environ.setdefault(name, value)
