"""Comparing a metric over two windows or arms, on known data in a real embedded store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.compare import Comparison, MetricSpec, Side, compare
from aggregator.errors import QueryError
from aggregator.query import TagFilter
from storage.base import Store
from storage.records import Samples, Series, Sketches
from storage.sketches import build
from tests.aggregator.conftest import MIN, NOW, TIERS, S
from tests.backends import StoreOpener

BEFORE = Side(NOW - 20 * MIN, NOW - 10 * MIN)
AFTER = Side(NOW - 10 * MIN, NOW)
RATIO = MetricSpec.parse("http.errors.count/http.requests.count")
P99 = MetricSpec.parse("http.latency:p99")
FLUSHES = np.arange(NOW - 20 * MIN, NOW, 10 * S, dtype=np.int64)  # 60 on each side


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opener = StoreOpener(request, "embedded", tmp_path, TIERS)
    yield opener()
    opener.close()


def write_counts(store: Store, service: str, requests: int, rates: tuple[float, float], seed: int):
    """Every 10 s, `requests` requests of which errors at rates[0] before NOW - 10m, rates[1]
    after, as a StatsD flush writes counters."""
    rng = np.random.default_rng(seed)
    rate = np.where(AFTER.start_ns > FLUSHES, rates[0], rates[1])
    errors = rng.binomial(requests, rate).astype(np.float64)
    tags = {"service": service}
    series = (Series.of("http.requests.count", tags), Series.of("http.errors.count", tags))
    n = len(FLUSHES)
    store.write(
        Samples(
            series,
            np.repeat(np.arange(2, dtype=np.int32), n),
            np.concatenate([FLUSHES, FLUSHES]),
            np.concatenate([np.full(n, float(requests)), errors]),
        )
    )


def write_latencies(store: Store, service: str, per_flush: int, slower: float, seed: int):
    """Every 10 s a sketch of `per_flush` lognormal latencies (median 20 ms), `slower` times
    as slow after NOW - 10m."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(3.0, 0.6, (len(FLUSHES), per_flush))
    values[AFTER.start_ns <= FLUSHES] *= slower
    label, keys, counts = build(
        np.repeat(np.arange(len(FLUSHES)), per_flush), values.ravel(), np.ones(values.size)
    )
    series = (Series.of("http.latency", {"service": service}),)
    sketches = Sketches(series, np.zeros(len(keys), np.int32), FLUSHES[label], keys, counts)
    store.write(Samples.empty(), sketches)


def judge(store: Store, spec: MetricSpec, service: str = "web", **options) -> Comparison:
    filters = (TagFilter.of("service", service),)
    before = Side(BEFORE.start_ns, BEFORE.end_ns, filters)
    after = Side(AFTER.start_ns, AFTER.end_ns, filters)
    return compare(store, TIERS, spec, before, after, now_ns=NOW, **options)


def test_a_doubled_error_ratio_with_plenty_of_samples_is_regressed(store):
    write_counts(store, "web", 5000, (0.01, 0.02), seed=1)
    got = judge(store, RATIO)
    assert got.status == "regressed"
    assert got.test == "binomial"
    assert got.samples == (300_000, 300_000)
    assert got.before == pytest.approx(0.01, rel=0.05)
    assert got.after == pytest.approx(0.02, rel=0.05)
    assert got.change == pytest.approx(1.0, abs=0.1)
    assert got.interval is not None
    assert got.change is not None
    assert 0.8 < got.interval[0] < got.change < got.interval[1]
    assert got.json()["metric"] == "http.errors/http.requests"


def test_the_same_error_ratio_is_healthy(store):
    write_counts(store, "web", 5000, (0.01, 0.01), seed=2)
    got = judge(store, RATIO)
    assert got.status == "healthy"
    assert got.interval is not None
    assert got.interval[0] < 0 < got.interval[1] < 0.2


def test_a_tiny_sample_is_inconclusive_even_when_doubled(store):
    write_counts(store, "web", 1, (0.02, 0.04), seed=3)  # 60 requests a side
    got = judge(store, RATIO)
    assert got.status == "inconclusive"
    assert got.samples == (60, 60)


def test_a_wide_interval_is_inconclusive_not_healthy(store):
    # Plenty of requests but few errors: a rise of 50% could hide in the interval.
    write_counts(store, "web", 100, (0.002, 0.002), seed=4)
    got = judge(store, RATIO)
    assert got.status == "inconclusive"
    assert got.interval is not None
    assert got.interval[1] > 0.2


def test_nothing_is_no_data(store):
    for spec in (RATIO, P99, MetricSpec("http.requests.count"), MetricSpec("cpu.user")):
        got = judge(store, spec)
        assert (got.status, got.before, got.after, got.samples) == ("no_data", None, None, (0, 0))
    write_counts(store, "web", 5000, (0.01, 0.02), seed=5)
    assert judge(store, RATIO, service="db").status == "no_data"


def test_an_increase_smaller_than_the_floor_is_not_a_regression(store):
    write_counts(store, "web", 5000, (0.01, 0.02), seed=6)
    assert judge(store, RATIO, absolute_floor=0.02).status == "healthy"
    assert judge(store, RATIO, max_increase=2.0).status == "healthy"


def test_latency_p99_fifty_percent_slower_is_regressed(store):
    write_latencies(store, "web", 200, 1.5, seed=7)
    got = judge(store, P99)
    assert (got.status, got.test, got.samples) == ("regressed", "quantile", (12_000, 12_000))
    exact = np.exp(3.0 + 0.6 * 2.3263)  # the lognormal's p99
    assert got.before == pytest.approx(exact, rel=0.05)
    assert got.after == pytest.approx(1.5 * exact, rel=0.05)
    assert got.change == pytest.approx(0.5, abs=0.08)
    assert got.interval is not None
    assert 0 < got.interval[0] < 0.5 < got.interval[1]
    assert got.json()["metric"] == "http.latency p99"


def test_the_same_latency_is_healthy(store):
    write_latencies(store, "web", 200, 1.0, seed=8)
    got = judge(store, P99)
    assert got.status == "healthy"
    assert got.interval is not None
    assert got.interval[0] < 0 < got.interval[1]


def test_noise_is_never_a_regression(store):
    # 50 services, each the same distributions on both sides with a seed of its own.
    for seed in range(50):
        write_counts(store, f"s{seed}", 500, (0.01, 0.01), seed=100 + seed)
        write_latencies(store, f"s{seed}", 50, 1.0, seed=200 + seed)
    statuses = {
        (spec.label(), judge(store, spec, service=f"s{seed}").status)
        for seed in range(50)
        for spec in (RATIO, P99)
    }
    assert {status for _, status in statuses} <= {"healthy", "inconclusive"}
    assert ("http.errors/http.requests", "healthy") in statuses
    assert ("http.latency p99", "healthy") in statuses


def test_a_doubled_count_rate_is_regressed_by_the_poisson_test(store):
    write_counts(store, "web", 5000, (0.01, 0.02), seed=9)
    got = judge(store, MetricSpec.parse("http.errors.count"))
    assert (got.status, got.test) == ("regressed", "poisson")
    assert got.before == pytest.approx(3000 / 600, rel=0.05)  # errors per second
    requests = judge(store, MetricSpec.parse("http.requests.count"))
    assert (requests.status, requests.change) == ("healthy", 0.0)


def test_a_gauge_compares_bucket_means_by_welch(store):
    rng = np.random.default_rng(10)
    cpu = 40 + rng.normal(0, 5, len(FLUSHES))
    cpu[AFTER.start_ns <= FLUSHES] *= 1.5
    store.write(
        Samples.from_points(
            [
                (Series.of("cpu.user", {"service": "web"}), t, v)
                for t, v in zip(FLUSHES.tolist(), cpu.tolist(), strict=True)
            ]
        )
    )
    got = judge(store, MetricSpec.parse("cpu.user"), min_samples=30)
    assert (got.status, got.test, got.samples) == ("regressed", "welch", (60, 60))
    assert got.change == pytest.approx(0.5, abs=0.05)
    assert judge(store, MetricSpec.parse("cpu.user")).status == "inconclusive"  # 60 < 100


@pytest.mark.parametrize(
    ("text", "spec", "kind", "label"),
    [
        ("a.count/b.count", MetricSpec("a.count", "b.count"), "ratio", "a/b"),
        (
            "http.latency:p99",
            MetricSpec("http.latency", None, "p99"),
            "quantile",
            "http.latency p99",
        ),
        ("http.requests.count", MetricSpec("http.requests.count"), "count", "http.requests.count"),
        ("jobs_total", MetricSpec("jobs_total"), "count", "jobs_total"),
        ("queue.depth:sum", MetricSpec("queue.depth", None, "sum"), "count", "queue.depth sum"),
        ("cpu.user", MetricSpec("cpu.user"), "gauge", "cpu.user"),
    ],
)
def test_parse(text, spec, kind, label):
    assert MetricSpec.parse(text) == spec
    assert (spec.kind, spec.label()) == (kind, label)


@pytest.mark.parametrize("text", ["", "a/", "/b", "a:p99/b", "x:median", "a b"])
def test_parse_refuses_what_is_no_spec(text):
    with pytest.raises(QueryError, match="watch"):
        MetricSpec.parse(text)


names = st.from_regex(r"[a-z][a-z0-9_.]{0,20}", fullmatch=True)


@given(names, names, st.integers(1, 99))
def test_parse_reads_back_what_it_is_given(numerator, denominator, q):
    assert MetricSpec.parse(f"{numerator}/{denominator}") == MetricSpec(numerator, denominator)
    assert MetricSpec.parse(f" {numerator}:p{q} ").kind == "quantile"
