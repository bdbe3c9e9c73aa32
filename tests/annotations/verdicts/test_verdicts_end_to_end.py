"""Deploy verdicts on a real `shipboard run`: the before window written through the line
protocol with its times, the after window sent over StatsD as the deploy's service runs; the
server's verdict engine judges the service's default error ratio."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.launcher import wait_for
from tests.running import RunningShipboard

pytestmark = pytest.mark.slow  # starts a server process

TICK_S = 0.05
BEFORE_S = 3.5  # the before window is 3 s (4 s less the 1 s settle)
TAGS = "service=web,environment=prod"


@pytest.fixture
def shipboard(tmp_path: Path) -> Iterator[RunningShipboard]:
    running = RunningShipboard(
        tmp_path / "data", ["--no-agent", "--flush-interval", "1", "--idle-flushes", "0"]
    ).start()
    yield running
    assert running.stop() == 0, running.output()


def write_before(shipboard: RunningShipboard, now_ns: int, requests: int, errors: int) -> None:
    """Every 0.1 s of the BEFORE_S before now: `requests` requests of which `errors` failed."""
    lines = [
        f"http.requests,{TAGS} count={requests} {ts}\nhttp.errors,{TAGS} count={errors} {ts}"
        for ts in range(now_ns - int(BEFORE_S * 1e9), now_ns, 100_000_000)
    ]
    status, body = shipboard.post("/write?precision=ns", "\n".join(lines).encode())
    assert status == 204, body


def send_after(shipboard: RunningShipboard, requests: int, errors: int, seconds: float) -> None:
    """StatsD counters every TICK_S for `seconds`, as the service reports them."""
    tags = b"|c|#service:web,environment:prod"
    body = b"http.requests:%d%s\nhttp.errors:%d%s" % (requests, tags, errors, tags)
    deadline = time.monotonic() + seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while time.monotonic() < deadline:
            sock.sendto(body, ("127.0.0.1", shipboard.statsd_port))
            time.sleep(TICK_S)


def deploy(shipboard: RunningShipboard, version: str, now_ns: int) -> int:
    start = {"service": "web", "environment": "prod", "version": version}
    status, body = shipboard.post(
        "/api/v1/deploys",
        json.dumps(start | {"verify_after": "4s", "start_ns": now_ns}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201, body
    deploy_id: int = json.loads(body)["id"]
    status, body = shipboard.post(
        f"/api/v1/deploys/{deploy_id}/finish",
        json.dumps({"status": "succeeded", "end_ns": now_ns}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200, body
    assert json.loads(body)["verdict"]["status"] == "pending"
    return deploy_id


def verdict_of(shipboard: RunningShipboard, deploy_id: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def reached() -> bool:
        status, body = shipboard.get(f"/api/v1/deploys/{deploy_id}")
        assert status == 200, body
        found[:] = [json.loads(body)["verdict"]]
        return bool(found[0]["status"] != "pending")

    wait_for(reached, 20)
    return found[0]


def run(shipboard: RunningShipboard, version: str, before: tuple[int, int], after: tuple[int, int]):
    now_ns = time.time_ns()
    write_before(shipboard, now_ns, *before)
    deploy_id = deploy(shipboard, version, now_ns)
    send_after(shipboard, *after, seconds=4.5 - (time.time_ns() - now_ns) / 1e9)
    return verdict_of(shipboard, deploy_id), now_ns


def test_a_doubled_error_ratio_is_regressed(shipboard):
    verdict, now_ns = run(shipboard, "3f2c1a9", (1000, 50), (1000, 100))
    assert verdict["status"] == "regressed", verdict
    [metric] = verdict["metrics"]
    assert metric["metric"] == "http.errors/http.requests"
    assert (metric["test"], metric["status"]) == ("binomial", "regressed")
    assert metric["before"] == pytest.approx(0.05)
    assert metric["after"] == pytest.approx(0.10)
    assert metric["change"] == pytest.approx(1.0)
    assert metric["samples"][0] == 30 * 1000  # 3 s of points every 0.1 s
    assert metric["baseline"] is None  # nothing a day earlier
    assert verdict["at"] >= now_ns + 4 * 10**9
    assert verdict["confounders"] == []


def test_an_unchanged_error_ratio_is_healthy(shipboard):
    verdict, _ = run(shipboard, "4a5b6c7", (1000, 50), (1000, 50))
    assert verdict["status"] == "healthy", verdict
    [metric] = verdict["metrics"]
    assert metric["change"] == pytest.approx(0.0)
    assert metric["interval"][0] < 0 < metric["interval"][1] < 0.2


def test_a_sparse_deploy_is_inconclusive(shipboard):
    verdict, _ = run(shipboard, "5b6c7d8", (1, 0), (1, 1))
    assert verdict["status"] == "inconclusive", verdict
    [metric] = verdict["metrics"]
    assert metric["samples"][0] == 30
    assert metric["samples"][1] < 100
