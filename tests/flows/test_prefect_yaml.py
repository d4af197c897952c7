"""prefect.yaml points at flows that load, with parameters they accept."""

import copy
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[2]


def test_every_deployment_entrypoint_loads_and_takes_its_parameters():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["deployments"]
    for deployment in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
        accepted = set(flow.parameters.properties)
        assert set(deployment.get("parameters", {})) <= accepted, deployment["name"]


def test_every_trigger_renders_parameters_its_flow_accepts():
    """The trigger's templates render as the server renders them when it runs the deployment: a
    lone `{{ expr }}` becomes `{{ expr | tojson }}` (prefect.server.events.actions), so an
    expression whose value JSON cannot hold (an event's UUID id) fails every run it would start,
    which only the end-to-end stack would otherwise show."""
    from prefect.server.events.actions import RunDeployment
    from prefect.server.events.schemas.events import ReceivedEvent
    from prefect.utilities.schema_tools.hydration import HydrationContext, HydrationError, hydrate

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    checked = 0
    for deployment in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
        for trigger in deployment.get("triggers", []):
            if not trigger.get("parameters"):
                continue
            kind = trigger["match"]["prefect.resource.id"].split(".*")[0]  # ct.dataset, ct.model
            event = ReceivedEvent(
                event=trigger["expect"][0],
                resource={"prefect.resource.id": f"{kind}.demo", "prefect.resource.name": "demo"},
                payload={"name": "demo", "version": 3, "source": "/data/b.csv", "labelled": True},
                id=uuid.uuid4(),
                occurred=datetime.now(UTC),
            )
            parameters = copy.deepcopy(trigger["parameters"])
            RunDeployment._upgrade_v1_templates(parameters)
            rendered = hydrate(
                parameters,
                HydrationContext(
                    raise_on_error=False, render_jinja=True, jinja_context={"event": event}
                ),
            )
            failed = {k: v for k, v in rendered.items() if isinstance(v, HydrationError)}
            assert not failed, (deployment["name"], failed)
            flow.validate_parameters({**deployment.get("parameters", {}), **rendered})
            checked += 1
    assert checked >= 3  # ct-on-new-data, ct-on-drift and ct-deliver pass the event's fields on
