"""Sketches in a real embedded store: read back whole (the last written of a (series, ts)
wins) from the WAL, from blocks, after a restart, a power cut or a torn tail, by a follower;
older than raw keeps, added into the sketch of their bucket in the finest tier that keeps
them; late, rolled up again so the 1 h tier holds the merge of every raw sketch.

Values are whole milliseconds, so sums are exact and every row can be compared exactly."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from aggregator.scheduler import RollupScheduler
from storage.embedded import EmbeddedStore
from storage.embedded_view import StoreView
from storage.records import NS_PER_S, Rollups, Samples, Series, Sketches, Tier
from tests.storage import power_cuts, test_crash
from tests.storage.conftest import ReaderFactory, StoreFactory
from tests.storage.sketch_cases import SketchRow, merged_rows, rows_of, sketch_batch

S = NS_PER_S
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR
NOW = 1_699_999_200 * S  # a whole hour
A = Series.of("http.latency", {"host": "a"})
B = Series.of("http.latency", {"host": "b"})
EVERYTHING = (0, 2**62)
ROLLUP_TIERS = ("1m", "10m", "1h")


def read(
    store: StoreView, tier: str = "raw", series: list[Series] | None = None
) -> list[SketchRow]:
    """A tier's sketches as rows by (series, ts, key), checking the read came in that order
    (whole sketches, header first)."""
    got = store.read_sketches(tier, series, *EVERYTHING)
    order = np.lexsort((got.keys, got.ts_ns, got.index))
    assert (order == np.arange(len(order))).all(), "a read is sorted by (series, ts, key)"
    return canonical(rows_of(got))


def canonical(rows: list[SketchRow]) -> list[SketchRow]:
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


def batch_rows(batch: Sketches) -> list[SketchRow]:
    return canonical(rows_of(batch))


def write(store: EmbeddedStore, batch: Sketches, samples: Samples | None = None) -> None:
    store.write(samples or Samples.empty(), batch)


FIRST = sketch_batch(
    [(A, NOW + S, [12, 15, 15, 400]), (B, NOW + S, [3]), (A, NOW + 11 * S, [7, 8, 0, -1])]
)
AGAIN = sketch_batch([(A, NOW + S, [99])])  # replaces A's first sketch whole
SECOND = sketch_batch([(B, NOW + 21 * S, [1, 2, 3, 4, 5, 6, 7, 8, 1000])])
AFTER_AGAIN = batch_rows(
    sketch_batch(
        [
            (A, NOW + S, [99]),
            (B, NOW + S, [3]),
            (A, NOW + 11 * S, [7, 8, 0, -1]),
            (B, NOW + 21 * S, [1, 2, 3, 4, 5, 6, 7, 8, 1000]),
        ]
    )
)


def test_sketches_read_back_whole_from_the_wal_blocks_and_after_reopening(
    open_store: StoreFactory, tmp_path: Path
) -> None:
    store = open_store()
    write(store, FIRST, Samples.from_points([(A, NOW, 1.0)]))  # with points, in one record
    assert read(store) == batch_rows(FIRST)
    assert store.read(None, *EVERYTHING).points() == [(A, NOW, 1.0)]
    assert read(store, series=[B]) == batch_rows(FIRST.take(FIRST.index == 1))
    late_half = store.read_sketches("raw", [A], NOW + 5 * S, NOW + MIN)
    assert late_half.ts_ns.tolist() == [NOW + 11 * S] * len(late_half)
    store.checkpoint()
    assert os.listdir(tmp_path / "data" / "blocks" / "sketch.raw")  # written as a block
    assert read(store) == batch_rows(FIRST)
    write(store, AGAIN)  # in the head, over a sketch in a block
    write(store, SECOND)
    assert read(store) == AFTER_AGAIN
    store.close()
    reopened = open_store()  # the head was checkpointed by close
    assert read(reopened) == AFTER_AGAIN
    for tier in ROLLUP_TIERS:
        assert read(reopened, tier) == []


def test_sketches_come_back_from_the_wal_after_a_power_cut(tmp_path: Path) -> None:
    root, image = tmp_path / "data", tmp_path / "image"
    with power_cuts.open_store(root) as store:
        write(store, FIRST)
        store.checkpoint()
        write(store, AGAIN)
        write(store, SECOND)
        power_cuts.power_cut(root, image)  # never closed: the WAL holds the last two
    with power_cuts.open_store(image) as recovered:
        assert read(recovered) == AFTER_AGAIN
        write(recovered, sketch_batch([(B, NOW + 21 * S, [5])]))
        want = [r for r in AFTER_AGAIN if r[0] != str(B) or r[1] != NOW + 21 * S]
        want = canonical(want + batch_rows(sketch_batch([(B, NOW + 21 * S, [5])])))
        assert read(recovered) == want
    with power_cuts.open_store(image) as reopened:
        assert read(reopened) == want


@pytest.mark.parametrize("where", ["last byte", "sketch rows", "sketch count", "frame"])
def test_a_sketch_record_torn_by_a_power_cut_is_discarded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    """Cut in its sketch rows (the end of the record), in its count, or in its frame: the
    record is gone, everything before it is there, and the store writes on."""
    root = tmp_path / "data"
    with power_cuts.open_store(root) as store:
        write(store, FIRST)
        segment = power_cuts.last_segment(root)
        start = segment.stat().st_size
        write(store, SECOND)
        end = segment.stat().st_size
        power_cuts.power_cut(root, tmp_path / "image")
    sketch_part = 4 + 28 * len(SECOND)  # count, then ts, key, value, sid of each row
    cut = {
        "last byte": end - 1,
        "sketch rows": end - sketch_part // 2,
        "sketch count": end - sketch_part + 2,
        "frame": start + 7,
    }[where]
    case = tmp_path / "case"
    power_cuts.copy_for_case(tmp_path / "image", case)
    torn = power_cuts.last_segment(case)
    with torn.open("r+b") as f:
        f.truncate(cut)
    caplog.clear()
    with caplog.at_level(logging.WARNING, "storage"), power_cuts.open_store(case) as recovered:
        assert read(recovered) == batch_rows(FIRST)
        warned = power_cuts.storage_warnings(caplog)
        assert len(warned) == 1
        assert warned[0].startswith(power_cuts.torn_wal_tail(torn, cut - start, start))
        write(recovered, SECOND)
    with power_cuts.open_store(case) as reopened:
        assert read(reopened) == batch_rows(Sketches.concat([FIRST, SECOND]))


def test_a_follower_sees_sketches_from_the_wal_and_from_blocks(
    open_store: StoreFactory, open_reader: ReaderFactory
) -> None:
    store = open_store()
    reader = open_reader()
    write(store, FIRST)
    reader.refresh()
    assert read(reader) == batch_rows(FIRST)
    store.checkpoint()
    write(store, AGAIN)
    write(store, SECOND)
    reader.refresh()
    assert read(reader) == AFTER_AGAIN
    store.checkpoint()
    reader.refresh()
    assert read(reader) == AFTER_AGAIN


def test_retention_drops_old_sketches_with_their_blocks(open_store: StoreFactory) -> None:
    store = open_store()
    old = sketch_batch([(A, NOW - 3 * DAY, [1, 2])])
    write(store, old)
    write(store, FIRST)
    store.checkpoint()
    store.apply_retention(NOW)  # raw keeps 2 days
    assert read(store) == batch_rows(FIRST)


def rolled_up_to(store: EmbeddedStore, now_ns: int, sketches: Sketches | None = None) -> None:
    for tier in ROLLUP_TIERS:
        batch = sketches if tier == "1m" else None
        store.write_rollups(tier, Rollups.empty(), now_ns, sketches=batch)


def test_sketches_older_than_raw_keeps_are_added_to_their_finest_tier(
    open_store: StoreFactory, tiers: tuple[Tier, ...]
) -> None:
    store = open_store()
    minute = NOW - 3 * DAY  # older than raw's 2 days, within 1m's 14
    stored = sketch_batch([(A, minute, [10, 20])])
    rolled_up_to(store, NOW, stored)
    store.apply_retention(NOW)
    ten = NOW - 20 * DAY  # older than 1m keeps: 10m's
    written = store.write(
        Samples.empty(),
        sketch_batch(
            [
                (A, minute + 5 * S, [30, 40]),
                (A, minute + 5 * S, [35]),  # the same (series, ts) again: the last wins
                (A, minute + 10 * S, [1000]),
                (B, minute + 15 * S, [2]),
                (A, ten + 5 * S, [7]),
                (A, NOW - 800 * DAY, [1]),  # older than every tier keeps
            ]
        ),
    )
    assert written.accepted == 0  # no points
    want_1m = batch_rows(sketch_batch([(A, minute, [10, 20, 35, 1000]), (B, minute, [2])]))
    want_10m = batch_rows(sketch_batch([(A, ten - ten % (10 * MIN), [7])]))
    assert read(store) == []
    assert read(store, "1m") == want_1m
    assert read(store, "10m") == want_10m
    assert read(store, "1h") == []
    hour = minute - minute % HOUR
    assert store.dirty("10m").bucket_ns.tolist() == [minute - minute % (10 * MIN)]
    assert store.dirty("1h").bucket_ns.tolist() == [ten - ten % HOUR, hour]
    assert store.dirty("1m").bucket_ns.tolist() == []
    store.close()
    reopened = open_store()
    assert (read(reopened, "1m"), read(reopened, "10m")) == (want_1m, want_10m)
    assert reopened.dirty("1h").bucket_ns.tolist() == [ten - ten % HOUR, hour]
    # a second backfill adds into the bucket's sketch as it is now
    write(reopened, sketch_batch([(A, minute + 30 * S, [20])]))
    merged_a = [10, 20, 35, 1000, 20]
    want_1m = batch_rows(sketch_batch([(A, minute, merged_a), (B, minute, [2])]))
    assert read(reopened, "1m") == want_1m
    # and the coarser tiers roll their dirty buckets up again from it
    RollupScheduler(reopened, tiers, grace_ns=0).catch_up(NOW, 60.0)
    assert [len(reopened.dirty(t)) for t in ROLLUP_TIERS] == [0, 0, 0]
    assert read(reopened, "1m") == want_1m
    want_1h = [(A, ten - ten % HOUR, [7]), (A, hour, merged_a), (B, hour, [2])]
    assert read(reopened, "1h") == batch_rows(sketch_batch(want_1h))


def test_old_points_and_old_sketches_of_one_write_each_find_their_tier(
    open_store: StoreFactory,
) -> None:
    """Points for the 1m tier and sketches for the 10m tier in one write: the 10m tier's
    backfill has sketches and no rows."""
    store = open_store()
    rolled_up_to(store, NOW)
    store.apply_retention(NOW)
    minute, ten = NOW - 3 * DAY, NOW - 20 * DAY
    points = Samples.from_points([(A, minute + S, 4.0), (B, minute + 2 * S, 6.0)])
    written = store.write(points, sketch_batch([(A, ten + 2 * S, [9, 10])]))
    assert (written.accepted, written.too_old) == (2, 0)
    assert read(store, "1m") == []
    assert read(store, "10m") == batch_rows(sketch_batch([(A, ten - ten % (10 * MIN), [9, 10])]))
    assert store.read_rollups("1m", None, *EVERYTHING).sum.tolist() == [4.0, 6.0]
    assert len(store.read_rollups("10m", None, *EVERYTHING)) == 0


Entry = tuple[Series, int, list[float]]


def flushes(rng: np.random.Generator, start_ns: int, minutes: int) -> list[Entry]:
    """A's timers flushed twice a minute, B's once: heavy-tailed whole milliseconds."""
    entries = []
    for m in range(minutes):
        t = start_ns + m * MIN
        for series, offset in ((A, 10 * S), (A, 40 * S), (B, 25 * S)):
            values = np.round(rng.lognormal(3.5, 1.0, int(rng.integers(1, 30))))
            entries.append((series, t + offset, values.tolist()))
    return entries


def built_per_bucket(entries: list[Entry], width_ns: int) -> list[SketchRow]:
    """The sketch of every value of each (series, bucket), built directly from the values of
    the last entry written of each (series, ts)."""
    last = {(series, ts): values for series, ts, values in entries}
    buckets: dict[tuple[Series, int], list[float]] = {}
    for (series, ts), values in last.items():
        buckets.setdefault((series, ts - ts % width_ns), []).extend(values)
    return batch_rows(sketch_batch([(s, b, v) for (s, b), v in buckets.items()]))


def assert_tiers_hold(store: EmbeddedStore, entries: list[Entry]) -> None:
    raw = store.read_sketches("raw", None, *EVERYTHING)
    for tier, width in (("1m", MIN), ("10m", 10 * MIN), ("1h", HOUR)):
        assert read(store, tier) == built_per_bucket(entries, width), tier
        assert read(store, tier) == canonical(merged_rows(raw, width)), tier


def test_a_late_sketch_is_rolled_up_again_into_every_tier(
    open_store: StoreFactory, open_reader: ReaderFactory, tiers: tuple[Tier, ...]
) -> None:
    store = open_store()
    entries = flushes(np.random.default_rng(7), NOW - 2 * HOUR, 120)
    write(store, sketch_batch(entries))
    scheduler = RollupScheduler(store, tiers, grace_ns=0)
    scheduler.catch_up(NOW, 60.0)
    assert [store.watermark(t) for t in ROLLUP_TIERS] == [NOW] * 3
    assert_tiers_hold(store, entries)
    before = read(store, "1h")
    late: list[Entry] = [
        (A, NOW - 90 * MIN + 20 * S, [5000, 1]),  # a new flush behind every watermark
        (A, NOW - 30 * MIN + 10 * S, [2, 3]),  # replaces a flush rolled up already
        (B, NOW - 119 * MIN, [60_000]),
    ]
    write(store, sketch_batch(late))
    assert [len(store.dirty(t)) for t in ROLLUP_TIERS] == [3, 3, 2]
    assert read(store, "1h") == before  # the stored sketches change at the next pass
    scheduler.catch_up(NOW, 60.0)
    assert [len(store.dirty(t)) for t in ROLLUP_TIERS] == [0, 0, 0]
    assert_tiers_hold(store, entries + late)
    assert read(store, "1h") != before
    reader = open_reader()
    assert read(reader, "1h") == built_per_bucket(entries + late, HOUR)


def crash_batch(i: int) -> Sketches:
    """Write i of the crash test: one sketch at ts i of A or B, values known from i."""
    return sketch_batch([(A if i % 2 else B, NOW + i * S, [float(i % 97 + j) for j in range(12)])])


# Writes crash_batch(0), (1), ... and prints "ack i" once each write returned; checkpoints by
# size now and then, so the kill can land in any phase.
CRASH_WRITER = """
import sys
from pathlib import Path
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import Samples
from tests.storage.test_embedded_sketches import crash_batch

store = EmbeddedStore(Path(sys.argv[1]), Settings().tiers(), checkpoint_rows=3000)
store.__enter__()
i = 0
while True:
    store.write(Samples.empty(), crash_batch(i))
    print("ack", i, flush=True)
    i += 1
"""


@pytest.mark.slow
def test_acknowledged_sketches_survive_kill_9(
    tmp_path: Path, open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setattr(test_crash, "WRITER", CRASH_WRITER)  # its runner, this writer
    acked = test_crash.run_and_kill(data, 400)
    assert list(data.glob("blocks/sketch.raw/*"))  # some were checkpointed before the kill
    assert list(data.glob("wal/*.wal"))  # and the rest are in the WAL
    store = open_store(data)
    got = store.read_sketches("raw", None, *EVERYTHING)
    present = sorted({(t - NOW) // S for t in got.ts_ns.tolist()})
    # every acknowledged write, perhaps one more that was durable but not acknowledged, and
    # each sketch whole
    assert present[: len(acked)] == sorted(acked)
    assert len(present) <= len(acked) + 1
    assert read(store) == batch_rows(Sketches.concat([crash_batch(i) for i in present]))
