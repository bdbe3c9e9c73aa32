"""Prometheus remote write end to end: a real Prometheus server (Debian's package) scraping its
own /metrics every second and remote-writing, its config unchanged but for the URL and the
ingest token, to a real `shipboard run`."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collector.prometheus_server import Prometheus
from tests.collector.prompb_wire import TimeSeries, WriteRequest
from tests.collector.test_scrape_end_to_end import last
from tests.launcher import HOST, wait_for
from tests.running import RunningShipboard

pytestmark = pytest.mark.slow  # starts server processes

TOKEN = "ingest-s3cret"


@pytest.fixture
def shipboard(tmp_path: Path) -> Iterator[RunningShipboard]:
    data = tmp_path / "shipboard"
    data.mkdir()
    running = RunningShipboard(data, ["--no-agent", "--ingest-token", TOKEN]).start()
    yield running
    assert running.stop() == 0, running.output()


@pytest.fixture
def prometheus(tmp_path: Path, shipboard: RunningShipboard) -> Iterator[Prometheus]:
    home = tmp_path / "prometheus"
    home.mkdir()
    running = Prometheus(home, f"{shipboard.url}/api/v1/write", TOKEN).start()
    yield running
    running.stop()


def test_prometheus_remote_writes_its_own_metrics_with_their_labels(
    shipboard: RunningShipboard, prometheus: Prometheus
) -> None:
    own = {"job": "prometheus", "instance": f"{HOST}:{prometheus.port}"}
    wait_for(lambda: last(shipboard, "prometheus_build_info", "job:prometheus"), 45, 0.5)
    [(tags, value)] = last(shipboard, "prometheus_build_info", "job:prometheus")
    assert value == 1.0
    version = subprocess.run(
        [prometheus.binary, "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.match(r"prometheus, version (\S+) \(branch: (\S+), revision: (\S+)\)", version)
    assert found is not None, version
    assert own.items() <= tags.items()
    assert "__name__" not in tags
    assert (tags["version"], tags["branch"], tags["revision"]) == found.groups()
    assert tags["goversion"].startswith("go")
    assert last(shipboard, "up", "job:prometheus") == [(own, 1.0)]
    # A counter keeps its name, its labels as tags and its cumulative value.
    handler = "handler:/metrics"
    wait_for(lambda: last(shipboard, "prometheus_http_requests_total", handler), 30)
    [(tags, requests)] = last(shipboard, "prometheus_http_requests_total", handler)
    assert tags == own | {"handler": "/metrics", "code": "200"}
    assert requests >= 1
    # Prometheus' own count of the samples it failed to send, itself remote-written, is 0.
    failed = last(shipboard, "prometheus_remote_storage_samples_failed_total", "job:prometheus")
    assert [value for _, value in failed] == [0.0]
    assert shipboard.metric_value("shipboard_received_total", protocol="remote_write") > 100
    for reason in ("no_name", "bad_label", "bad_snappy", "bad_protobuf"):
        dropped = shipboard.metric_value(
            "shipboard_dropped_total", protocol="remote_write", reason=reason
        )
        assert dropped == 0, reason


def test_remote_write_takes_the_ingest_token_as_prometheus_sends_it(
    shipboard: RunningShipboard,
) -> None:
    body = WriteRequest(
        (TimeSeries((("__name__", "token_check"),), ((1.0, int(time.time() * 1000)),)),)
    ).body()
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
    for authorization, status in (
        ("", 401),
        ("Bearer wrong", 401),
        (f"Bearer {TOKEN}", 204),
        (f"Token {TOKEN}", 204),
    ):
        answer, text = shipboard.post(
            "/api/v1/write", body, headers | {"Authorization": authorization}
        )
        assert answer == status, (authorization, text)
