"""Load generators, run as their own process on the load core: bounded, 127.0.0.1 only.

`python -m bench.load statsd|graphite|influx|remote_write|fleet ...` sends, then prints one JSON
object with what it sent and how long it took. Every mode stops by itself after its count or its
seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from bench.payloads import (
    FleetBodies,
    RemoteWriteBodies,
    StampedBodies,
    graphite_chunks,
    statsd_lines,
    statsd_packets,
)
from bench.procs import HOST, http_get

_MAX_SECONDS = 120.0  # no load generator runs longer than this, whatever it is asked
REMOTE_WRITE_HEADERS = {  # as a Prometheus server sends them
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def send_statsd(port: int, packets: Sequence[bytes], rate: float, seconds: float):
    """Send `packets` round-robin at `rate` metrics/s (0: as fast as possible) for `seconds`."""
    # Metrics in packets[:i], to count exactly what a round-robin that stopped anywhere sent.
    before = [0]
    for packet in packets:
        before.append(before[-1] + packet.count(b"\n") + 1)
    per_packet = before[-1] / len(packets)
    pps = rate / per_packet if rate else 0.0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((HOST, port))
    count = len(packets)
    sent = errors = 0
    start = time.perf_counter()
    end = start + min(seconds, _MAX_SECONDS)
    while (now := time.perf_counter()) < end:
        due = int((now - start) * pps) if pps else sent + 512
        batch_end = min(due, sent + 2048)
        while sent < batch_end:
            try:
                sock.send(packets[sent % count])
            except OSError:
                errors += 1
            sent += 1
        if pps and sent >= due:
            time.sleep(0.0002)
    elapsed = time.perf_counter() - start
    sock.close()
    cycles, rest = divmod(sent, count)
    return {
        "sent_packets": sent - errors,
        # A packet the kernel refused is counted as lost: each holds per_packet metrics on average.
        "sent_metrics": cycles * before[-1] + before[rest] - round(errors * per_packet),
        "send_errors": errors,
        "elapsed_s": elapsed,
    }


def send_graphite(
    port: int, chunks: Sequence[bytes], lines_per_cycle: int, conns: int, cycles: int
):
    """Each connection sends every chunk `cycles` times, half-closes and waits for the server's EOF.

    The server closes after reading our EOF, so the elapsed time covers reading every line."""
    timings: list[float] = []
    failures: list[str] = []
    start = time.perf_counter()

    def one_connection() -> None:
        try:
            with socket.create_connection((HOST, port), timeout=_MAX_SECONDS) as sock:
                for _ in range(cycles):
                    for chunk in chunks:
                        sock.sendall(chunk)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
            timings.append(time.perf_counter() - start)
        except OSError as error:
            failures.append(repr(error))

    _run_threads(one_connection, conns)
    return {
        "lines": lines_per_cycle * cycles * (conns - len(failures)),
        "elapsed_s": max(timings, default=0.0),
        "failures": failures,
    }


def post_bodies(url: str, body: Callable[[int], bytes], lines: int | None, conns: int,
                seconds: float, bodies: int | None = None,
                headers: dict[str, str] | None = None):  # fmt: skip
    """POST body(0), body(1), ... over `conns` keep-alive connections until `seconds` pass (or
    `bodies` were sent); counts points acknowledged with 204, `lines` a body (None: its lines
    counted, for line protocol whose last body is shorter)."""
    headers = headers or {"Content-Type": "text/plain"}
    parsed = urllib.parse.urlsplit(url)
    target = f"{parsed.path}?{parsed.query}"
    lock = threading.Lock()
    state = {"next": 0, "acked": 0, "errors": 0}
    errors: list[str] = []
    start = time.perf_counter()
    deadline = start + min(seconds, _MAX_SECONDS)

    def take() -> int | None:
        with lock:
            index = state["next"]
            if time.perf_counter() >= deadline or (bodies is not None and index >= bodies):
                return None
            state["next"] = index + 1
            return index

    def one_connection() -> None:
        conn = http.client.HTTPConnection(HOST, parsed.port, timeout=60)
        try:
            while (index := take()) is not None:
                data = body(index)
                conn.request("POST", target, data, headers)
                response = conn.getresponse()
                reply = response.read()
                points = data.count(b"\n") if lines is None else lines
                with lock:
                    if response.status == 204:
                        state["acked"] += points
                    else:
                        state["errors"] += 1
                        errors.append(f"{response.status} {reply[:200]!r}")
        except (OSError, http.client.HTTPException) as error:
            with lock:
                state["errors"] += 1
                errors.append(repr(error))
        finally:
            conn.close()

    _run_threads(one_connection, conns)
    return {
        "points": state["acked"],
        "bodies": state["next"],
        "errors": state["errors"],
        "first_errors": errors[:3],
        "elapsed_s": time.perf_counter() - start,
    }


# A server's own count of line-protocol points in its /metrics: Shipboard's, and VictoriaMetrics'
# rows parsed and handed to its storage.
_INFLUX_COUNTED = re.compile(
    rb'^(?:shipboard_received_total\{protocol="influx"\}|vm_rows_inserted_total\{type="influx"\})'
    rb" ([0-9.e+]+)$",
    re.M,
)
_COUNT_WAIT_S = 30.0


def influx_count(metrics: bytes) -> int:
    """Line-protocol points a server counted so far, from its /metrics (0 before the first)."""
    match = _INFLUX_COUNTED.search(metrics)
    return int(float(match[1])) if match else 0


def post_counted(url: str, metrics_url: str, body: Callable[[int], bytes], lines: int | None,
                 conns: int, seconds: float, bodies: int | None = None):  # fmt: skip
    """`post_bodies`, then wait until the server's own count holds every point acknowledged.

    VictoriaMetrics answers a body once it has read it and parses the lines after (a line it
    cannot parse is skipped, the body answered 204 all the same), so its 204s alone count points
    it may not have yet, or ever; Shipboard counts before it answers. `counted_s` runs from the
    first body to the look at the count that found every point."""
    before = influx_count(http_get(metrics_url))
    start = time.perf_counter()
    report = post_bodies(url, body, lines, conns, seconds, bodies)
    deadline = time.perf_counter() + _COUNT_WAIT_S
    while True:
        looked = time.perf_counter()
        counted = influx_count(http_get(metrics_url)) - before
        if counted >= report["points"] or looked > deadline:
            break
        time.sleep(0.002)
    return {**report, "counted": counted, "counted_s": max(looked - start, report["elapsed_s"])}


def _run_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_MAX_SECONDS + 10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    modes = parser.add_subparsers(dest="mode", required=True)

    statsd = modes.add_parser("statsd", help="StatsD over UDP at a fixed rate")
    statsd.add_argument("--port", type=int, required=True)
    statsd.add_argument("--names", type=int, default=3000)
    statsd.add_argument("--single", action="store_true", help="one metric per packet")
    statsd.add_argument("--rate", type=float, default=0.0, help="metrics/s; 0: flat out")
    statsd.add_argument("--seconds", type=float, default=2.0)

    graphite = modes.add_parser("graphite", help="Graphite plaintext over TCP")
    graphite.add_argument("--port", type=int, required=True)
    graphite.add_argument("--names", type=int, default=3000)
    graphite.add_argument("--conns", type=int, default=4)
    graphite.add_argument("--cycles", type=int, default=100, help="times each conn sends all")

    influx = modes.add_parser("influx", help="line protocol over HTTP")
    influx.add_argument("--url", required=True)
    influx.add_argument("--hosts", type=int, default=10_000)
    influx.add_argument("--lines", type=int, default=5000, help="lines per body")
    influx.add_argument("--conns", type=int, default=2)
    influx.add_argument("--seconds", type=float, default=3.0)
    influx.add_argument("--start", type=int, default=0, help="first timestamp, unix s")
    influx.add_argument("--metrics-url", help="also wait until the server counted every point")

    remote = modes.add_parser("remote_write", help="Prometheus remote write over HTTP")
    remote.add_argument("--url", required=True)
    remote.add_argument("--series", type=int, default=10_000)
    remote.add_argument("--samples", type=int, default=2000, help="samples per body")
    remote.add_argument("--conns", type=int, default=2)
    remote.add_argument("--seconds", type=float, default=3.0)
    remote.add_argument("--start-ms", type=int, default=0, help="first timestamp, unix ms")

    fleet = modes.add_parser("fleet", help="line protocol, every line its own series, once each")
    fleet.add_argument("--url", required=True)
    fleet.add_argument("--series", type=int, default=1_000_000)
    fleet.add_argument("--lines", type=int, default=5000, help="lines per body")
    fleet.add_argument("--conns", type=int, default=2)
    fleet.add_argument("--point", type=int, default=0, help="0 creates the series, 1 the second")
    fleet.add_argument("--ts", type=int, required=True, help="the points' time, unix s")
    fleet.add_argument("--metrics-url", required=True, help="where the server counts points")

    args = parser.parse_args(argv)
    result: dict[str, Any]
    if args.mode == "statsd":
        packets: Sequence[bytes]
        if args.single:
            packets = statsd_lines(args.names)
        else:
            packets, _ = statsd_packets(args.names)
        result = send_statsd(args.port, packets, args.rate, args.seconds)
    elif args.mode == "graphite":
        chunks, lines = graphite_chunks(args.names, int(time.time()))
        result = send_graphite(args.port, chunks, lines, args.conns, args.cycles)
    elif args.mode == "remote_write":
        start_ms = args.start_ms or int(time.time() * 1000) - 86_400_000
        remote_bodies = RemoteWriteBodies(args.series, args.samples, start_ms)
        result = post_bodies(args.url, remote_bodies.body, args.samples, args.conns,
                             args.seconds, headers=REMOTE_WRITE_HEADERS)  # fmt: skip
    elif args.mode == "fleet":
        fleet_bodies = FleetBodies(args.series, args.lines, args.ts, args.point)
        # Built before the clock starts: a million distinct lines cost the sender about a second.
        built = [fleet_bodies.body(i) for i in range(fleet_bodies.count)]
        result = post_counted(args.url, args.metrics_url, built.__getitem__, args.lines,
                              args.conns, _MAX_SECONDS, bodies=len(built))  # fmt: skip
    else:
        bodies = StampedBodies(args.hosts, args.lines, args.start or int(time.time()) - 86_400)
        if args.metrics_url:
            result = post_counted(args.url, args.metrics_url, bodies.body, args.lines, args.conns,
                                  args.seconds)  # fmt: skip
        else:
            result = post_bodies(args.url, bodies.body, args.lines, args.conns, args.seconds)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
