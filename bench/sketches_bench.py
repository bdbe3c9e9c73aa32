"""`python -m bench.sketches_bench [--quick]`: what latency sketches cost at rest, and how fast
a real `shipboard run` answers a 7-day p99 across 100 series from its 1 h tier.

Size: StatsD flushes of n log-normal latencies (median 40 ms, sigma 0.3 and 0.6) written to an
embedded store, checkpointed into blocks: bytes of the sketch table's block files per sketch.
Speed: a week of 10-minute flushes for 100 series (10 services x 10 hosts) is written and rolled
up in a data dir, which `shipboard run` then serves: `/api/v1/query?agg=p99` over 7 days at a 1 h
step, across hosts (`group_by=service`) and per series, timed over HTTP, medians.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from aggregator.scheduler import RollupScheduler
from bench.core import median
from bench.procs import HOST, SERVER_CPU, Server, free_port, http_get, http_ok, pinned
from bench.servers import SHIPBOARD
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Samples, Series, Sketches
from storage.sketches import build

WEEK_S = 7 * 86_400
FLUSH_S = 600
SERVICES, HOSTS = 10, 10
VALUES_PER_FLUSH = 200  # per series


def sketch_sizes(root: Path) -> dict[str, float]:
    """Bytes per sketch at rest for flushes of n values, per latency spread."""
    tiers = Settings().tiers()
    rng = np.random.default_rng(0)
    sizes: dict[str, float] = {}
    for n in (10, 100, 1000):
        for sigma in (0.3, 0.6):
            directory = root / f"size-{n}-{sigma}"
            flushes = 200
            with EmbeddedStore(directory, tiers) as store:
                now_s = int(time.time()) - flushes * 10
                for i in range(flushes):
                    values = rng.lognormal(np.log(40.0), sigma, n).round(3)
                    label, keys, counts = build(np.zeros(n, np.int64), values, np.ones(n))
                    ts = np.full(len(keys), (now_s + 10 * i) * NS_PER_S, np.int64)
                    series = (Series.of("bench.latency", {"host": "a"}),)
                    sketches = Sketches(series, label.astype(np.int32), ts, keys, counts)
                    store.write(Samples.empty(), sketches)
                store.checkpoint()
            files = (directory / "blocks" / "sketch.raw").rglob("*")
            total = sum(p.stat().st_size for p in files if p.is_file())
            sizes[f"n={n} sigma={sigma}"] = total / flushes
    return sizes


def fill_week(data_dir: Path, end_s: int) -> int:
    """A week of flushes of 100 timer series in the data dir's store, rolled up to every tier;
    how many sketches were written."""
    tiers = Settings().tiers()
    rng = np.random.default_rng(1)
    series = [
        Series.of("bench.latency", {"service": f"s{s}", "host": f"h{s}{h}"})
        for s in range(SERVICES)
        for h in range(HOSTS)
    ]
    count = 0
    with EmbeddedStore(data_dir / "metrics", tiers) as store:
        for flush in range(WEEK_S // FLUSH_S):
            ts_ns = (end_s - WEEK_S + flush * FLUSH_S) * NS_PER_S
            n = VALUES_PER_FLUSH * len(series)
            group = np.repeat(np.arange(len(series)), VALUES_PER_FLUSH)
            values = rng.lognormal(np.log(40.0), 0.6, n) * (1 + (group % HOSTS == 0))
            label, keys, counts = build(group.astype(np.int64), values.round(3), np.ones(n))
            stamps = np.full(len(keys), ts_ns, np.int64)
            store.write(
                Samples.empty(), Sketches(series, label.astype(np.int32), stamps, keys, counts)
            )
            count += len(series)
        RollupScheduler(store, tiers, grace_ns=0).catch_up(end_s * NS_PER_S, 3600.0)
    return count


def query_times(data_dir: Path, requests: int) -> dict[str, float]:
    """Median milliseconds of 7-day percentile queries at a 1 h step over HTTP to `shipboard
    run`: first asks (each of `requests` percentiles never asked before, p98.01, p98.02, ...,
    so no kept answer serves them) and a p99 asked again and again (served by the kept answers
    of aggregator/sketch_cache.py)."""
    port = free_port()
    argv = [
        str(SHIPBOARD), "run", "--data-dir", str(data_dir), "--http-port", str(port),
        "--statsd-port", "0", "--graphite-port", "0", "--dash-port", "0",
        "--anonymous-read", "--no-agent",
    ]  # fmt: skip
    server = Server("shipboard", pinned(argv, SERVER_CPU), data_dir.parent, {"http": port})
    server.start()
    try:
        server.wait_until(lambda: http_ok(f"http://{HOST}:{port}/healthz"), timeout_s=120)
        times: dict[str, float] = {}
        for name, extra in (("across hosts", "&group_by=service"), ("per series", "")):
            base = f"http://{HOST}:{port}/api/v1/query?metric=bench.latency&from=-7d&step=1h{extra}"
            first = []
            for i in range(requests):
                started = time.perf_counter()
                http_get(f"{base}&agg=p{98 + (i + 1) / 100 if extra else 97 + (i + 1) / 100:g}")
                first.append((time.perf_counter() - started) * 1000)
            times[f"{name}, first ask"] = median(first)
            url = f"{base}&agg=p99"
            answer = json.loads(http_get(url))
            assert answer["tier"] == "1h", answer["tier"]
            assert len(answer["series"]) == (SERVICES if extra else SERVICES * HOSTS)
            took = []
            for _ in range(requests):
                started = time.perf_counter()
                http_get(url)
                took.append((time.perf_counter() - started) * 1000)
            times[f"{name}, asked again"] = median(took)
        return times
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sketches-bench-") as tmp:
        root = Path(tmp)
        for case, size in sketch_sizes(root).items():
            print(f"bytes per sketch at rest, {case}: {size:,.0f}")
        end_s = int(time.time()) // 3600 * 3600
        started = time.perf_counter()
        written = fill_week(root / "week" / "data", end_s)
        print(f"wrote and rolled up {written:,} sketches in {time.perf_counter() - started:.1f} s")
        for name, ms in query_times(root / "week" / "data", 5 if args.quick else 30).items():
            print(f"7-day percentile at 1 h steps, 100 series, {name}: {ms:.1f} ms (median)")


if __name__ == "__main__":
    main()
