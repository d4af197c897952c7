"""Shared test settings: no telemetry (there is no internet) before anything imports Prefect."""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The test server records task events in batches: with one SQLite transaction per event, creating
# a subflow collides with the recorder ("database is locked" -> HTTP 503 -> 2 s client back-off).
os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "1000")
os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL", "1")
