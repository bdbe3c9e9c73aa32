"""StatsD ingest microbenchmark: CPU time per metric, in process and through a UDP listener.

`python -m bench.statsd_micro` prints one table. In process, chunks go straight into
`StatsdAggregator.ingest`; over UDP, a listener runs in a child process (uvloop, as `shipboard
run` does) and reports its own CPU time while this process sends for a second or two. Timer
values are random, as a real application's are. Every load is short and goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from bench.payloads import statsd_lines, statsd_packets
from collector.stats import IngestStats
from collector.statsd_aggregate import StatsdAggregator

HOST = "127.0.0.1"
NAMES = 3000
# Rounds of every name, each with new timer values: more distinct values than a cache holds.
VARIANTS = 120


def _lines() -> list[bytes]:
    """The benchmark's lines VARIANTS times, each timer with a random value in [0, 1000) ms."""
    rng = random.Random(7)
    lines = statsd_lines(NAMES) * VARIANTS
    return [
        b"%s:%.3f|ms" % (line.partition(b":")[0], rng.uniform(0, 1000))
        if line.endswith(b"|ms")
        else line
        for line in lines
    ]


def _packets(lines: list[bytes]) -> list[bytes]:
    """`lines` cut into the multi-metric packets of bench.payloads (~1,400 bytes each)."""
    shapes, _ = statsd_packets(NAMES)
    sizes = [p.count(b"\n") + 1 for p in shapes]
    packets, start = [], 0
    while start < len(lines):
        for size in sizes:
            packets.append(b"\n".join(lines[start : start + size]))
            start += size
    return packets


def _cpu_ns_per_metric(
    ingest: Callable[[bytes], None], chunks: list[bytes], seconds: float
) -> float:
    for chunk in chunks[:100]:  # learn the names first
        ingest(chunk)
    metrics = 0
    start = time.process_time()
    for chunk in chunks:
        if time.process_time() - start > seconds:
            break
        ingest(chunk)
        metrics += chunk.count(b"\n") + 1
    return (time.process_time() - start) / metrics * 1e9


def in_process(seconds: float) -> dict[str, float]:
    """CPU ns per metric for chunks of 32 multi-metric datagrams and of 256 single lines."""
    lines = _lines()
    packets = _packets(lines)
    multi = [b"\n".join(packets[i : i + 32]) for i in range(0, len(packets), 32)]
    single = [b"\n".join(lines[i : i + 256]) for i in range(0, len(lines), 256)]
    agg = StatsdAggregator(IngestStats(), flush_interval_s=10.0)
    return {
        "in-process multi (32 datagrams/chunk)": _cpu_ns_per_metric(agg.ingest, multi, seconds),
        "in-process single (256 lines/chunk)": _cpu_ns_per_metric(agg.ingest, single, seconds),
    }


# --- UDP through a listener in a child process ---------------------------------------------


async def _serve() -> None:
    """Child: listen, then answer each stdin line with (CPU s, metrics received) as JSON."""
    from collector.statsd_server import statsd_listener

    stats = IngestStats()
    agg = StatsdAggregator(stats, flush_interval_s=10.0)
    async with statsd_listener(HOST, 0, agg, stats) as server:
        print(server.udp_port, flush=True)
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):
            await asyncio.sleep(0.2)  # let the socket drain
            report = {"cpu_s": time.process_time(), "received": stats.received["statsd"]}
            print(json.dumps(report), flush=True)


def _send(port: int, packets: list[bytes], pps: float, seconds: float) -> None:
    """Send round-robin at `pps` packets/s (0: flat out) for `seconds`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((HOST, port))
        sent = 0
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            due = int((now - start) * pps) if pps else sent + 256
            while sent < due:
                # A full socket buffer drops the packet, as UDP does.
                with contextlib.suppress(OSError):
                    sock.send(packets[sent % len(packets)])
                sent += 1
            if pps:
                time.sleep(0.0002)


def over_udp(seconds: float) -> dict[str, float]:
    """Listener CPU ns per metric received: multi-metric packets flat out, and single-metric
    packets at 100k/s."""
    lines = _lines()
    packets = _packets(lines)
    argv = [sys.executable, "-m", "bench.statsd_micro", "--serve"]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    stdin, stdout = child.stdin, child.stdout
    assert stdin is not None
    assert stdout is not None
    results: dict[str, float] = {}
    try:
        port = int(stdout.readline())

        def report() -> tuple[float, int]:
            stdin.write("\n")
            stdin.flush()
            answer = json.loads(stdout.readline())
            return answer["cpu_s"], answer["received"]

        for label, payload, pps in (
            ("udp multi (flat out)", packets, 0.0),
            ("udp single (100k packets/s)", lines, 100_000.0),
        ):
            cpu_before, before = report()
            sender = threading.Thread(target=_send, args=(port, payload, pps, seconds))
            sender.start()
            sender.join()
            cpu_after, after = report()
            results[label] = (cpu_after - cpu_before) / max(after - before, 1) * 1e9
            results[label.replace("udp", "received/s")] = (after - before) / seconds
    finally:
        stdin.close()
        child.wait(timeout=10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.5, help="per measurement, at most 5")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(_serve())
        return
    seconds = min(args.seconds, 5.0)
    figures = in_process(seconds) | over_udp(seconds)
    print(f"{'case':42s} {'figure':>12s}")
    for label, value in figures.items():
        unit = "/s" if label.startswith("received") else "ns CPU/metric"
        print(f"{label:42s} {value:12,.0f} {unit}")


if __name__ == "__main__":
    main()
