"""How ct runs a Prefect server of its own: the settings, in one place.

On SQLite, Prefect's server records each task event in its own transaction. A subflow created
meanwhile hits "database is locked", gets HTTP 503, and the client waits 2 s before retrying:
~2 s per subflow call. Recording task events in batches avoids the collision (task states reach
the UI up to 1 s later). Every server ct starts uses these: the CLI's temporary server,
`make server`, the test server, the local stack and the benchmarks.

Environment-variable form, with no Prefect import, so it can be applied before Prefect loads.
"""

from __future__ import annotations

RECORDER_ENV: dict[str, str] = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "1000",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}
