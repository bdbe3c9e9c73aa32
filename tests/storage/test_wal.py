"""WAL records: exact round trips, and damaged bytes read as a clean stop, never an exception."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.columns import RAW_WIDTH, ROLLUP_WIDTH, Columns
from storage.records import RAW, Series
from storage.wal import Record, WalWriter, encode, read_records, segment_path

names = st.text(min_size=1, max_size=12)
series = st.builds(
    lambda m, tags: Series.of(m, tags), names, st.dictionaries(names, names, max_size=3)
)


@st.composite
def records(draw: st.DrawFn) -> Record:
    tier = draw(st.sampled_from([RAW, "1m"]))
    n = draw(st.integers(0, 40))
    width = RAW_WIDTH if tier == RAW else ROLLUP_WIDTH
    floats = st.floats(allow_nan=False, width=64)
    rows = Columns(
        np.asarray(draw(st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n)), np.uint32),
        np.asarray(
            draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)), np.int64
        ),
        tuple(
            np.asarray(draw(st.lists(floats, min_size=n, max_size=n)), np.float64)
            for _ in range(width)
        ),
    )
    new = tuple(enumerate(draw(st.lists(series, max_size=3, unique=True))))
    watermark = None if tier == RAW else draw(st.integers(0, 2**62))
    return Record(tier, rows, new, watermark)


def assert_same(got: Record, want: Record) -> None:
    assert (got.tier, got.new_series, got.watermark_ns) == (
        want.tier,
        want.new_series,
        want.watermark_ns,
    )
    assert np.array_equal(got.rows.sid, want.rows.sid)
    assert np.array_equal(got.rows.ts, want.rows.ts)
    assert all(np.array_equal(g, w) for g, w in zip(got.rows.cols, want.rows.cols, strict=True))


@pytest.mark.slow
@settings(max_examples=60)
@given(st.lists(records(), min_size=1, max_size=4))
def test_written_records_read_back_exactly(tmp_path_factory, batch: list[Record]) -> None:
    directory = tmp_path_factory.mktemp("wal")
    wal = WalWriter(directory, 1)
    wal.wait(max(wal.submit(encode(r)) for r in batch))
    wal.close()
    got = list(read_records(segment_path(directory, 1)))
    assert len(got) == len(batch)
    for (record, _), want in zip(got, batch, strict=True):
        assert_same(record, want)
    assert got[-1][1] == segment_path(directory, 1).stat().st_size


@pytest.mark.slow
@settings(max_examples=60)
@given(records(), st.data())
def test_a_torn_or_damaged_tail_stops_reading_after_the_good_records(
    tmp_path_factory, record: Record, data: st.DataObject
) -> None:
    good = encode(record)
    torn = encode(record)
    cut = data.draw(st.integers(0, len(torn) - 1))
    flip = data.draw(st.integers(0, len(torn) - 1))
    damaged = bytearray(torn)
    damaged[flip] ^= 0xFF
    for tail in (torn[:cut], bytes(damaged)):
        path = tmp_path_factory.mktemp("wal") / "1.wal"
        path.write_bytes(good + tail)
        got = list(read_records(path))
        assert len(got) == 1
        assert got[0][1] == len(good)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(tmp_path_factory, junk: bytes) -> None:
    path = tmp_path_factory.mktemp("wal") / "1.wal"
    path.write_bytes(junk)
    assert list(read_records(path)) == []


def test_rotation_seals_the_segment_and_starts_the_next(tmp_path: Path) -> None:
    wal = WalWriter(tmp_path, 7)
    rows = Columns(np.array([3], np.uint32), np.array([5], np.int64), (np.array([1.5]),))
    ticket = wal.submit(encode(Record(RAW, rows)))
    assert wal.rotate() == 7
    wal.wait(ticket)
    wal.wait(wal.submit(encode(Record(RAW, rows))))
    wal.close()
    assert [len(list(read_records(segment_path(tmp_path, n)))) for n in (7, 8)] == [1, 1]
