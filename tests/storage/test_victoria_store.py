"""The VictoriaMetrics store against a real VictoriaMetrics: exact round trips, listings and
the series limit, and rollups and merged sketches computed by VictoriaMetrics that equal the
embedded store's own rollups of the same points (its aggregator is the truth here), late points
in every tier at once, and writes spooled while VictoriaMetrics is away."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aggregator.scheduler import RollupScheduler
from storage.embedded import EmbeddedStore
from storage.errors import StorageError
from storage.records import NS_PER_MS, NS_PER_S, Samples, Series, Sketches, Tier
from storage.sketches import build
from storage.victoria import VictoriaStore
from storage.victoria_config import VictoriaConfig
from tests.launcher import free_port, wait_for
from tests.storage.sketch_cases import rows_of
from tests.victoria import STORE_OPTIONS, VictoriaMetrics

pytestmark = pytest.mark.slow  # a server process

HOUR_NS = 3600 * NS_PER_S
# Three whole hours that ended an hour ago: inside VictoriaMetrics' retention, past every tier.
START_NS = (time.time_ns() // HOUR_NS - 4) * HOUR_NS
A = Series.of("cpu.user", {"host": "a"})
B = Series.of("cpu.user", {"host": "b"})
C = Series.of("mem.used", {"host": "a", "rack": "r1"})
LATENCY = Series.of("api.latency", {"host": "a"})
DIGITS = 1e-11  # VictoriaMetrics keeps a value as a decimal of 12 significant digits


@pytest.fixture
def open_vm(
    victoria: VictoriaMetrics, tmp_path: Path, tiers: tuple[Tier, ...]
) -> Iterator[Callable[..., VictoriaStore]]:
    """Opens stores on the emptied VictoriaMetrics whose writes are searchable on return."""
    stores: list[VictoriaStore] = []

    def factory(**options: Any) -> VictoriaStore:
        options = STORE_OPTIONS | options
        config = VictoriaConfig(url=victoria.url)
        store = VictoriaStore(config, tiers, tmp_path / "spool", **options)
        stores.append(store.__enter__())
        return store

    yield factory
    for store in reversed(stores):
        store.close()


def at(seconds: float) -> int:
    return START_NS + int(seconds * 1000) * NS_PER_MS


def test_points_read_back_sorted_half_open_and_unknown_series_empty(open_vm) -> None:
    store = open_vm()
    result = store.write(
        Samples.from_points([(A, at(30), 3.0), (B, at(10), 1.5), (A, at(10), 1.0)])
    )
    assert result.accepted == 3
    got = store.read([B, Series("nope"), A], at(0), at(100))
    assert got.points() == [(B, at(10), 1.5), (A, at(10), 1.0), (A, at(30), 3.0)]
    assert got.series == (B, Series("nope"), A)
    assert store.read(None, at(0), at(100)).points() == [
        (A, at(10), 1.0), (A, at(30), 3.0), (B, at(10), 1.5)
    ]  # fmt: skip
    assert store.read([A], at(10), at(30)).points() == [(A, at(10), 1.0)]


def test_a_point_written_again_is_one_point(open_vm) -> None:
    store = open_vm()
    store.write(Samples.from_points([(A, at(10), 5.0), (A, at(20), 1.0)]))
    store.write(Samples.from_points([(A, at(10), 5.0)]))  # a spool re-delivery, say
    assert store.read([A], at(0), at(100)).points() == [(A, at(10), 5.0), (A, at(20), 1.0)]
    assert store.read_rollups("1m", [A], at(0), at(60)).count.tolist() == [2.0]


def test_listings_glob_and_sort_and_the_series_limit_refuses_new_series(open_vm) -> None:
    store = open_vm(max_series=2)
    result = store.write(Samples.from_points([(B, at(1), 1.0), (A, at(1), 1.0), (C, at(1), 1.0)]))
    assert (result.accepted, result.refused_points, result.refused_series) == (2, 1, 1)
    assert store.metrics() == ["cpu.user"]
    assert store.metrics("mem.*") == []
    assert store.series("cpu.user") == [A, B]
    reopened = open_vm()  # another process: it lists what VictoriaMetrics holds
    assert reopened.series() == [A, B]
    assert reopened.series_count() == 2


def test_names_victoria_metrics_cannot_keep_are_refused(open_vm) -> None:
    store = open_vm()
    bad = [Series("~own"), Series.of("x", {"empty": ""})]
    result = store.write(Samples.from_points([(s, at(1), 1.0) for s in bad]))
    assert (result.accepted, result.refused_series) == (0, 2)


def rolled_up(tmp_path: Path, tiers: tuple[Tier, ...], samples: Samples, sketches: Sketches):
    """The embedded store holding the same points, rolled up by Shipboard's aggregator."""
    store = EmbeddedStore(tmp_path / "embedded", tiers)
    store.write(samples, sketches)
    RollupScheduler(store, tiers, grace_ns=0).catch_up(time.time_ns(), 30.0)
    return store


def random_points(seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    points = []
    for series in (A, B, C):
        ts = np.unique(rng.integers(0, 3 * 3600 * 1000, 2_000)) * NS_PER_MS + START_NS
        values = rng.lognormal(3, 1, len(ts)) * rng.choice([-1, 1], len(ts))
        points += [(series, t, v) for t, v in zip(ts.tolist(), values.tolist(), strict=True)]
    return Samples.from_points(points)


def random_sketches(seed: int) -> Sketches:
    """A sketch every 10 s for 3 hours, at scale 6 but for one hour at scale 3."""
    rng = np.random.default_rng(seed)
    flushes = np.arange(START_NS, START_NS + 3 * HOUR_NS, 10 * NS_PER_S)
    group = np.repeat(np.arange(len(flushes)), 20)
    values = rng.lognormal(2, 1.5, len(group))
    parts = []
    for scale, hour in ((6, 0), (3, 1), (6, 2)):
        pick = (flushes[group] - START_NS) // HOUR_NS == hour
        label, keys, counts = build(group[pick], values[pick], np.ones(pick.sum()), scale)
        index = np.zeros(len(keys), np.int32)
        parts.append(Sketches((LATENCY,), index, flushes[label], keys, counts))
    return Sketches.concat(parts)


@pytest.mark.parametrize("tier", ["1m", "10m", "1h"])
def test_rollups_computed_by_victoria_metrics_equal_shipboards_own(
    open_vm, tmp_path: Path, tiers: tuple[Tier, ...], tier: str
) -> None:
    samples, sketches = random_points(7), random_sketches(7)
    store = open_vm()
    store.write(samples, sketches)
    with rolled_up(tmp_path, tiers, samples, sketches) as truth:
        span = (START_NS - HOUR_NS, START_NS + 4 * HOUR_NS)
        want = truth.read_rollups(tier, [A, B, C], *span)
        got = store.read_rollups(tier, [A, B, C], *span)
        assert got.series == (A, B, C)
        assert got.index.tolist() == want.index.tolist()
        assert got.bucket_ns.tolist() == want.bucket_ns.tolist()
        assert got.count.tolist() == want.count.tolist()
        for column in ("min", "max", "last"):
            np.testing.assert_allclose(getattr(got, column), getattr(want, column), rtol=DIGITS)
        # A sum of values of both signs cancels: its error is that of the values it adds.
        np.testing.assert_allclose(got.sum, want.sum, rtol=DIGITS, atol=1e-8)
        every = store.read_rollups(tier, None, *span)
        assert every.series == (A, B, C)
        assert len(every) == len(want)
        want_sketches = truth.read_sketches(tier, [LATENCY], *span)
        got_sketches = store.read_sketches(tier, [LATENCY], *span)
        assert len(np.unique(got_sketches.ts_ns)) == {"1m": 180, "10m": 18, "1h": 3}[tier]
        assert_same_sketches(got_sketches, want_sketches)


def assert_same_sketches(got: Sketches, want: Sketches) -> None:
    """The same sketches, values to VictoriaMetrics' precision (counts are whole: exact)."""
    assert [row[:3] for row in rows_of(got)] == [row[:3] for row in rows_of(want)]
    np.testing.assert_allclose(got.values, want.values, rtol=DIGITS)


def test_raw_sketches_round_trip_exactly(open_vm) -> None:
    store = open_vm()
    sent = random_sketches(3)
    store.write(Samples.empty(), sent)
    got = store.read_sketches("raw", [LATENCY], START_NS, START_NS + 3 * HOUR_NS)
    assert_same_sketches(got, sent)
    assert store.series("api.latency") == [LATENCY]  # sketch-only series are listed


def test_a_late_point_is_in_every_tier_at_once(open_vm) -> None:
    store = open_vm()
    store.write(Samples.from_points([(A, at(10), 1.0)]))
    assert store.read_rollups("1h", [A], START_NS, START_NS + HOUR_NS).sum.tolist() == [1.0]
    store.write(Samples.from_points([(A, at(3599.5), 2.0)]))  # backfilled
    for tier in ("1m", "10m", "1h"):
        assert store.read_rollups(tier, [A], START_NS, START_NS + HOUR_NS).sum.sum() == 3.0
    assert len(store.dirty("1h")) == 0


def test_watermarks_trail_now_by_the_latency_offset_and_rollups_are_not_written(open_vm) -> None:
    store = open_vm(latency_offset_s=120.0)
    now = time.time_ns()
    watermark = store.watermark("1m")
    assert watermark is not None
    assert now - 180 * NS_PER_S <= watermark <= now - 120 * NS_PER_S
    assert watermark % (60 * NS_PER_S) == 0
    with pytest.raises(StorageError, match="computes rollups itself"):
        store.begin_rollup("1m", now)


def test_writes_while_victoria_metrics_is_away_are_spooled_then_delivered(
    victoria: VictoriaMetrics, tmp_path: Path, tiers: tuple[Tier, ...]
) -> None:
    away = VictoriaConfig(url=f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    sent = Samples.from_points([(A, at(1), 1.0), (B, at(2), 2.0)])
    with VictoriaStore(away, tiers, tmp_path / "spool") as store:
        assert store.write(sent, random_sketches(1)).accepted == 2
        assert store.write(Samples.from_points([(A, at(3), 3.0)])).accepted == 1
        assert store.spool_depth == 2
    config = VictoriaConfig(url=victoria.url)
    with VictoriaStore(config, tiers, tmp_path / "spool", latency_offset_s=0.0) as store:
        wait_for(lambda: store.spool_depth == 0, timeout_s=10)
        victoria.get("/internal/force_flush")
        got = store.read(None, at(0), at(10)).points()
        assert got == [(A, at(1), 1.0), (A, at(3), 3.0), (B, at(2), 2.0)]
        raw = store.read_sketches("raw", [LATENCY], START_NS, START_NS + 3 * HOUR_NS)
        assert_same_sketches(raw, random_sketches(1))
