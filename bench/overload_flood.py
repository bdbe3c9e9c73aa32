"""The overload benchmark's series flood: new series over line protocol against `--max-series`."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core import PYTHON, Options, settled
from bench.overload_server import (
    MAX_SECONDS,
    QUERY_EVERY_S,
    Probe,
    RssPeak,
    base_url,
    counted,
    mib,
    quantile,
    shipboard,
)
from bench.procs import HOST, LOAD_CPU, Server, http_get, http_post, pinned

EXISTING_HOSTS = 100
P99_GOAL_MS = 250.0


@dataclass(frozen=True)
class FloodPlan:
    new_series: int
    max_series: int
    seconds: float
    lines: int = 5000  # lines (series) per body, as a Telegraf batch
    conns: int = 2

    @classmethod
    def of(cls, options: Options) -> FloodPlan:
        if options.quick:
            return cls(new_series=200_000, max_series=20_000, seconds=20.0)
        return cls(new_series=1_000_000, max_series=100_000, seconds=60.0)


_REFUSED = re.compile(rb"(\d+) points of new series dropped")


def flood_body(index: int, lines: int, ts_s: int) -> bytes:
    """Body `index`: `lines` series never seen before, one point each."""
    first = index * lines
    return "".join(
        f"flood,host=n{i:07d} v={i % 100} {ts_s}\n" for i in range(first, first + lines)
    ).encode()


def send_flood(url: str, series: int, lines: int, conns: int, seconds: float) -> dict[str, Any]:
    """POST `series` new series in bodies of `lines`, spread evenly over `seconds` (body k is not
    sent before k * seconds / bodies), over `conns` keep-alive connections; stops after
    `MAX_SECONDS` whatever is left. Counts what was acknowledged and refused, by the answers."""
    parsed = urllib.parse.urlsplit(url)
    target = f"{parsed.path}?{parsed.query}"
    bodies = -(-series // lines)
    ts_s = int(time.time()) - 600
    lock = threading.Lock()
    state = {"next": 0, "acked": 0, "refused": 0, "answered_204": 0, "answered_400": 0}
    body_ms: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    deadline = start + min(2 * seconds, MAX_SECONDS)

    def take() -> int | None:
        with lock:
            index = state["next"]
            if index >= bodies or time.perf_counter() >= deadline:
                return None
            state["next"] = index + 1
        due = start + index * seconds / bodies
        time.sleep(max(0.0, due - time.perf_counter()))
        return index

    def one_connection() -> None:
        conn = http.client.HTTPConnection(HOST, parsed.port, timeout=60)
        try:
            while (index := take()) is not None:
                body = flood_body(index, min(lines, series - index * lines), ts_s)
                sent = body.count(b"\n")
                began = time.perf_counter()
                conn.request("POST", target, body, {"Content-Type": "text/plain"})
                response = conn.getresponse()
                reply = response.read()
                elapsed_ms = (time.perf_counter() - began) * 1000
                refused = _REFUSED.search(reply)
                with lock:
                    body_ms.append(elapsed_ms)
                    if response.status == 204:
                        state["answered_204"] += 1
                        state["acked"] += sent
                    elif response.status == 400 and refused is not None:
                        state["answered_400"] += 1
                        state["refused"] += int(refused[1])
                        state["acked"] += sent - int(refused[1])
                    else:
                        errors.append(f"{response.status} {reply[:200]!r}")
        except (OSError, http.client.HTTPException) as error:
            with lock:
                errors.append(repr(error))
        finally:
            conn.close()

    threads = [threading.Thread(target=one_connection, daemon=True) for _ in range(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(MAX_SECONDS + 10)
    ordered = sorted(body_ms)
    return {
        **state,
        "bodies": state["next"],
        "errors": len(errors),
        "first_errors": errors[:3],
        "elapsed_s": time.perf_counter() - start,
        "body_p50_ms": quantile(ordered, 0.5),
        "body_p99_ms": quantile(ordered, 0.99),
    }


def _seed_existing(server: Server) -> None:
    """100 series with a point every 10 s over the last hour: the series that are queried."""
    now_s = int(time.time())
    body = "".join(
        f"existing,host=h{host:03d} v={(host + t) % 50} {t}\n"
        for host in range(EXISTING_HOSTS)
        for t in range(now_s - 3600, now_s, 10)
    ).encode()
    status = http_post(f"{base_url(server)}/write?db=bench&precision=s", body)
    if status != 204:
        raise RuntimeError(f"seeding the existing series answered {status}")


def _existing_queries() -> list[str]:
    return [
        f"/api/v1/query?metric=existing.v&tags=host:h{host:03d}&from=-15m"
        for host in range(EXISTING_HOSTS)
    ]


def _first_refusal(server: Server) -> str:
    """The answer a client gets for a new series once the limit is reached."""
    request = http.client.HTTPConnection(HOST, server.ports["http"], timeout=30)
    try:
        request.request("POST", "/write?db=bench", b"flood,host=one-more v=1\n")
        response = request.getresponse()
        return f"{response.status} {response.read().decode()}"
    finally:
        request.close()


def series_flood(options: Options, workdir: Path) -> dict[str, Any]:
    plan = FloodPlan.of(options)
    with shipboard(workdir, "--max-series", str(plan.max_series)) as server:
        options.note(server.argv)
        _seed_existing(server)
        with Probe(server, _existing_queries(), QUERY_EVERY_S) as idle:
            time.sleep(options.seconds(5.0, 2.0))
        rss_before = server.rss_bytes()
        url = f"{base_url(server)}/api/v2/write?bucket=bench&org=bench&precision=s"
        argv = pinned([PYTHON, "-m", "bench.overload", "flood", "--url", url,
                       "--series", str(plan.new_series), "--lines", str(plan.lines),
                       "--conns", str(plan.conns), "--seconds", str(plan.seconds)],
                      LOAD_CPU)  # fmt: skip
        options.note(argv)
        with RssPeak(server) as rss, Probe(server, _existing_queries(), QUERY_EVERY_S) as busy:
            done = subprocess.run(argv, capture_output=True, timeout=MAX_SECONDS + 30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"flood sender failed ({done.returncode}): {done.stderr.decode()}")
        sent: dict[str, Any] = json.loads(done.stdout)
        refused_counted = settled(
            lambda: counted(
                server, "shipboard_dropped_total", 'protocol="influx",reason="series_limit"'
            )
        )
        sent["first_refusal"] = _first_refusal(server)
        listed = json.loads(http_get(f"{base_url(server)}/api/v1/series?metric=flood.v"))
        return {
            "plan": plan.__dict__,
            "sent": sent,
            "accepted_new_series": len(listed["series"]),
            "expected_new_series": plan.max_series - EXISTING_HOSTS,
            "series_on_metrics": counted(server, "shipboard_series"),
            "refused_points_answered": sent["refused"],
            "refused_points_on_metrics": refused_counted,
            "received_on_metrics": counted(server, "shipboard_received_total", 'protocol="influx"'),
            "rss_mib": {
                "before": mib(rss_before),
                "peak": mib(rss.peak),
                "after": mib(server.rss_bytes()),
                "every_10_s": [mib(size) for size in rss.every_10_s],
            },
            "queries_idle": idle.timings.summary(),
            "queries_during_flood": busy.timings.summary(),
        }
