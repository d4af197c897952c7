"""A run that an arrival started waits for that event to reach the event log (flows/arrivals.py).

The server writes events in batches, up to 5 s after they arrive (flows/cli/prefect_server.py), and
the test server does the same; the run below starts at once, before the event is written.
"""

import uuid

from prefect.events import emit_event

from flows.arrivals import process_arrivals
from tasks.config import CTConfig
from tasks.demo import demo_batch
from webhooks.receiver import Arrival, event_for


def test_a_run_started_before_its_event_is_logged_still_processes_it(tmp_path):
    dataset = f"arrivals-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "batch-1.csv"
    demo_batch(1, rows=400).to_csv(path, index=False)
    arrival = Arrival(dataset=dataset, path=str(path))
    resource, payload = event_for("data", arrival, f"msg_{uuid.uuid4().hex}")
    event = emit_event(event="ct.data.arrived", resource=resource, payload=payload)
    assert event is not None
    config = CTConfig.model_validate(
        {
            "dataset": {"target": "churned"},
            "state_dir": str(tmp_path / "state"),
            "validation": {"quality_suite": False},
        }
    )
    results = process_arrivals(dataset, settle_seconds=0, config=config, arrival=str(event.id))
    assert [r.outcome for r in results] == ["first model v1"]
    assert (tmp_path / "state" / "arrivals" / dataset / "done" / str(event.id)).read_text() == "ok"
