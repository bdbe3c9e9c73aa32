"""histogram_quantile, histogram_count and histogram_sum over latency sketches answer as
Prometheus over native histograms of the same observations: Shipboard stores each flush's
sketch (as StatsD's flushes do), Prometheus (native histograms on) takes the cumulative
histograms those flushes add up to, by remote write at the same times; the same queries are
asked of both, at instants before, inside and after the data and over ranges. The same
remote-write body sent to a `shipboard run` gives the same answers from its own API."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cramjam import snappy

from aggregator.promql.names import series_labels
from collector.prompb import WriteRequest
from storage.base import StoreReader
from storage.records import NS_PER_MS, Samples, Series, Sketches
from storage.sketches import BUCKET_BASE, MAX_KEY, SUM_KEY, build
from tests.aggregator.promql.dataset import MIN, SPAN_MS, S
from tests.aggregator.promql.stores import KINDS, open_store
from tests.aggregator.promql.test_against_prometheus import ours
from tests.aggregator.promql.truth import WRITE_HEADERS, Prometheus, assert_same_answer, http
from tests.aggregator.promql.truth import jittered as jittered_times
from tests.running import RunningShipboard

pytestmark = pytest.mark.slow  # starts a Prometheus server

LOOKBACK = 5 * MIN


@dataclass(frozen=True)
class Flushes:
    """One series' sketches, a flush each: rows as storage.sketches builds them."""

    series: Series
    scale: int
    ts_ms: list[int]
    flush: np.ndarray  # the flush each row belongs to
    keys: np.ndarray
    values: np.ndarray


def _flushes(
    rng: np.random.Generator, series: Series, ts_ms: list[int], scale: int, negative: bool
) -> Flushes:
    """Latencies, a few exact zeros among them (and, if `negative`, as many values below
    zero as above: a clock skew's), 0 to 40 per flush; flushes with no values are none."""
    sizes = rng.integers(0, 40, len(ts_ms))
    values = rng.lognormal(-3, 1.2, int(sizes.sum()))
    values[rng.random(len(values)) < 0.05] = 0.0
    if negative:
        values *= rng.choice([-1.0, 1.0], len(values))
    kept = [t for t, n in zip(ts_ms, sizes.tolist(), strict=True) if n]
    group = np.repeat(np.arange(len(kept)), sizes[sizes > 0])
    flush, keys, rows = build(group, values, np.ones(len(values)), scale)
    return Flushes(series, scale, kept, flush, keys, rows)


def build_flushes(base_ms: int, seed: int = 17) -> list[Flushes]:
    rng = np.random.default_rng(seed)
    end = base_ms + SPAN_MS
    latency = "http.latency"

    def times(start: int, stop: int, every: int) -> list[int]:
        return jittered_times(rng, start, stop, every)

    return [
        _flushes(rng, Series.of(latency, {"service": "web", "host": "a"}),
                 times(base_ms, end, 10 * S), 6, False),
        _flushes(rng, Series.of(latency, {"service": "web", "host": "b"}),  # stops early
                 times(base_ms, base_ms + 20 * MIN, 10 * S), 6, False),
        _flushes(rng, Series.of(latency, {"service": "db", "host": "c"}),  # starts late
                 times(base_ms + 10 * MIN, end, 15 * S), 3, False),
        _flushes(rng, Series.of("clock.skew", {"host": "a"}), times(base_ms, end, 20 * S), 4, True),
        _flushes(rng, Series.of("clock.skew", {"host": "b"}), times(base_ms, end, 30 * S), 4, True),
    ]  # fmt: skip


def sketches(flushes: list[Flushes]) -> Sketches:
    parts = []
    for one in flushes:
        ts_ns = np.asarray(one.ts_ms, np.int64)[one.flush] * NS_PER_MS
        index = np.zeros(len(one.keys), np.int32)
        parts.append(Sketches([one.series], index, ts_ns, one.keys, one.values))
    return Sketches.concat(parts)


def _spans(counts: dict[int, int]) -> tuple[list[tuple[int, int]], list[int]]:
    """Prometheus' spans (offset, length) and delta-coded counts of buckets by index."""
    spans: list[list[int]] = []
    deltas, previous, end = [], 0, None
    for index in sorted(counts):
        if end == index:
            spans[-1][1] += 1
        else:
            spans.append([index if end is None else index - end, 1])
        end = index + 1
        deltas.append(counts[index] - previous)
        previous = counts[index]
    return [(o, n) for o, n in spans], deltas


def native_body(flushes: list[Flushes]) -> bytes:
    """A remote-write body of each series' cumulative native histograms, one per flush.
    Prometheus' bucket index is OpenTelemetry's (the sketches') plus one."""
    request = WriteRequest()
    for one in flushes:
        encoded = request.timeseries.add()
        for name, text in series_labels(one.series):
            encoded.labels.add(name=name, value=text)
        positive: dict[int, int] = {}
        negative: dict[int, int] = {}
        zeros, count, total = 0, 0, 0.0
        for j, ts in enumerate(one.ts_ms):
            rows = one.flush == j
            keys, values = one.keys[rows], one.values[rows]
            total += float(values[keys == SUM_KEY][0])
            for key, n in zip(keys.tolist(), values.astype(int).tolist(), strict=True):
                if key <= MAX_KEY:
                    continue
                count += n
                if key == 0:
                    zeros += n
                else:
                    side = positive if key > 0 else negative
                    index = abs(key) - BUCKET_BASE + 1
                    side[index] = side.get(index, 0) + n
            h = encoded.histograms.add(
                count_int=count, sum=total, schema=one.scale, zero_threshold=0.0,
                zero_count_int=zeros, timestamp=ts,
            )  # fmt: skip
            for spans, deltas, counts in (
                (h.positive_spans, h.positive_deltas, positive),
                (h.negative_spans, h.negative_deltas, negative),
            ):
                found, coded = _spans(counts)
                for offset, length in found:
                    spans.add(offset=offset, length=length)
                deltas.extend(coded)
    return bytes(snappy.compress_raw(request.SerializeToString()))


@pytest.fixture(scope="module")
def base_ms() -> int:
    now_ms = int(time.time()) * 1000
    return now_ms - now_ms % MIN - SPAN_MS - 15 * MIN


@pytest.fixture(scope="module")
def flushes(base_ms: int) -> list[Flushes]:
    return build_flushes(base_ms)


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, flushes: list[Flushes]
) -> Iterator[Prometheus]:
    running = Prometheus(tmp_path_factory.mktemp("prometheus"))
    running.server.command = [*running.server.command, "--enable-feature=native-histograms"]
    running.start()
    status, body = http(running.url + "/api/v1/write", native_body(flushes), WRITE_HEADERS)
    assert status == 204, (body, running.output())
    yield running
    running.stop()


@pytest.fixture(scope="module", params=KINDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, flushes: list[Flushes]
) -> Iterator[StoreReader]:
    home: Path = tmp_path_factory.mktemp("store")
    with open_store(request, request.param, home) as opened:
        opened.write(Samples.empty(), sketches(flushes))
        yield opened


def instants(base_ms: int, flushes: list[Flushes]) -> list[int]:
    stopped = max(flushes[1].ts_ms)  # host b's last flush
    last = max(t for one in flushes for t in one.ts_ms)
    return [
        base_ms - MIN, base_ms, base_ms + 40 * S + 500, base_ms + 10 * MIN,
        base_ms + 10 * MIN + 20 * S, stopped, stopped + 30 * S, stopped + LOOKBACK + 1,
        base_ms + 22 * MIN + 333, last, last + 2 * MIN, last + 9 * MIN,
    ]  # fmt: skip


QUERIES = [
    "histogram_quantile(0.9, rate(http_latency[1m]))",
    "histogram_quantile(0.5, rate(http_latency[5m]))",
    'histogram_quantile(0.99, rate(http_latency{host=~"a|c"}[47s]))',
    "histogram_quantile(0.95, increase(http_latency[2m] offset 1m))",
    "histogram_quantile(0.99, sum by (service) (rate(http_latency[5m])))",
    "histogram_quantile(0.8, sum without (host) (increase(http_latency[10m])))",
    "histogram_quantile(0.25, sum(rate(clock_skew[3m])))",
    "histogram_quantile(0.75, rate(clock_skew[5m]))",
    "histogram_quantile(0, rate(http_latency[5m]))",
    "histogram_quantile(1, rate(http_latency[5m]))",
    "histogram_quantile(1.5, rate(http_latency[5m]))",
    "histogram_quantile(-0.5, rate(http_latency[5m]))",
    "histogram_count(rate(http_latency[5m]))",
    "histogram_count(sum by (service) (increase(http_latency[3m])))",
    "histogram_sum(rate(http_latency[2m]))",
    "histogram_sum(sum(increase(clock_skew[10m])))",
]


@pytest.mark.parametrize("query", QUERIES)
def test_instant_queries_over_sketches_answer_as_prometheus(
    query: str, base_ms: int, flushes: list[Flushes], prometheus: Prometheus, store: StoreReader
) -> None:
    for at in instants(base_ms, flushes):
        params = {"query": query, "time": f"{at / 1000:.3f}"}
        _, truth = prometheus.api("query", **params)
        assert_same_answer(f"{query} at {at}", ours(store, params), truth)


@pytest.mark.parametrize("query", QUERIES[:8] + QUERIES[12:])
def test_range_queries_over_sketches_answer_as_prometheus(
    query: str, base_ms: int, prometheus: Prometheus, store: StoreReader
) -> None:
    for start, end, step in [
        (base_ms - 2 * MIN, base_ms + SPAN_MS + 8 * MIN, "37"),
        (base_ms + 19 * MIN + 1, base_ms + 27 * MIN, "15s"),
    ]:
        params = {"query": query, "start": f"{start / 1000:.3f}", "end": f"{end / 1000:.3f}",
                  "step": step}  # fmt: skip
        _, truth = prometheus.api("query_range", **params)
        assert truth["data"]["result"], (query, truth)  # the query answers something
        assert_same_answer(f"{query} over {start}..{end}", ours(store, params, False), truth)


def test_other_uses_of_sketches_are_refused_by_name(base_ms: int, store: StoreReader) -> None:
    at = f"{(base_ms + 15 * MIN) / 1000:.3f}"
    for query in (
        "histogram_quantile(0.9, http_latency)",
        "histogram_count(irate(http_latency[1m]))",
        "histogram_sum(rate(http_latency[5m]) * 2)",
    ):
        answer = ours(store, {"query": query, "time": at})
        assert (answer["status"], answer["errorType"]) == ("error", "bad_data"), (query, answer)
        assert "http_latency holds latency sketches" in answer["error"], answer
        assert "rate() or increase()" in answer["error"], answer


def test_native_histograms_remote_written_to_shipboard_answer_as_prometheus(
    tmp_path: Path, base_ms: int, flushes: list[Flushes], prometheus: Prometheus
) -> None:
    """The body Prometheus took, sent to a `shipboard run`: its cumulative histograms become
    sketches of each flush's observations, and PromQL on its own API answers as Prometheus."""
    data = tmp_path / "data"
    data.mkdir()
    running = RunningShipboard(data, ["--no-agent"]).start()
    try:
        admin = {"Authorization": f"Bearer {running.token}"}
        status, answer = http(
            running.url + "/api/v1/write", native_body(flushes), WRITE_HEADERS | admin
        )
        assert status == 204, answer
        for query in QUERIES:
            for at in instants(base_ms, flushes)[1::3]:
                params = {"query": query, "time": f"{at / 1000:.3f}"}
                url = f"{running.url}/prometheus/api/v1/query?{urllib.parse.urlencode(params)}"
                _, mine = http(url, None, admin)
                _, truth = prometheus.api("query", **params)
                assert_same_answer(f"{query} at {at}", mine, truth)
    finally:
        assert running.stop() == 0, running.output()
