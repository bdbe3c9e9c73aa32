"""`python -m bench.tag_lookup [--series N] [--quick]`: one series by its tag among a million.

The fleet workload: N series `card,host=hNNNNNNN v=R ts` (a million by default), every line its
own series, in bodies of 5,000 lines, first creating the series, then a second point to each.

In process: the bodies parsed by the line-protocol parser and written straight into an embedded
store; its RSS after them, and the median time of `run_query` for one series by its host
(`metric=card.v&tags=host:hNNNNNNN`, hosts spread over the fleet, each asked once) and of PromQL's
selector match (`card_v{host="hNNNNNNN"}`). Over HTTP: the same bodies posted to a real `shipboard
run` over 2 connections; its RSS, and the median time of the same lookup through
`/api/v1/query` and `/prometheus/api/v1/query`. Times are wall clock on whatever else the
machine runs: take them on a quiet machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from aggregator.promql.series import matching_series
from aggregator.promql.syntax import LabelMatcher
from aggregator.query import QueryRequest, run_query
from bench.core import median
from bench.procs import HOST, http_get, http_post
from bench.servers import shipboard
from collector.influx_line import parse_influx
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore

BODY_LINES = 5_000
LOOKUPS = 50
MIB = 1 << 20


def bodies(series: int, point: int, now_s: int) -> Iterator[bytes]:
    """The fleet's bodies for its `point`-th point (0: the one that creates the series)."""
    for first in range(0, series, BODY_LINES):
        last = min(series, first + BODY_LINES)
        yield "".join(
            f"card,host=h{i:07d} v={point + i * 0.5} {now_s + point}\n" for i in range(first, last)
        ).encode()


def hosts(series: int, count: int) -> list[str]:
    """`count` hosts spread over the fleet, none asked twice."""
    return [f"h{(123_456 + 7_919 * k) % series:07d}" for k in range(count)]


def median_ms(lookup: Callable[[str], None], asked: list[str]) -> float:
    """The median wall time of `lookup` of each host, in ms."""
    took = []
    for host in asked:
        started = time.perf_counter()
        lookup(host)
        took.append((time.perf_counter() - started) * 1000)
    return median(took)


def in_process(series: int, root: Path, lookups: int) -> dict[str, float]:
    tiers = Settings().tiers()
    now_s = int(time.time()) - 600
    with EmbeddedStore(root / "in-process", tiers) as store:
        started = time.perf_counter()
        for point in range(2):
            for body in bodies(series, point, now_s):
                store.write(parse_influx(body, time.time_ns(), "s").samples)
        figures = {"write s": time.perf_counter() - started}
        figures["RSS MiB"] = psutil.Process().memory_info().rss / MIB
        now_ns = time.time_ns()

        def query(host: str) -> None:
            params = {"metric": "card.v", "tags": f"host:{host}", "from": "-1h"}
            result = run_query(store, tiers, QueryRequest.from_params(params, now_ns, 1000))
            assert len(result.series) == 1, result

        def promql(host: str) -> None:
            matchers = (
                LabelMatcher("__name__", "=", "card_v", None),
                LabelMatcher("host", "=", host, None),
            )
            assert len(matching_series(store, matchers)) == 1

        query(hosts(series, 1)[0])  # the first query imports what it needs
        figures["query ms"] = median_ms(query, hosts(series, lookups))
        figures["PromQL match ms"] = median_ms(promql, hosts(series, lookups))
    return figures


def over_http(series: int, root: Path, lookups: int) -> dict[str, float]:
    now_s = int(time.time()) - 600
    (root / "http").mkdir()
    server = shipboard(root / "http")
    try:
        base = f"http://{HOST}:{server.ports['http']}"
        started = time.perf_counter()
        for point in range(2):
            with ThreadPoolExecutor(2) as connections:
                statuses = connections.map(
                    lambda body: http_post(f"{base}/write?precision=s", body, 120.0),
                    bodies(series, point, now_s),
                )
                assert set(statuses) == {204}
        figures = {"write s": time.perf_counter() - started}
        figures["RSS MiB"] = server.rss_bytes() / MIB

        def query(host: str) -> None:
            params = {"metric": "card.v", "tags": f"host:{host}", "from": "-1h"}
            assert b'"host":"' + host.encode() in http_get(
                f"{base}/api/v1/query?" + urllib.parse.urlencode(params)
            )

        def promql(host: str) -> None:
            params = {"query": f'card_v{{host="{host}"}}', "time": str(now_s + 1)}
            assert b'"host":"' + host.encode() in http_get(
                f"{base}/prometheus/api/v1/query?" + urllib.parse.urlencode(params)
            )

        query(hosts(series, 1)[0])
        figures["query ms"] = median_ms(query, hosts(series, lookups))
        figures["PromQL query ms"] = median_ms(promql, hosts(series, lookups))
        return figures
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1_000_000, help="series in the fleet")
    parser.add_argument("--lookups", type=int, default=LOOKUPS, help="hosts looked up, each once")
    parser.add_argument("--quick", action="store_true", help="10,000 series, 5 lookups")
    args = parser.parse_args()
    series, lookups = (10_000, 5) if args.quick else (args.series, args.lookups)
    with tempfile.TemporaryDirectory(prefix="tag-lookup-") as tmp:
        for where, run in (("in process", in_process), ("over HTTP", over_http)):
            figures = run(series, Path(tmp), lookups)
            shown = ", ".join(f"{name} {value:,.2f}" for name, value in figures.items())
            print(f"{series:,} series, {where}: {shown}", flush=True)


if __name__ == "__main__":
    main()
