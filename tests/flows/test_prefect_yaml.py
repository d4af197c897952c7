"""prefect.yaml points at flows that load, with parameters they accept."""

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
