"""Where a tier's rollups end and finer data takes over, after Shipboard's aggregator ran part of
the way, and late points (embedded and InfluxDB, the stores it rolls up into)."""

from __future__ import annotations

from aggregator.scheduler import RollupScheduler
from storage.records import NS_PER_MS, Samples
from tests.aggregator.conftest import HOST_C, HOUR, MIN, NOW, TIERS, S
from tests.aggregator.test_query_engine import by_tags, minutes_ms, query, roll_up_everything


def test_the_tail_past_the_watermark_comes_from_finer_data(store):
    scheduler = RollupScheduler(store, TIERS, grace_ns=0)
    for _ in range(10):
        scheduler.run_once(NOW - 30 * MIN)
    assert [store.watermark(t) for t in ("1m", "10m", "1h")] == [
        NOW - 30 * MIN,
        NOW - 30 * MIN,
        NOW - HOUR,
    ]
    five = query(store, tags="host:c", **{"from": "-1h"}, step="5m", agg="count")
    assert by_tags(five)["host=c,service=db"] == [
        (t, 30.0) for t in minutes_ms(NOW - HOUR, 12, 5 * MIN)
    ]
    hourly = query(store, tags="host:c", **{"from": "-2h"}, step="1h", agg="count")
    assert hourly.tier == "1h"
    assert by_tags(hourly)["host=c,service=db"] == [
        (t, 360.0) for t in minutes_ms(NOW - 2 * HOUR, 2, HOUR)
    ]


def test_late_points_show_once_in_every_tier_with_the_true_last(store):
    scheduler = roll_up_everything(store)
    late = Samples.from_points([(HOST_C, NOW - 50 * MIN + 5 * S, 100.0)])
    store.write(late)
    late_ns = NOW - 50 * MIN + 5 * S
    for rolled_up_again in (False, True):  # answered at once, and the same after the next run
        if rolled_up_again:
            scheduler.run_once(NOW)
        for step, step_ns, count in (
            ("5m", 5 * MIN, 31.0),
            ("10m", 10 * MIN, 61.0),
            ("1h", HOUR, 361.0),
        ):
            bucket_ms = (late_ns - late_ns % step_ns) // NS_PER_MS
            got = {}
            for agg in ("count", "max", "last"):
                result = query(store, tags="host:c", **{"from": "-1h"}, step=step, agg=agg)
                got[agg] = dict(by_tags(result)["host=c,service=db"])[bucket_ms]
            assert got == {"count": count, "max": 100.0, "last": 5.0}, (step, rolled_up_again)
