"""Events: webhook-to-flow-run-start latency, and the receiver's throughput, on 127.0.0.1.

Starts the whole local stack (`tests.support.devstack.LocalStack`: server, deployments, process worker,
receiver). Latency: 20 signed webhooks, one at a time, each for a batch path that does not exist (the
`ct-on-new-data` run starts, finds nothing to read and ends); the next is sent once the run ended, so
no run waits behind another. Latency is the time from sending the webhook to the run's start time as
Prefect recorded it. Throughput: 400 signed requests over 4
connections to the receiver (each verified and emitted as an event), beside 400 requests to its
`/health` endpoint in the same run (the HTTP floor). Usage: `.venv/bin/python benchmarks/events.py`.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/support: the dev stack
from tests.support.devstack import LocalStack, signed_headers, wait_for

LATENCY_REQUESTS = 20
THROUGHPUT_REQUESTS = 400
CONNECTIONS = 4


def finished_run(api: str, dataset: str) -> dict[str, object] | None:
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}, timeout=10).json()
    for run in runs:
        if run["parameters"].get("dataset") == dataset and run["state_type"] == "COMPLETED":
            return dict(run)
    return None


def latency(stack: LocalStack) -> list[float]:
    out = []
    for i in range(LATENCY_REQUESTS):
        dataset = f"bench-{i}"
        body = json.dumps(
            {"dataset": dataset, "path": str(stack.landing / f"missing-{i}.csv")}
        ).encode()
        sent = time.time()
        response = httpx.post(
            f"{stack.hooks}/hooks/data", content=body, headers=signed_headers(stack.secret, body)
        )
        assert response.status_code == 202, response.text
        run = wait_for(
            lambda d=dataset: finished_run(stack.api, d), 180, f"the run for {dataset}", 0.5
        )
        started = datetime.fromisoformat(str(run["start_time"])).timestamp()
        out.append(started - sent)
        print(
            f"  webhook {i + 1:2d}/{LATENCY_REQUESTS}: run started after {out[-1]:.1f} s",
            flush=True,
        )
    return out


def throughput(stack: LocalStack, *, signed_requests: bool) -> float:
    bodies = [
        json.dumps({"dataset": "tp", "path": str(stack.landing / f"t{i}.csv")}).encode()
        for i in range(THROUGHPUT_REQUESTS)
    ]
    headers = [signed_headers(stack.secret, b) for b in bodies]
    clients = [httpx.Client(timeout=30) for _ in range(CONNECTIONS)]

    def send(i: int) -> int:
        client = clients[i % CONNECTIONS]
        if signed_requests:
            return client.post(
                f"{stack.hooks}/hooks/data", content=bodies[i], headers=headers[i]
            ).status_code
        return client.get(f"{stack.hooks}/health").status_code

    start = time.perf_counter()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        codes = list(pool.map(send, range(THROUGHPUT_REQUESTS)))
    elapsed = time.perf_counter() - start
    for client in clients:
        client.close()
    assert set(codes) == {202 if signed_requests else 200}, set(codes)
    return THROUGHPUT_REQUESTS / elapsed


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="ct-events-bench-") as tmp,
        LocalStack(Path(tmp)) as stack,
    ):
        print("Latency (webhook sent -> flow run started):")
        lat = sorted(latency(stack))
        health = throughput(stack, signed_requests=False)
        hooks = throughput(stack, signed_requests=True)
    p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
    print(f"\n| {'measure':46} | {'value':>10} |")
    print(f"|{'-' * 48}|{'-' * 12}|")
    print(
        f"| {'webhook -> run start, median (20 requests)':46} | {statistics.median(lat):8.1f} s |"
    )
    print(f"| {'webhook -> run start, p95':46} | {p95:8.1f} s |")
    print(f"| {'receiver: signed webhooks, verified + emitted':46} | {hooks:6.0f} /s |")
    print(f"| {'receiver: GET /health (HTTP floor, same run)':46} | {health:6.0f} /s |")
    print(f"| {'signed / floor':46} | {hooks / health:9.2f}x |")


if __name__ == "__main__":
    main()
