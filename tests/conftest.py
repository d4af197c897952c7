"""Shared test settings: no telemetry (there is no internet) before anything imports Prefect."""

import os

from webhooks.devstack import SERVER_SETTINGS  # imports no Prefect

# No telemetry, and the test server records task events in batches, as every server ct starts does.
for name, value in SERVER_SETTINGS.items():
    os.environ.setdefault(name, value)
