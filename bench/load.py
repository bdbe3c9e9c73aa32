"""Load generators, run as their own process on the load core: bounded, 127.0.0.1 only.

`python -m bench.load statsd|graphite|influx|remote_write ...` sends, then prints one JSON object
with what it sent and how long it took. Every mode stops by itself after its count or its seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from bench.payloads import (
    RemoteWriteBodies,
    StampedBodies,
    graphite_chunks,
    statsd_lines,
    statsd_packets,
)
from bench.procs import HOST

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


def post_bodies(url: str, body: Callable[[int], bytes], lines: int, conns: int, seconds: float,
                bodies: int | None = None, headers: dict[str, str] | None = None):  # fmt: skip
    """POST body(0), body(1), ... over `conns` keep-alive connections until `seconds` pass (or
    `bodies` were sent); counts points acknowledged with 204."""
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
                conn.request("POST", target, body(index), headers)
                response = conn.getresponse()
                reply = response.read()
                with lock:
                    if response.status == 204:
                        state["acked"] += lines
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

    remote = modes.add_parser("remote_write", help="Prometheus remote write over HTTP")
    remote.add_argument("--url", required=True)
    remote.add_argument("--series", type=int, default=10_000)
    remote.add_argument("--samples", type=int, default=2000, help="samples per body")
    remote.add_argument("--conns", type=int, default=2)
    remote.add_argument("--seconds", type=float, default=3.0)
    remote.add_argument("--start-ms", type=int, default=0, help="first timestamp, unix ms")

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
    else:
        bodies = StampedBodies(args.hosts, args.lines, args.start or int(time.time()) - 86_400)
        result = post_bodies(args.url, bodies.body, args.lines, args.conns, args.seconds)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
