"""The million-series benchmark: a fleet of agents, every line its own series.

`card,host=hNNNNNNN v=R ts` for a million hosts (`--series`; fewer under `--quick`), in bodies of
5,000 lines over 2 keep-alive connections: first the bodies that create the series (series/s
acknowledged), then a second point to each (points/s; the bodies differ only in value and time),
then the server's resident memory once it is quiet (MiB), then one series looked up by its tag
among them, a different host each time so no answer is kept from the last (median ms).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from typing import Any

from bench.core import Options, median, run_load
from bench.ingest import Measured
from bench.payloads import FleetBodies
from bench.procs import HOST, Server, http_get
from bench.queries import timed_get, wait_quiet
from bench.servers import metrics_url, write_url

SERIES_FULL, SERIES_QUICK = 1_000_000, 50_000
BODY_LINES = 5000
STEP_S = 10
LOOKUPS_FULL, LOOKUPS_QUICK = 20, 5
LOOKUP_BUDGET_S = 120.0  # lookups stop after this, however many are left
FIRST_HOST, HOST_STRIDE = 123_456, 104_729  # h0123456 first; a prime stride visits distinct hosts


def series_count(options: Options) -> int:
    return options.series or (SERIES_QUICK if options.quick else SERIES_FULL)


def shipboard_args(options: Options) -> list[str]:
    """Room for the fleet: Shipboard refuses new series beyond `--max-series`."""
    return ["--max-series", str(2 * series_count(options))]


def lookup_hosts(series: int, count: int) -> list[int]:
    """`count` distinct hosts spread over the fleet, h0123456 first when the fleet has it."""
    return [(FIRST_HOST + k * HOST_STRIDE) % series for k in range(count)]


def million_series(server: Server, options: Options) -> Measured:
    """One repetition on a fresh server: series/s, points/s, RSS in MiB and lookup ms."""
    series = series_count(options)
    # Inside the raw retention and the lookups' last hour; the second point 10 s after the first.
    ts_s = int(time.time()) // STEP_S * STEP_S - 60
    passes = [FleetBodies(series, BODY_LINES, ts_s + point * STEP_S, point) for point in (0, 1)]
    figures: dict[str, float] = {}
    details: dict[str, Any] = {"series": series}
    for bodies, figure in zip(passes, ("series_per_s", "points_per_s"), strict=True):
        figures[figure], details[figure] = _send(server, options, bodies)
    if server.name == "victoria-metrics":
        # It makes points searchable in the background; this asks for it now, before the
        # lookups check every answer (the rates above are already measured).
        http_get(f"http://{HOST}:{server.ports['http']}/internal/force_flush")
    details["quiet_after_s"] = wait_quiet(server, timeout_s=60.0)
    figures["rss_mib"] = server.rss_bytes() / 2**20
    figures["lookup_ms"], details["lookups"] = _lookups(server, options, passes)
    return Measured(figures, details)


def _send(server: Server, options: Options, bodies: FleetBodies) -> tuple[float, dict[str, Any]]:
    """Every body once: points/s until the server's own count held all of them."""
    report = run_load(options, ["fleet", "--url", write_url(server),
                                "--metrics-url", metrics_url(server),
                                "--series", str(bodies.series),
                                "--lines", str(bodies.lines_per_body), "--conns", "2",
                                "--point", str(bodies.point),
                                "--ts", str(bodies.ts_s)])  # fmt: skip
    if report["errors"] or not report["points"] == report["counted"] == bodies.series:
        raise RuntimeError(
            f"{server.name} took {report['points']} of {bodies.series} points "
            f"(point {bodies.point}), counted {report['counted']}: {report}"
        )
    details = {k: report[k] for k in ("elapsed_s", "counted_s")}
    details["acked_per_s"] = report["points"] / report["elapsed_s"]  # by the 204s alone
    return report["counted"] / report["counted_s"], details


def lookup_path(server_name: str, host: str) -> str:
    """The last hour of one host's series at 10 s steps, as each server is asked for it."""
    if server_name == "shipboard":
        params = {"metric": "card.v", "tags": f"host:{host}", "from": "-1h", "to": "now",
                  "step": f"{STEP_S}s", "agg": "mean", "group_by": ""}  # fmt: skip
        return "/api/v1/query?" + urllib.parse.urlencode(params)
    # VictoriaMetrics names the line protocol's field `measurement_field`.
    params = {"query": f'avg_over_time(card_v{{host="{host}"}}[{STEP_S}s])', "start": "-1h",
              "step": f"{STEP_S}s"}  # fmt: skip
    return "/api/v1/query_range?" + urllib.parse.urlencode(params)


def answer_values(reply: dict[str, Any]) -> list[list[float]]:
    """Each series' values, in time order, from either server's answer."""
    if "data" in reply:
        return [[float(v) for _, v in r["values"]] for r in reply["data"]["result"]]
    return [[float(v) for _, v in s["points"]] for s in reply["series"]]


def _lookups(
    server: Server, options: Options, passes: list[FleetBodies]
) -> tuple[float, dict[str, Any]]:
    """Median ms of one-series lookups over a keep-alive connection, each answer checked to be
    the host's two points; the first, of a host not timed, warms the server up."""
    count = LOOKUPS_QUICK if options.quick else LOOKUPS_FULL
    *timed, warm_up = lookup_hosts(passes[0].series, count + 1)
    options.note([f"GET http://{HOST}:PORT{lookup_path(server.name, f'h{timed[0]:07d}')}"])
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=60)
    samples: list[float] = []
    deadline = time.monotonic() + LOOKUP_BUDGET_S
    try:
        for n, host in enumerate([warm_up, *timed]):
            body, elapsed_ms = timed_get(
                conn, server.name, lookup_path(server.name, f"h{host:07d}")
            )
            wanted = [[bodies.value(host) for bodies in passes]]
            if (got := answer_values(json.loads(body))) != wanted:
                raise RuntimeError(f"{server.name} h{host:07d}: {got}, not {wanted}")
            if n:
                samples.append(elapsed_ms)
            if samples and time.monotonic() > deadline:
                break
    finally:
        conn.close()
    return median(samples), {"timed": len(samples), "max_ms": max(samples), "checked": True}
