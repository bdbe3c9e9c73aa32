"""Query latency over 7 days of 10 s data for many hosts, and memory held for 100k series."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from typing import Any

from bench.core import Options, median
from bench.ingest import Measured
from bench.load import post_bodies
from bench.payloads import LineBodies, StampedBodies
from bench.procs import HOST, Server, http_get
from bench.servers import DB, rollup_dirty, rollup_lags_s, write_url

DAY_S = 86_400
STEP_S = 10
LATENCY_SAMPLES = 20
_HOSTS_FULL, _HOSTS_QUICK = 100, 10


def _hosts(options: Options) -> int:
    return _HOSTS_QUICK if options.quick else _HOSTS_FULL


def _shipboard_query(params: dict[str, str]) -> str:
    return "/api/v1/query?" + urllib.parse.urlencode({"to": "now", "group_by": "", **params})


def _influx_query(q: str) -> str:
    return "/query?" + urllib.parse.urlencode({"db": DB, "epoch": "ms", "q": q})


# (a) one series at 1 h over 7 d, (b) every series at 5 min over 24 h, (c) last 15 min raw.
QUERIES: dict[str, dict[str, str]] = {
    "one_series_7d_1h_ms": {
        "shipboard": _shipboard_query({"metric": "cpu.usage", "tags": "host:h000000",
                                       "from": "-7d", "step": "1h", "agg": "mean"}),
        "influxd": _influx_query('SELECT mean("usage") FROM "cpu" WHERE "host" = \'h000000\' '
                                 "AND time > now() - 7d GROUP BY time(1h)"),
    },
    "all_series_24h_5m_ms": {
        "shipboard": _shipboard_query({"metric": "cpu.usage", "from": "-24h", "step": "5m",
                                       "agg": "mean"}),
        "influxd": _influx_query('SELECT mean("usage") FROM "cpu" WHERE time > now() - 24h '
                                 'GROUP BY time(5m), "host"'),
    },
    "all_series_15m_raw_ms": {
        "shipboard": _shipboard_query({"metric": "cpu.usage", "from": "-15m", "step": "10s",
                                       "agg": "mean"}),
        "influxd": _influx_query('SELECT "usage" FROM "cpu" WHERE time > now() - 15m '
                                 'GROUP BY "host"'),
    },
}  # fmt: skip


def load_week(server: Server, options: Options) -> dict[str, Any]:
    """Write 7 days of 10 s `cpu.usage` for every host, ending now; for Shipboard, wait until
    its rollups cover the week (every tier's watermark within two of its buckets of now, and no
    bucket left dirty by late points), so long ranges are read from rollups as in steady state,
    not rolled up from raw at query time."""
    hosts = _hosts(options)
    end_s = int(time.time()) // STEP_S * STEP_S
    bodies = LineBodies(hosts, 5000, end_s - 7 * DAY_S, end_s + 1, STEP_S)
    count = bodies.count
    started = time.monotonic()
    report = post_bodies(write_url(server), bodies.body, 5000, 2, 900.0, bodies=count)
    if report["errors"] or report["bodies"] != count:
        raise RuntimeError(f"loading {server.name} failed: {report}")
    details: dict[str, Any] = {"points": report["points"], "load_s": time.monotonic() - started}
    if server.name == "shipboard":
        deadline = time.monotonic() + 900
        while not _rolled_up(lags := rollup_lags_s(server)) or any(rollup_dirty(server).values()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Shipboard's rollups not ready: lags {lags}")
            time.sleep(1.0)
        details["rollups_ready_s"] = time.monotonic() - started
    # Both servers finish background work (rollups, compactions) before they are timed.
    details["quiet_after_s"] = wait_quiet(server)
    return details


_TIER_S = {"1m": 60, "10m": 600, "1h": 3600}


def _rolled_up(lags_s: dict[str, float]) -> bool:
    return set(lags_s) == set(_TIER_S) and all(lags_s[t] < 2 * _TIER_S[t] + 60 for t in _TIER_S)


def wait_quiet(server: Server, busy_share: float = 0.05, timeout_s: float = 300.0) -> float:
    """Seconds until the server uses under `busy_share` of a core over one second."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = server.cpu_s()
        time.sleep(1.0)
        if server.cpu_s() - before < busy_share:
            break
    return time.monotonic() - started


def _get(server: Server, path: str) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(http_get(f"http://{HOST}:{server.ports['http']}{path}"))
    return reply


def _series_points(reply: dict[str, Any]) -> tuple[int, int]:
    """(series, points in the first series) of either server's answer."""
    if "results" in reply:  # InfluxQL
        series = reply["results"][0].get("series", [])
        return len(series), len(series[0]["values"]) if series else 0
    series = reply.get("series", [])
    return len(series), len(series[0]["points"]) if series else 0


def query_latency(server: Server, options: Options) -> Measured:
    """Median latency of 20 runs of each query over one keep-alive connection, in ms."""
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=60)
    figures: dict[str, float] = {}
    details: dict[str, Any] = {}
    kind = "shipboard" if server.name == "shipboard" else "influxd"
    try:
        for name, paths in QUERIES.items():
            path = paths[kind]
            samples = []
            for i in range(LATENCY_SAMPLES + 2):  # the first two warm caches up
                started = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                elapsed_ms = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    raise RuntimeError(f"{server.name} {path}: {response.status} {body[:300]!r}")
                if i >= 2:
                    samples.append(elapsed_ms)
            series, points = _series_points(json.loads(body))
            figures[name] = median(samples)
            details[name] = {"series": series, "points_first": points, "bytes": len(body)}
            options.note([f"GET http://{HOST}:PORT{path}"])
    finally:
        conn.close()
    return Measured(figures, details)


MEMORY_SERIES = 100_000
MEMORY_POINTS_PER_SERIES = 3


def load_series(server: Server, options: Options) -> dict[str, Any]:
    """Write 3 points for each of 100k series (distinct `host` values), in bodies of 5,000."""
    bodies = StampedBodies(MEMORY_SERIES, 5000, int(time.time()) - 3600, STEP_S)
    count = len(bodies.blocks) * MEMORY_POINTS_PER_SERIES
    report = post_bodies(write_url(server), bodies.body, 5000, 2, 300.0, bodies=count)
    if report["errors"] or report["bodies"] != count:
        raise RuntimeError(f"loading {server.name} failed: {report}")
    return {"points": report["points"], "load_s": report["elapsed_s"]}


def memory(server: Server, options: Options) -> Measured:
    """Resident memory once the series are written and a few flushes have passed, in MiB."""
    time.sleep(3.0)
    details: dict[str, Any] = {}
    if server.name == "shipboard":
        text = http_get(f"http://{HOST}:{server.ports['http']}/metrics").decode()
        details["shipboard_series"] = [
            line for line in text.splitlines() if line.startswith("shipboard_series")
        ]
    return Measured({"rss_mib": server.rss_bytes() / 2**20}, details)
