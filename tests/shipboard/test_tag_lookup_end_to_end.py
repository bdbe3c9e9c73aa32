"""One series by its tag among many, over HTTP against a real `shipboard run`: the query API and
PromQL find exactly it, before and after `kill -9` (the tag index is rebuilt on restart)."""

from __future__ import annotations

import json
import signal
import time
import urllib.parse
from typing import Any

import pytest

from tests.running import RunningShipboard

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

HOSTS = 20_000
BODY_LINES = 5_000


def write_fleet(server: RunningShipboard, now_s: int) -> None:
    """A series per host, `card,host=hNNNNNNN v=N`, as a fleet's agents send them."""
    for first in range(0, HOSTS, BODY_LINES):
        body = "".join(
            f"card,host=h{i:07d} v={i} {now_s}\n" for i in range(first, first + BODY_LINES)
        )
        status, answer = server.post("/write?precision=s", body.encode())
        assert status == 204, answer


def by_tag(server: RunningShipboard, tags: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = server.query(metric="card.v", tags=tags, **{"from": "-10m"})[
        "series"
    ]
    return found


def promql(server: RunningShipboard, path: str, **params: str) -> Any:
    status, body = server.get(f"/prometheus/api/v1/{path}?" + urllib.parse.urlencode(params))
    assert status == 200, body
    return json.loads(body)["data"]


def assert_lookups(server: RunningShipboard, now_s: int) -> None:
    for host in (0, 12_345, HOSTS - 1):
        name = f"h{host:07d}"
        (series,) = by_tag(server, f"host:{name}")
        assert series["tags"] == {"host": name}
        assert series["points"] == [[now_s * 1000, float(host)]]
        (sample,) = promql(server, "query", query=f'card_v{{host="{name}"}}', time=str(now_s))[
            "result"
        ]
        assert sample["metric"] == {"__name__": "card_v", "host": name}
        assert float(sample["value"][1]) == host
        assert promql(server, "series", **{"match[]": f'{{host="{name}"}}'}) == [
            {"__name__": "card_v", "host": name}
        ]
    assert by_tag(server, "host:h9999999") == []
    assert by_tag(server, "host:h0000042,host:h0000043") == []
    # Filters the index does not answer still go through every series, as before.
    assert len(by_tag(server, "host:h000004?")) == 10
    status, body = server.get("/api/v1/series?metric=card.v")
    assert status == 200
    assert len(json.loads(body)["series"]) == HOSTS


def test_one_series_by_its_tag_among_many_before_and_after_kill_9(tmp_path):
    server = RunningShipboard(tmp_path / "data", ["--no-agent"]).start()
    now_s = int(time.time()) - 60
    try:
        write_fleet(server, now_s)
        assert_lookups(server, now_s)
    finally:
        server.stop(signal.SIGKILL)  # the series are in the WAL only: no checkpoint on the way out
    restarted = RunningShipboard(
        server.data_dir, ["--no-agent"], http_port=server.http_port,
        statsd_port=server.statsd_port, graphite_port=server.graphite_port, token=server.token,
    ).start()  # fmt: skip
    try:
        assert_lookups(restarted, now_s)
        status, _ = restarted.post("/write?precision=s", f"card,host=late v=1 {now_s}\n".encode())
        assert status == 204
        (late,) = by_tag(restarted, "host:late")
        assert late["points"] == [[now_s * 1000, 1.0]]
    finally:
        assert restarted.stop() == 0, restarted.output()
