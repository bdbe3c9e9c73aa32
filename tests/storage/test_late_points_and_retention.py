"""Late points and retention in the embedded store: dirty buckets marked with the write, durable,
cleared by the pass that rolls them up again, never lost to retention or to a pass under way;
series whose points all aged out are forgotten until they are written again."""

from __future__ import annotations

import json
import shutil

from storage.records import Rollups, Samples, Series
from tests.storage.test_embedded import rollups

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S
NOW = 1_699_999_200 * S
A = Series.of("cpu", {"host": "a"})


def point(ts_ns: int, value: float = 1.0) -> Samples:
    return Samples.from_points([(A, ts_ns, value)])


def marks(store) -> dict[str, list[int]]:
    return {tier: store.dirty(tier).bucket_ns.tolist() for tier in ("1m", "10m", "1h")}


def rolled_up_to(store, now_ns: int) -> None:
    for tier in ("1m", "10m", "1h"):
        store.write_rollups(tier, Rollups.empty(), now_ns)


def test_a_point_behind_a_watermark_marks_its_bucket_in_each_tier(open_store):
    store = open_store()
    rolled_up_to(store, NOW)
    store.write(point(NOW + 5 * S))  # after every watermark: not late
    assert marks(store) == {"1m": [], "10m": [], "1h": []}
    late = NOW - 50 * MIN + 5 * S
    store.write(point(late))
    assert marks(store) == {"1m": [NOW - 50 * MIN], "10m": [NOW - 50 * MIN], "1h": [NOW - HOUR]}


def test_marks_survive_a_restart_a_checkpoint_and_are_seen_by_a_reader(open_store, open_reader):
    store = open_store()
    rolled_up_to(store, NOW)
    store.write(point(NOW - 50 * MIN))
    reader = open_reader()
    assert marks(reader) == marks(store)
    store.checkpoint()
    store.write(point(NOW - 2 * HOUR))
    want = marks(store)
    assert want["1h"] == [NOW - 2 * HOUR, NOW - HOUR]
    reader.refresh()
    assert marks(reader) == want
    store.close()
    assert marks(open_store()) == want


def test_a_point_written_while_a_pass_reads_is_marked(open_store):
    store = open_store()
    rolled_up_to(store, NOW)
    store.begin_rollup("1m", NOW + 10 * MIN)  # a pass that will read up to NOW + 10m
    store.write(point(NOW + 5 * MIN))  # ahead of the watermark, but behind the pass
    assert store.dirty("1m").bucket_ns.tolist() == [NOW + 5 * MIN]
    assert store.dirty("10m").bucket_ns.tolist() == []
    store.close()
    assert open_store().dirty("1m").bucket_ns.tolist() == [NOW + 5 * MIN]  # the bound is logged


def test_a_pass_clears_only_marks_no_write_renewed_since_it_looked(open_store):
    store = open_store()
    rolled_up_to(store, NOW)
    store.write(point(NOW - 50 * MIN))
    store.write(point(NOW - 30 * MIN))
    seen = store.dirty("1m")
    store.write(point(NOW - 30 * MIN + S))  # renews one bucket after the pass looked
    store.write_rollups("1m", Rollups.empty(), NOW, seen)
    assert store.dirty("1m").bucket_ns.tolist() == [NOW - 30 * MIN]
    store.close()
    assert open_store().dirty("1m").bucket_ns.tolist() == [NOW - 30 * MIN]


def test_retention_keeps_the_raw_points_of_a_dirty_bucket(open_store):
    store = open_store()
    raw_days = 2 * 24 * HOUR
    rolled_up_to(store, NOW)
    old = NOW - raw_days + 90 * S  # in the raw retention: accepted, and late for every tier
    assert store.write(point(old, 7.0)).accepted == 1
    store.apply_retention(NOW + 10 * MIN)  # raw's floor would pass the point's buckets
    assert store.read([A], 0, NOW).values.tolist() == [7.0]  # kept until rolled up again
    store.write_rollups("1h", Rollups.empty(), NOW, store.dirty("1h"))
    store.write_rollups("10m", Rollups.empty(), NOW, store.dirty("10m"))
    store.write_rollups("1m", Rollups.empty(), NOW, store.dirty("1m"))
    store.apply_retention(NOW + 10 * MIN)
    assert store.read([A], 0, NOW).values.tolist() == []


def rows_of(store, tier: str) -> list[tuple[int, float, float, float, float, float]]:
    got = store.read_rollups(tier, [A], 0, 2**62)
    columns = (got.min, got.max, got.sum, got.count, got.last)
    return list(zip(got.bucket_ns.tolist(), *(c.tolist() for c in columns), strict=True))


def test_points_older_than_raw_keeps_go_to_the_finest_tier_that_keeps_them(open_store):
    store = open_store()
    rolled_up_to(store, NOW)
    store.write_rollups("1m", rollups([(A, NOW - 3 * DAY, 1.0, 4.0, 5.0, 2.0, 4.0)]), NOW)
    store.apply_retention(NOW)  # raw keeps 2 days, 1m 14 days, 1h 730 days
    old = NOW - 3 * DAY + 5 * S
    written = store.write(Samples.from_points([(A, old, 0.5), (A, old, 9.0), (A, old + S, 2.0)]))
    assert (written.accepted, written.too_old) == (3, 0)
    assert store.read([A], 0, NOW).points() == []  # older than raw keeps
    # Added to the bucket's row: a point written twice at one time counts once (the last).
    assert rows_of(store, "1m") == [(NOW - 3 * DAY, 1.0, 9.0, 16.0, 4.0, 4.0)]
    hour = NOW - 3 * DAY - (NOW - 3 * DAY) % HOUR
    assert store.dirty("1h").bucket_ns.tolist() == [hour]  # rolled up again from 1m
    assert store.dirty("1m").bucket_ns.tolist() == []
    store.close()
    reopened = open_store()
    assert rows_of(reopened, "1m") == [(NOW - 3 * DAY, 1.0, 9.0, 16.0, 4.0, 4.0)]
    assert reopened.dirty("1h").bucket_ns.tolist() == [hour]
    refused = reopened.write(point(NOW - 800 * DAY, 1.0))  # older than every tier keeps
    assert (refused.accepted, refused.too_old) == (0, 1)


DAY = 24 * HOUR
B = Series.of("mem", {"host": "b"})
C = Series.of("disk", {"host": "c"})


def test_a_series_whose_points_all_aged_out_is_forgotten_until_written_again(open_store):
    late = NOW + 800 * DAY  # A's point is older than every tier keeps (730 d at most)
    store = open_store(max_series=2)
    store.write(Samples.from_points([(A, NOW, 1.0), (B, late, 2.0)]))
    assert store.write(Samples.from_points([(C, late, 3.0)])).refused_series == 1
    store.apply_retention(late)
    assert (store.series(), store.metrics(), store.series_count()) == ([B], ["mem"], 1)
    assert store.write(Samples.from_points([(C, late, 3.0)])).accepted == 1  # A's place
    assert store.write(point(late, 4.0)).refused_series == 1  # A is new again: over the limit
    store.close()
    store = open_store(max_series=2)
    assert (store.series_count(), store.metrics()) == (2, ["disk", "mem"])
    store.apply_retention(late + 800 * DAY)  # every series is gone now
    assert (store.series(), store.metrics(), store.series_count()) == ([], [], 0)
    assert store.write(point(late + 800 * DAY, 5.0)).accepted == 1  # A comes back
    assert (store.series(), store.series_count()) == ([A], 1)
    store.checkpoint()
    store.close()
    reopened = open_store(max_series=2)
    assert (reopened.series(), reopened.series_count()) == ([A], 1)
    assert reopened.read([A], 0, 2**62).values.tolist() == [5.0]


def test_a_store_whose_rollup_rows_combined_is_upgraded_once(open_store, tmp_path):
    """Before rows replaced each other, a late point added a partial row that readers combined
    with the bucket's row: such a store (manifest version 1) is rewritten once, combined."""
    store = open_store()
    store.write_rollups("1m", rollups([(A, 60, 1.0, 5.0, 6.0, 2.0, 5.0)]), watermark_ns=120)
    store.checkpoint()  # the bucket's row in a block, its partial row in the WAL
    store.write_rollups("1m", rollups([(A, 60, 0.5, 3.0, 3.5, 2.0, 0.5)]), watermark_ns=180)
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "data", old)  # as a crash would leave it: the WAL not replayed
    manifest = json.loads((old / "MANIFEST.json").read_bytes())
    (old / "MANIFEST.json").write_text(json.dumps({**manifest, "version": 1}))
    upgraded = open_store(old)
    got = upgraded.read_rollups("1m", [A], 0, 600)
    columns = (got.min, got.max, got.sum, got.count, got.last)
    assert [c.tolist() for c in columns] == [[0.5], [5.0], [9.5], [4.0], [0.5]]
    assert json.loads((old / "MANIFEST.json").read_bytes())["version"] == 2
    upgraded.write_rollups("1m", rollups([(A, 60, 2.0, 2.0, 2.0, 1.0, 2.0)]), watermark_ns=240)
    assert upgraded.read_rollups("1m", [A], 0, 600).count.tolist() == [1.0]  # replaced now
    upgraded.close()
    assert open_store(old).read_rollups("1m", [A], 0, 600).sum.tolist() == [2.0]
