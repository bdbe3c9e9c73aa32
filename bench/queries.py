"""Query latency over 7 days of 10 s data for many hosts, and memory held for 100k series."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from bench.core import Options, median
from bench.ingest import Measured
from bench.load import post_bodies, post_counted
from bench.payloads import LineBodies, StampedBodies
from bench.procs import HOST, Server, http_get
from bench.servers import DB, metrics_url, rollup_dirty, rollup_lags_s, write_url

DAY_S = 86_400
STEP_S = 10
LATENCY_SAMPLES = 20
_HOSTS_FULL, _HOSTS_QUICK = 100, 10


def _hosts(options: Options) -> int:
    return _HOSTS_QUICK if options.quick else _HOSTS_FULL


@dataclass(frozen=True)
class Query:
    """One of the benchmark's queries: `cpu.usage` of one host or all, over `span` at `step`, in
    each server's language. The timed form reaches back from now, as a dashboard asks."""

    host: str | None  # one host, or every host (each its own series)
    span: str
    step: str
    influxql: str

    @property
    def span_s(self) -> int:
        return _seconds(self.span)

    @property
    def step_s(self) -> int:
        return _seconds(self.step)

    def path(self, server: str) -> str:
        """The timed query for a server: Shipboard, influxd or VictoriaMetrics."""
        if server == "shipboard":
            return self.shipboard(f"-{self.span}", "now")
        if server == "victoria-metrics":
            return self._query_range({"start": f"-{self.span}"})
        query = urllib.parse.urlencode({"db": DB, "epoch": "ms", "q": self.influxql})
        return f"/query?{query}"

    def shipboard(self, start: str, end: str) -> str:
        tags = {"tags": f"host:{self.host}"} if self.host else {}
        params = {"to": end, "group_by": "", "metric": "cpu.usage", **tags, "from": start,
                  "step": self.step, "agg": "mean"}  # fmt: skip
        return "/api/v1/query?" + urllib.parse.urlencode(params)

    def victoria_between(self, start_s: int, end_s: int) -> str:
        """MetricsQL giving Shipboard's buckets [t, t + step) for t = start_s, start_s + step, ..
        before end_s: VictoriaMetrics' window at time u is (u - step, u], so u = t + step - 1
        (the points lie on whole 10 s)."""
        return self._query_range({"start": str(start_s + self.step_s - 1), "end": str(end_s - 1)})

    def _query_range(self, window: dict[str, str]) -> str:
        selector = f'cpu_usage{{host="{self.host}"}}' if self.host else "cpu_usage"
        params = {"query": f"avg_over_time({selector}[{self.step}])", **window, "step": self.step}
        return "/api/v1/query_range?" + urllib.parse.urlencode(params)


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": DAY_S}[duration[-1]]


# (a) one series at 1 h over 7 d, (b) every series at 5 min over 24 h, (c) last 15 min raw.
# VictoriaMetrics names a line-protocol field `measurement_field`: `cpu_usage`.
QUERIES = {
    "one_series_7d_1h_ms": Query("h000000", "7d", "1h", 'SELECT mean("usage") FROM "cpu" WHERE '
                                 "\"host\" = 'h000000' AND time > now() - 7d GROUP BY time(1h)"),
    "all_series_24h_5m_ms": Query(None, "24h", "5m", 'SELECT mean("usage") FROM "cpu" WHERE '
                                  'time > now() - 24h GROUP BY time(5m), "host"'),
    "all_series_15m_raw_ms": Query(None, "15m", "10s", 'SELECT "usage" FROM "cpu" WHERE '
                                   'time > now() - 15m GROUP BY "host"'),
}  # fmt: skip


def load_week(server: Server, options: Options) -> dict[str, Any]:
    """The week of every host ending now, loaded as `_load_week` does."""
    return _load_week(server, options, int(time.time()) // STEP_S * STEP_S, counted=False)


def load_week_alike(server: Server, options: Options) -> dict[str, Any]:
    """The week of every host ending when the benchmark began: the same points for each server,
    so their answers over fixed windows must agree. Its points/s are timed until the server's
    own count held them all (`post_counted`)."""
    return _load_week(server, options, options.began_s // STEP_S * STEP_S, counted=True)


def _load_week(server: Server, options: Options, end_s: int, counted: bool) -> dict[str, Any]:
    """Write 7 days of 10 s `cpu.usage` for every host, ending at `end_s`; for Shipboard, wait until
    its rollups cover the week (every tier's watermark within two of its buckets of now, and no
    bucket left dirty by late points), so long ranges are read from rollups as in steady state,
    not rolled up from raw at query time."""
    hosts = _hosts(options)
    bodies = LineBodies(hosts, 5000, end_s - 7 * DAY_S, end_s + 1, STEP_S)
    count = bodies.count
    started = time.monotonic()
    if counted:
        report = post_counted(write_url(server), metrics_url(server), bodies.body, None, 2, 900.0,
                              bodies=count)  # fmt: skip
    else:
        report = post_bodies(write_url(server), bodies.body, None, 2, 900.0, bodies=count)
    lost = counted and report["counted"] != report["points"]
    if report["errors"] or report["bodies"] != count or lost:
        raise RuntimeError(f"loading {server.name} failed: {report}")
    details: dict[str, Any] = {"points": report["points"], "end_s": end_s,
                               "load_s": time.monotonic() - started}  # fmt: skip
    if counted:
        details["points_per_s"] = report["counted"] / report["counted_s"]
    if server.name == "shipboard":
        deadline = time.monotonic() + 900
        while not _rolled_up(lags := rollup_lags_s(server)) or any(rollup_dirty(server).values()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Shipboard's rollups not ready: lags {lags}")
            time.sleep(1.0)
        details["rollups_ready_s"] = time.monotonic() - started
    if server.name == "victoria-metrics":
        # It makes points searchable in the background (a run once found its last 12 hours
        # not yet searchable at the first query); this asks for it now, as fleet.py does.
        http_get(f"http://{HOST}:{server.ports['http']}/internal/force_flush")
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


def get_json(server: Server, path: str) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(http_get(f"http://{HOST}:{server.ports['http']}{path}"))
    return reply


def _series_points(reply: dict[str, Any]) -> tuple[int, int]:
    """(series, points in the first series) of any server's answer."""
    if "results" in reply:  # InfluxQL
        series = reply["results"][0].get("series", [])
        return len(series), len(series[0]["values"]) if series else 0
    if "data" in reply:  # Prometheus' query API, as VictoriaMetrics answers it
        result = reply["data"]["result"]
        return len(result), len(result[0]["values"]) if result else 0
    series = reply.get("series", [])
    return len(series), len(series[0]["points"]) if series else 0


def timed_get(conn: http.client.HTTPConnection, name: str, path: str) -> tuple[bytes, float]:
    """GET `path` on a kept-alive connection: the body, and ms until it was read whole."""
    started = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"{name} {path}: {response.status} {body[:300]!r}")
    return body, elapsed_ms


def query_latency(server: Server, options: Options) -> Measured:
    """Median latency of 20 runs of each query over one keep-alive connection, in ms."""
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=60)
    figures: dict[str, float] = {}
    details: dict[str, Any] = {}
    try:
        for name, query in QUERIES.items():
            path = query.path(server.name)
            samples = []
            for i in range(LATENCY_SAMPLES + 2):  # the first two warm caches up
                body, elapsed_ms = timed_get(conn, server.name, path)
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
