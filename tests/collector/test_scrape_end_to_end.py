"""Scraping on a real `shipboard run`: a prometheus_client app exposing a counter, a gauge and a
histogram, a target that refuses connections and one that never answers, all in scrape.yaml."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from tests.launcher import HOST, free_port, wait_for
from tests.running import RunningShipboard

pytestmark = pytest.mark.slow  # starts a server process


class App:
    """A service instrumented with prometheus_client, serving /metrics on its own port."""

    def __init__(self, port: int | None = None) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter("jobs", "Jobs done.", ["queue"], registry=self.registry)
        self.depth = Gauge("queue_depth", "Jobs waiting.", registry=self.registry)
        self.latency = Histogram(
            "job_seconds", "Job time.", buckets=(0.1, 1.0), registry=self.registry
        )
        self.port = free_port() if port is None else port
        self.server, self.thread = start_http_server(self.port, HOST, registry=self.registry)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app() -> Iterator[App]:
    running = App()
    yield running
    running.stop()


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def scrape_yaml(app_port: int, silent_port: int) -> str:
    return f"""
scrape_configs:
  - job_name: app
    scrape_interval: 1s
    static_configs: [{{targets: ["{HOST}:{app_port}"], labels: {{env: test}}}}]
  - job_name: gone
    scrape_interval: 1s
    static_configs: [{{targets: ["{HOST}:{free_port()}"]}}]
  - job_name: silent
    scrape_interval: 4s
    scrape_timeout: 3s
    static_configs: [{{targets: ["{HOST}:{silent_port}"]}}]
"""


@pytest.fixture
def shipboard(tmp_path: Path, app: App, silent: int) -> Iterator[RunningShipboard]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "scrape.yaml").write_text(scrape_yaml(app.port, silent))
    running = RunningShipboard(data, ["--no-agent"]).start()
    yield running
    assert running.stop() == 0, running.output()


def last(shipboard: RunningShipboard, metric: str, tags: str) -> list[tuple[dict[str, str], Any]]:
    result = shipboard.query(metric=metric, tags=tags, agg="last", **{"from": "-5m"})
    return [
        (series["tags"], [v for _, v in series["points"] if v is not None][-1])
        for series in result["series"]
        if any(v is not None for _, v in series["points"])
    ]


class _AnyTags(dict[str, str]):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict)


ANY_TAGS = _AnyTags()


def up(shipboard: RunningShipboard, job: str) -> float | None:
    found = last(shipboard, "up", f"job:{job}")
    return found[0][1] if found else None


def test_an_instrumented_app_is_scraped_with_its_labels(shipboard, app):
    app.jobs.labels(queue="mail").inc(7)
    app.depth.set(42)
    for seconds in (0.05, 0.5, 3.0):
        app.latency.observe(seconds)
    instance = f"{HOST}:{app.port}"
    own = {"job": "app", "instance": instance, "env": "test", "host": HOST}
    wait_for(lambda: last(shipboard, "jobs_total", "job:app"), 10)
    assert last(shipboard, "jobs_total", "job:app") == [(own | {"queue": "mail"}, 7.0)]
    assert last(shipboard, "queue_depth", "job:app") == [(own, 42.0)]
    buckets = {t["le"]: v for t, v in last(shipboard, "job_seconds_bucket", "job:app")}
    assert buckets == {"0.1": 1.0, "1.0": 2.0, "+Inf": 3.0}
    assert last(shipboard, "job_seconds_sum", "job:app") == [(own, pytest.approx(3.55))]
    assert up(shipboard, "app") == 1.0
    [(_, seconds)] = last(shipboard, "scrape_duration_seconds", "job:app")
    assert 0 < seconds < 1
    # The refused target is down; the silent one times out; neither delays the app's scrapes.
    wait_for(lambda: up(shipboard, "gone") == 0.0, 5)
    wait_for(lambda: up(shipboard, "silent") == 0.0, 10)
    # While the silent one hangs for its 3 s timeout, the app is scraped every second.
    per_scrape = last(shipboard, "scrape_samples_scraped", "job:app")[0][1]
    before = shipboard.metric_value("shipboard_received_total", protocol="scrape")
    started = time.monotonic()
    wait_for(
        lambda: (
            shipboard.metric_value("shipboard_received_total", protocol="scrape")
            >= before + 3 * per_scrape
        ),
        10,
    )
    assert time.monotonic() - started < 8  # not one scrape per silent timeout
    for reason in ("connect", "timeout"):
        wait_for(
            lambda reason=reason: (
                shipboard.metric_value("shipboard_dropped_total", protocol="scrape", reason=reason)
                >= 1
            ),
            10,
        )


def test_up_goes_to_0_when_the_app_stops_and_a_new_target_is_picked_up(
    shipboard, app, silent, tmp_path
):
    wait_for(lambda: up(shipboard, "app") == 1.0, 10)
    app.stop()
    wait_for(lambda: up(shipboard, "app") == 0.0, 5)
    other = App()
    try:
        other.depth.set(7)
        text = scrape_yaml(app.port, silent).replace(
            f'"{HOST}:{app.port}"', f'"{HOST}:{app.port}", "{HOST}:{other.port}"'
        )
        (tmp_path / "data" / "scrape.yaml").write_text(text)
        wait_for(lambda: last(shipboard, "queue_depth", f"instance:{HOST}:{other.port}"), 10)
        [(_, depth)] = last(shipboard, "queue_depth", f"instance:{HOST}:{other.port}")
        assert depth == 7.0
    finally:
        other.stop()


def test_a_restarted_app_counter_reads_as_a_rate_through_its_reset(shipboard, app):
    jobs = app.jobs.labels(queue="mail")
    wait_for(lambda: last(shipboard, "jobs_total", "job:app") == [(ANY_TAGS, 0.0)], 10)
    jobs.inc(100)
    wait_for(lambda: last(shipboard, "jobs_total", "job:app") == [(ANY_TAGS, 100.0)], 10)
    app.stop()
    restarted = App(app.port)  # the same instance, its counter from 0 again
    try:
        restarted.jobs.labels(queue="mail").inc(5)
        wait_for(lambda: last(shipboard, "jobs_total", "job:app") == [(ANY_TAGS, 5.0)], 10)
    finally:
        restarted.stop()
    # Minutes: raw points in rows of a second, the scrapes' own (a row of 0, 100 and 5 would
    # not tell where its reset was).
    window = {"from": "-5m", "step": "1m", "tags": "job:app"}
    [series] = shipboard.query(metric="jobs_total", agg="increase", **window)["series"]
    assert sum(v for _, v in series["points"]) == 105.0
    [series] = shipboard.query(metric="jobs_total", agg="rate", **window)["series"]
    assert sum(v for _, v in series["points"]) == pytest.approx(105.0 / 60)


def promql(shipboard: RunningShipboard, query: str) -> list[dict[str, Any]]:
    """The instant vector of `query` now, from the Prometheus API."""
    params = urllib.parse.urlencode({"query": query, "time": f"{time.time():.3f}"})
    request = urllib.request.Request(
        f"{shipboard.url}/prometheus/api/v1/query?{params}",
        headers={"Authorization": f"Bearer {shipboard.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer: dict[str, Any] = json.loads(reply.read())
    return list(answer["data"]["result"])


def test_series_gone_from_a_page_or_a_target_down_are_stale_at_once(shipboard, app):
    """Without stale markers PromQL would answer their last point for 5 minutes more."""
    app.jobs.labels(queue="mail").inc(3)
    app.jobs.labels(queue="sms").inc(4)
    app.depth.set(5)
    wait_for(lambda: len(promql(shipboard, 'jobs_total{job="app"}')) == 2, 10)
    app.jobs.remove("sms")  # the page no longer has it
    wait_for(lambda: len(promql(shipboard, 'jobs_total{job="app"}')) == 1, 5)
    [mail] = promql(shipboard, 'jobs_total{job="app"}')
    assert (mail["metric"]["queue"], mail["value"][1]) == ("mail", "3")
    assert promql(shipboard, 'queue_depth{job="app"}')[0]["value"][1] == "5"
    app.stop()
    wait_for(lambda: up(shipboard, "app") == 0.0, 5)
    wait_for(lambda: not promql(shipboard, '{job="app", __name__=~"jobs_total|queue_depth"}'), 5)
    [down] = promql(shipboard, 'up{job="app"}')  # up itself is written at every scrape
    assert down["value"][1] == "0"
