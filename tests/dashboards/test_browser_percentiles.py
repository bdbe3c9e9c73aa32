"""The Services board's latency panels on a real `shipboard run` fed StatsD timers: Chromium
draws the API's p99 per service, from the merged sketches of every host (an average of the
hosts' p99s would be far off), and the panel title's hover says so."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from playwright.sync_api import Page

from dashboards.figures import rounded
from storage.sketches import STATSD_SCALE, relative_error
from tests.dashboards.drawn import figure_data, open_dashboard
from tests.launcher import free_port, wait_for
from tests.running import RunningShipboard

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

P90, P99 = "1-0", "1-1"  # the Latency row's panels
BATCHES = 3
SENT = {
    # service -> host -> latencies (ms): each service has a fast busy host and a slow quiet one.
    "web": {"web-1": (3.0, 0.4, 3000), "web-2": (5.5, 0.3, 400)},
    "api": {"api-1": (2.0, 0.3, 1500), "api-2": (4.0, 0.6, 1500)},
}


@dataclass
class Served:
    shipboard: RunningShipboard
    dash_url: str

    def dashboards_answer(self) -> bool:
        try:
            with urllib.request.urlopen(self.dash_url + "/signin", timeout=1):
                return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`shipboard run` with its dashboards on a port of their own, open to read."""
    dash_port = free_port()
    running = RunningShipboard(
        tmp_path_factory.mktemp("percentiles") / "data",
        ["--flush-interval", "1", "--no-agent", "--anonymous-read", "--dash-port", str(dash_port)],
    ).start()
    yield Served(running, f"http://127.0.0.1:{dash_port}")
    assert running.stop() == 0, running.output()


def send_timers(shipboard: RunningShipboard) -> dict[str, dict[str, np.ndarray]]:
    """Every host's latencies over StatsD TCP as `http.latency` timers, shuffled and sent in
    BATCHES seconds apart, so that each flush holds some of every host's; what was sent."""
    rng = np.random.default_rng(13)
    sent: dict[str, dict[str, np.ndarray]] = {}
    lines = []
    for service, hosts in SENT.items():
        for host, (mu, sigma, n) in hosts.items():
            values = rng.lognormal(mu, sigma, n).round(3)
            sent.setdefault(service, {})[host] = values
            tags = f"service:{service},environment:prod,host:{host}"
            lines += [f"http.latency:{v!r}|ms|#{tags}" for v in values.tolist()]
    rng.shuffle(lines)
    with socket.create_connection(("127.0.0.1", shipboard.statsd_port)) as conn:
        for batch in np.array_split(np.array(lines), BATCHES):
            conn.sendall(("\n".join(batch.tolist()) + "\n").encode())
            time.sleep(1.5)  # past a flush (every 1 s): each batch is a point of its own
    return sent


def by_tags(result: dict[str, Any], *keys: str) -> dict[tuple[str, ...], list[list[float]]]:
    """The points of each series of an API answer, by the values of its tags `keys`."""
    return {tuple(s["tags"][k] for k in keys): s["points"] for s in result["series"]}


def totals(result: dict[str, Any]) -> dict[str, float]:
    """Each service's sum over its buckets."""
    return {k[0]: sum(v for _, v in points) for k, points in by_tags(result, "service").items()}


def test_the_latency_panels_draw_true_percentiles_of_every_host(
    page: Page, served: Served, page_errors: list[str]
) -> None:
    shipboard = served.shipboard
    start_ms = time.time_ns() // 1_000_000 - 60_000
    sent = send_timers(shipboard)
    counts = {service: float(sum(map(len, hosts.values()))) for service, hosts in sent.items()}
    day = {"metric": "http.latency", "from": str(start_ms), "step": "1d"}
    wait_for(
        lambda: totals(shipboard.query(**day, agg="count", group_by="service")) == counts,
        timeout_s=30,
    )
    # Over the whole range, the API's p99 is numpy's p99 of all the service's values within
    # the sketches' 0.54%, and an average of the hosts' own p99s is far from it.
    merged = by_tags(shipboard.query(**day, agg="p99", group_by="service"), "service")
    per_host = by_tags(shipboard.query(**day, agg="p99"), "service", "host")
    for service, hosts in sent.items():
        [[_, p99]] = merged[(service,)]
        expected = np.quantile(np.concatenate(list(hosts.values())), 0.99)
        assert abs(p99 / expected - 1) <= relative_error(STATSD_SCALE) + 1e-9, service
        averaged = np.mean([per_host[(service, host)][0][1] for host in hosts])
        assert abs(averaged / p99 - 1) > 0.2, (service, averaged, p99)

    end_ms = time.time_ns() // 1_000_000 + 1000
    wait_for(served.dashboards_answer)
    # The latency panels: these timers are all the data there is.
    open_dashboard(page, f"{served.dash_url}/d/services?from={start_ms}&to={end_ms}", 2)
    href = page.get_attribute(f"#panel-{P99} .csv-link", "href")
    assert href is not None
    view = {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}
    # The panel's own query through the API: its range and point budget, so its step.
    panel_query = {"metric": "http.latency", "from": view["from"], "to": view["to"]}
    panel_query["max_points"] = view["points"]
    api = by_tags(shipboard.query(**panel_query, agg="p99", group_by="service"), "service")
    drawn = {
        t["name"]: [(x, y) for x, y in zip(t["x"], t["y"], strict=True) if y is not None]
        for t in figure_data(page, P99)
        if not t["uid"].startswith("annotations")
    }
    assert set(drawn) == {"service=web", "service=api"}
    assert set(api) == {("web",), ("api",)}
    for (service,), points in api.items():
        assert len(points) >= BATCHES, points  # a point per flush at the panel's step
        values = rounded(np.array([v for _, v in points]))
        assert drawn[f"service={service}"] == [
            (int(ts), v) for (ts, _), v in zip(points, values, strict=True)
        ]
    # A board averaging the hosts' p99s bucket by bucket would draw other lines.
    hosts_p99 = by_tags(shipboard.query(**panel_query, agg="p99"), "service", "host")
    for service, hosts in sent.items():
        at = [dict((ts, v) for ts, v in hosts_p99[(service, host)]) for host in hosts]
        off = [np.mean([h[ts] for h in at if ts in h]) / p99 - 1 for ts, p99 in api[(service,)]]
        assert max(map(abs, off)) > 0.2, (service, off)

    for panel in (P90, P99):
        hover = page.get_attribute(f"#panel-{panel} .panel-title", "title")
        assert hover is not None
        assert "merged latency sketches of every host" in hover
        assert "any time range" in hover
        assert "within 0.54%" in hover
        assert "never an average of per-host" in hover
    assert page.locator(f"#panel-{P99} .panel-title.described").count() == 1
    assert page.locator("#panel-0-0 .panel-title[title]").count() == 0
    assert page_errors == []
