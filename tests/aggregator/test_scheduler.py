"""The rollup scheduler on a real store: first run, chunked catch-up, late data, restarts."""

from __future__ import annotations

import pytest

from aggregator.scheduler import RollupScheduler
from storage.base import Store
from storage.records import Samples, Series, Tier
from tests.aggregator.conftest import DAY, HOST_C, HOUR, MIN, NOW, TIERS, S, known_points

ROLLUP_TIERS = ("1m", "10m", "1h")
POINTS = 5 * 720  # known_points: five series, 720 points each over two hours


def counts(store: Store) -> dict[str, float]:
    """Points counted by each rollup tier, over everything it holds."""
    return {
        tier: float(store.read_rollups(tier, None, 0, NOW + 10 * HOUR).count.sum())
        for tier in ROLLUP_TIERS
    }


def watermarks(store: Store) -> list[int | None]:
    return [store.watermark(tier) for tier in ROLLUP_TIERS]


def run_until_idle(scheduler: RollupScheduler, now_ns: int, runs: int = 20) -> None:
    for _ in range(runs):
        scheduler.run_once(now_ns)


def test_first_run_on_an_empty_store_starts_at_now(open_store):
    store = open_store()
    RollupScheduler(store, TIERS, grace_ns=30 * S).run_once(NOW + 5 * MIN)
    # 30 s of grace: the minute ending at NOW + 5m is not done; hours and 10 m line up below.
    assert watermarks(store) == [NOW + 4 * MIN, NOW, NOW]


def test_first_run_starts_at_the_oldest_data(store):
    scheduler = RollupScheduler(store, TIERS, grace_ns=0)
    backfill = Samples.from_points([(HOST_C, NOW - 7 * DAY + 5 * S, 42.0)])
    store.write(backfill)  # older than raw retention: still rolled up while raw holds it
    run_until_idle(scheduler, NOW)
    assert watermarks(store) == [NOW] * 3
    assert counts(store) == {tier: POINTS + 1 for tier in ROLLUP_TIERS}
    old = store.read_rollups("1h", [HOST_C], NOW - 8 * DAY, NOW - 6 * DAY)
    assert (old.sum.tolist(), old.count.tolist()) == ([42.0], [1.0])


def test_a_backlog_is_caught_up_one_chunk_per_run(open_store):
    store = open_store()
    scheduler = RollupScheduler(store, TIERS, grace_ns=0)
    scheduler.run_once(NOW - 2 * HOUR)
    assert watermarks(store) == [NOW - 2 * HOUR] * 3
    store.write(known_points(NOW - 2 * HOUR, NOW))
    assert scheduler.run_once(NOW) is False
    assert watermarks(store) == [NOW - HOUR] * 3
    assert counts(store) == {tier: POINTS / 2 for tier in ROLLUP_TIERS}
    assert scheduler.lag_ns(NOW) == dict.fromkeys(ROLLUP_TIERS, HOUR)
    assert scheduler.run_once(NOW) is True
    assert watermarks(store) == [NOW] * 3
    assert counts(store) == {tier: POINTS for tier in ROLLUP_TIERS}
    assert scheduler.lag_ns(NOW) == dict.fromkeys(ROLLUP_TIERS, 0)


def test_catch_up_runs_chunks_until_up_to_date(open_store):
    store = open_store()
    scheduler = RollupScheduler(store, TIERS, grace_ns=0)
    scheduler.run_once(NOW - 2 * HOUR)
    store.write(known_points(NOW - 2 * HOUR, NOW))
    scheduler.catch_up(NOW, budget_s=60.0)
    assert watermarks(store) == [NOW] * 3
    assert counts(store) == {tier: POINTS for tier in ROLLUP_TIERS}


def test_rows_hold_min_max_sum_count_last_per_bucket(store):
    run_until_idle(RollupScheduler(store, TIERS, grace_ns=0), NOW)
    rows = store.read_rollups("10m", [HOST_C], NOW - 10 * MIN, NOW)
    assert len(rows) == 1
    assert (rows.min[0], rows.max[0], rows.sum[0], rows.count[0], rows.last[0]) == (
        0.0,
        5.0,
        150.0,
        60.0,
        5.0,
    )


def test_a_restart_neither_loses_nor_double_counts(open_store):
    store = open_store()
    store.write(known_points(NOW - 2 * HOUR, NOW))
    run_until_idle(RollupScheduler(store, TIERS, grace_ns=0), NOW - 30 * MIN)
    before = counts(store)
    assert before == {"1m": POINTS * 3 / 4, "10m": POINTS * 3 / 4, "1h": POINTS / 2}
    store.close()

    reopened = open_store()
    assert watermarks(reopened) == [NOW - 30 * MIN, NOW - 30 * MIN, NOW - HOUR]
    scheduler = RollupScheduler(reopened, TIERS, grace_ns=0)
    scheduler.run_once(NOW - 30 * MIN)
    assert counts(reopened) == before
    run_until_idle(scheduler, NOW)
    assert counts(reopened) == {tier: POINTS for tier in ROLLUP_TIERS}


def test_new_data_is_rolled_up_once_the_grace_has_passed(store):
    scheduler = RollupScheduler(store, TIERS, grace_ns=20 * S)
    run_until_idle(scheduler, NOW + 20 * S)
    assert counts(store)["1m"] == POINTS
    fresh = known_points(NOW, NOW + MIN)
    store.write(fresh)  # on time: nothing is late
    scheduler.run_once(NOW + MIN + 10 * S)
    assert store.watermark("1m") == NOW
    scheduler.run_once(NOW + MIN + 20 * S)
    assert store.watermark("1m") == NOW + MIN
    assert counts(store) == {"1m": POINTS + 30, "10m": POINTS, "1h": POINTS}


def test_late_points_are_counted_once_per_tier(store):
    scheduler = RollupScheduler(store, TIERS, grace_ns=0)
    run_until_idle(scheduler, NOW)
    late = Samples.from_points(
        [
            (HOST_C, NOW - 50 * MIN + 5 * S, 100.0),
            (HOST_C, NOW - 90 * MIN + 5 * S, -1.0),
            (Series.of("cpu", {"host": "new"}), NOW - 5 * MIN, 4.0),
        ]
    )
    store.write(late)
    # Stored rows change at the next run (queries take the dirty buckets from raw meanwhile).
    assert counts(store) == {tier: POINTS for tier in ROLLUP_TIERS}
    assert [len(store.dirty(tier)) for tier in ROLLUP_TIERS] == [3, 3, 2]
    assert scheduler.run_once(NOW) is False  # one chunk of dirty buckets per run
    assert counts(store) == {tier: POINTS + 1 for tier in ROLLUP_TIERS}
    assert scheduler.run_once(NOW) is True
    assert counts(store) == {tier: POINTS + 3 for tier in ROLLUP_TIERS}
    assert [len(store.dirty(tier)) for tier in ROLLUP_TIERS] == [0, 0, 0]
    scheduler.run_once(NOW)
    assert counts(store) == {tier: POINTS + 3 for tier in ROLLUP_TIERS}
    new = store.read_rollups("1h", [Series.of("cpu", {"host": "new"})], NOW - HOUR, NOW)
    assert (new.count.tolist(), new.last.tolist()) == ([1.0], [4.0])


def test_points_written_before_the_first_run_are_not_late(store):
    scheduler = RollupScheduler(store, TIERS, grace_ns=0)
    extra = Samples.from_points([(HOST_C, NOW - 30 * MIN + 5 * S, 1.0)])
    store.write(extra)
    run_until_idle(scheduler, NOW)
    assert counts(store) == {tier: POINTS + 1 for tier in ROLLUP_TIERS}


def test_tiers_must_nest(open_store):
    store = open_store()
    odd = (TIERS[0], TIERS[1], TIERS[2], Tier("7m", 7 * MIN, HOUR))
    with pytest.raises(ValueError, match="multiple of the finer"):
        RollupScheduler(store, odd, grace_ns=0)
