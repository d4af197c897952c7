"""Shared test settings: no telemetry (there is no internet) before anything imports Prefect."""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
