"""A repeated percentile query takes the kept answers of its step buckets, and they stay exact:
after a late point, a rollup, new hours, retention and a follower's reload, every answer is the
one a store opened anew gives (`aggregator.sketch_cache`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aggregator import sketch_cache
from aggregator.query import QueryRequest, run_query
from aggregator.scheduler import RollupScheduler
from storage.embedded import EmbeddedStore
from storage.embedded_reader import EmbeddedReader
from storage.records import Samples, Series, Sketches
from storage.sketch_changes import ChangeLog
from storage.sketches import build
from tests.aggregator.conftest import DAY, HOUR, NOW, TIERS

SERIES = (
    Series.of("api.latency", {"host": "a", "service": "web"}),
    Series.of("api.latency", {"host": "b", "service": "web"}),
    Series.of("api.latency", {"host": "c", "service": "db"}),
)
START = NOW - DAY
FLUSH = 600 * 10**9

Answer = dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]


def flushes(start_ns: int, end_ns: int, weight: float = 1.0, seed: int = 0) -> Sketches:
    """A sketch of 30 log-normal values per series every 10 minutes in [start, end)."""
    rng = np.random.default_rng(seed)
    parts = []
    for ts in range(start_ns, end_ns, FLUSH):
        group = np.repeat(np.arange(len(SERIES)), 30)
        values = rng.lognormal(3.0, 0.6, len(group)) * (1 + group)
        label, keys, counts = build(group, values, np.full(len(group), weight))
        ts_ns = np.full(len(keys), ts, np.int64)
        parts.append(Sketches(SERIES, label.astype(np.int32), ts_ns, keys, counts))
    return Sketches.concat(parts)


def request(agg: str, group_by: str, end_ns: int = NOW) -> QueryRequest:
    params = {
        "metric": "api.latency",
        "agg": agg,
        "from": str(START // 10**6),
        "to": str(end_ns // 10**6),
        "step": "1h",
        "group_by": group_by,
    }
    return QueryRequest.from_params(params, end_ns + HOUR, 1000)


def answer(store: EmbeddedStore | EmbeddedReader, query: QueryRequest) -> Answer:
    result = run_query(store, TIERS, query)
    assert result.tier == "1h"
    return {
        tuple(sorted(s.tags.items())): list(zip(s.ts_ms.tolist(), s.values.tolist(), strict=True))
        for s in result.series
    }


def kept_buckets(store: EmbeddedStore | EmbeddedReader) -> int:
    cache = sketch_cache._CACHES.get(store)
    return 0 if cache is None else sum(len(k.buckets) for k in cache.entries.values())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "metrics", TIERS) as opened:
        opened.write(Samples.empty(), flushes(START, NOW))
        RollupScheduler(opened, TIERS, grace_ns=0).catch_up(NOW, 60.0)
        yield opened


def assert_fresh(store: EmbeddedStore, path: Path, queries: list[QueryRequest]) -> None:
    """Every query answers, twice, what a follower opened anew on the data dir answers."""
    with EmbeddedReader(path, TIERS) as fresh:
        for query in queries:
            expected = answer(fresh, query)
            assert answer(store, query) == expected
            assert answer(store, query) == expected


QUERIES = [request(agg, by) for agg in ("p50", "p99") for by in ("", "service")]


def test_a_repeated_query_takes_its_kept_answers(store: EmbeddedStore, tmp_path: Path) -> None:
    first = answer(store, QUERIES[2])
    assert kept_buckets(store) == 24  # every hour of the day, all before the watermark
    assert answer(store, QUERIES[2]) == first
    assert_fresh(store, tmp_path / "metrics", QUERIES)
    assert len(first) == 3
    assert all(len(points) == 24 for points in first.values())


def test_late_points_rollups_and_new_hours_are_answered_exactly(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    path = tmp_path / "metrics"
    assert_fresh(store, path, QUERIES)
    before = answer(store, QUERIES[2])
    late = flushes(START + 5 * HOUR, START + 5 * HOUR + FLUSH, seed=9)  # behind the watermark
    store.write(Samples.empty(), late)
    assert store.dirty("1h").bucket_ns.tolist() == [START + 5 * HOUR]
    assert_fresh(store, path, QUERIES)
    after = answer(store, QUERIES[2])
    host_c = (("host", "c"), ("service", "db"))
    pairs = zip(before[host_c], after[host_c], strict=True)
    assert [i for i, (old, new) in enumerate(pairs) if old != new] == [5]  # the late hour
    RollupScheduler(store, TIERS, grace_ns=0).catch_up(NOW, 60.0)  # rolled up again: clean
    assert not len(store.dirty("1h"))
    assert_fresh(store, path, QUERIES)
    store.write(Samples.empty(), flushes(NOW, NOW + 2 * HOUR, seed=3))
    later = [request(agg, by, NOW + 2 * HOUR) for agg in ("p50", "p99") for by in ("", "service")]
    assert_fresh(store, path, later)  # the new hours from the finer tiers
    RollupScheduler(store, TIERS, grace_ns=0).catch_up(NOW + 2 * HOUR, 60.0)
    assert_fresh(store, path, later)  # and from the 1 h tier once rolled up


def test_retention_cutting_kept_hours_takes_them_away(store: EmbeddedStore, tmp_path: Path) -> None:
    assert answer(store, QUERIES[3])
    store.apply_retention(START + 730 * DAY + 5 * HOUR)  # the 1 h floor 5 hours in
    assert_fresh(store, tmp_path / "metrics", QUERIES)
    points = answer(store, QUERIES[3])[(("service", "db"),)]
    assert points[0][0] == (START + 5 * HOUR) // 10**6


def test_a_follower_reloading_a_checkpoint_answers_exactly(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    path = tmp_path / "metrics"
    with EmbeddedReader(path, TIERS) as follower:
        assert answer(follower, QUERIES[1])
        store.write(Samples.empty(), flushes(START + 2 * HOUR, START + 2 * HOUR + FLUSH, seed=4))
        RollupScheduler(store, TIERS, grace_ns=0).catch_up(NOW, 60.0)
        store.checkpoint()
        follower.refresh()
        with EmbeddedReader(path, TIERS) as fresh:
            for query in QUERIES:
                assert answer(follower, query) == answer(fresh, query)


def test_fractional_counts_are_not_kept(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "metrics", TIERS) as opened:
        opened.write(Samples.empty(), flushes(START, NOW, weight=1 / 0.3))
        RollupScheduler(opened, TIERS, grace_ns=0).catch_up(NOW, 60.0)
        assert_fresh(opened, tmp_path / "metrics", QUERIES)
        assert kept_buckets(opened) == 0


def test_the_change_log_says_everything_changed_when_it_forgot() -> None:
    log = ChangeLog(keep=2)
    log.note("1h", 10, 20)
    seen = log.number
    log.note("1h", 30, 40)
    log.note("1m", 5, 5)
    assert log.since("1h", seen) == ((30, 40),)
    assert log.since("1h", 0) == ((10, 20), (30, 40))
    log.note("1h", 50, 60)  # the first span is forgotten
    assert log.since("1h", 0) == ((-(2**63), 2**63 - 1),)
    assert log.since("1h", seen) == ((30, 40), (50, 60))
    now = log.number
    log.note_everything()
    assert log.since("1m", now) == ((-(2**63), 2**63 - 1),)
    assert log.since("1m", log.number) == ()
