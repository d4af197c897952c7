"""The sample CD hand-off: on `ct.model.promoted`, put the champion into a serving folder.

Deployed as `ct-deliver` (prefect.yaml), triggered by the promotion event with the model name and
version taken from it. Replace it with your own delivery (a model server, a container build): the
event payload carries the name, version, previous champion and the gate's decision.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.config import CTConfig
from tasks.delivery import Delivery, deliver_version
from tasks.release import open_registry


@flow(name="deliver")
def deliver(
    name: str, version: int, serving_dir: str = ".ct/serving", config: CTConfig | None = None
) -> Delivery:
    """Copy version `version` of model `name` into `serving_dir/<name>/` and switch `current`."""
    done = deliver_version(
        open_registry(config or CTConfig()), name, int(version), Path(serving_dir)
    )
    get_run_logger().info(
        "Serving %s v%d from %s (previous: %s)", name, version, done.path, done.previous
    )
    create_markdown_artifact(
        key="delivery",
        markdown=f"# Delivered {name} v{version}\n\n- path: `{done.path}`\n- sha256: `{done.sha256}`\n"
        f"- previous (kept for rollback): {done.previous}",
        description=f"{name}: v{version} in service, previous v{done.previous}",
    )
    return done
