"""The power-loss tests' harness: known writes, what a store answers, cuts made on copies."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, RAW, Rollups, Samples, Series, Tier
from storage.wal import segment_path, segments

MINUTE_NS = 60 * NS_PER_S
TIERS = (Tier(RAW, 0, 10**6 * MINUTE_NS), Tier("1m", MINUTE_NS, 10**6 * MINUTE_NS))
EVERYTHING = (0, 2**62)
A, B, C, D, E = (Series.of("power", {"host": h}) for h in "abcde")

RollupRow = tuple[Series, int, float, float, float, float, float]


@dataclass(frozen=True)
class RawWrite:
    points: tuple[tuple[Series, int, float], ...]


@dataclass(frozen=True)
class RollupWrite:
    rows: tuple[RollupRow, ...]
    watermark_ns: int


Write = RawWrite | RollupWrite


LATER = 1000 * MINUTE_NS
"""Raw points come after every rollup watermark: none is a late point for a rollup tier."""


def rollup(series: Series, minute: int, value: float) -> RollupRow:
    return (series, minute * MINUTE_NS, value, value + 1, 2 * value + 1, 2.0, value + 1)


# The WAL case: checkpointed, then fsync'd into the WAL, then in flight when the power went.
CHECKPOINTED: tuple[Write, ...] = (RawWrite(((A, LATER + 1, 1.0), (B, LATER + 2, 2.0))),)
FSYNCED: tuple[Write, ...] = (
    RawWrite(((A, LATER + 3, 3.0), (C, LATER + 4, 4.0))),
    RollupWrite((rollup(C, 1, 4.0),), 2 * MINUTE_NS),
)
IN_FLIGHT: tuple[Write, ...] = (
    RawWrite(((D, LATER + 5, 5.0), (D, LATER + 6, 6.5))),  # defines a new series
    RollupWrite((rollup(B, 2, 2.0),), 3 * MINUTE_NS),
    RawWrite(((A, LATER + 7, 7.0),)),
)
AFTER_RECOVERY = RawWrite(((B, LATER + 100, 100.0), (E, LATER + 101, 101.0)))


@dataclass(frozen=True)
class Contents:
    """What a store answers: raw points, 1m rollups, series and the 1m watermark."""

    points: list[tuple[Series, int, float]]
    rollups: list[RollupRow]
    series: set[Series]
    watermark_ns: int | None


def by_key(
    row: tuple[Series, int, float] | RollupRow,
) -> tuple[str, tuple[tuple[str, str], ...], int]:
    return (row[0].metric, row[0].tags, row[1])


def expected(writes: Sequence[Write]) -> Contents:
    points = [p for w in writes if isinstance(w, RawWrite) for p in w.points]
    rows = [r for w in writes if isinstance(w, RollupWrite) for r in w.rows]
    marks = [w.watermark_ns for w in writes if isinstance(w, RollupWrite)]
    return Contents(
        sorted(points, key=by_key),
        sorted(rows, key=by_key),
        {p[0] for p in points} | {r[0] for r in rows},
        marks[-1] if marks else None,
    )


def contents(store: EmbeddedStore) -> Contents:
    raw = store.read(None, *EVERYTHING)
    got = store.read_rollups("1m", None, *EVERYTHING)
    rows = [
        (got.series[i], b, mn, mx, s, n, last)
        for i, b, mn, mx, s, n, last in zip(
            got.index.tolist(),
            got.bucket_ns.tolist(),
            got.min.tolist(),
            got.max.tolist(),
            got.sum.tolist(),
            got.count.tolist(),
            got.last.tolist(),
            strict=True,
        )
    ]
    return Contents(
        sorted(raw.points(), key=by_key),
        sorted(rows, key=by_key),
        set(store.series()),
        store.watermark("1m"),
    )


def open_store(root: Path) -> EmbeddedStore:
    """A store that checkpoints only when told to (and on close)."""
    return EmbeddedStore(root, TIERS, checkpoint_rows=10**9, checkpoint_interval_s=1e9)


def apply(store: EmbeddedStore, write: Write) -> None:
    if isinstance(write, RawWrite):
        store.write(Samples.from_points(write.points))
        return
    series = tuple(dict.fromkeys(r[0] for r in write.rows))
    index = np.array([series.index(r[0]) for r in write.rows], np.int32)
    buckets = np.array([r[1] for r in write.rows], np.int64)
    cols = [np.array([r[i] for r in write.rows], np.float64) for i in range(2, 7)]
    store.write_rollups("1m", Rollups(series, index, buckets, *cols), write.watermark_ns)


def power_cut(root: Path, image: Path) -> None:
    """The data dir as a power cut finds it while the store runs: what was written so far."""
    shutil.copytree(root, image, copy_function=shutil.copyfile)


def copy_for_case(image: Path, case: Path) -> None:
    """A fresh copy of `image` at `case` (left over from a failed example, the old one goes)."""
    for stale in (case, case.with_name(case.name + "-again")):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.copytree(image, case, copy_function=shutil.copyfile)


def last_segment(root: Path) -> Path:
    return segment_path(root / "wal", segments(root / "wal")[-1])


def storage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the storage layer logged at WARNING or above."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("storage") and r.levelno >= logging.WARNING
    ]


def intact_prefix(written: bytes, left: bytes) -> int:
    """How many leading bytes of `written` are unchanged in `left`."""
    for i, (a, b) in enumerate(zip(written, left, strict=False)):
        if a != b:
            return i
    return min(len(written), len(left))


def whole_records(ends: Sequence[int], intact: int) -> int:
    """How many of the records ending at `ends` (bytes from their start) lie in the first
    `intact` bytes."""
    return sum(1 for end in ends if end <= intact)


def torn_wal_tail(path: Path, dropped: int, at: int) -> str:
    return f"discarding a torn WAL tail: {dropped} bytes of {path} from byte {at} "


def assert_recovers(
    root: Path,
    want: Sequence[Write],
    logged: Sequence[str],
    caplog: pytest.LogCaptureFixture,
    *,
    check: Callable[[], None] = lambda: None,
    again: bool = True,
) -> None:
    """Open `root`: exactly `want` comes back, each of `logged` starts one warning and nothing
    else warns, `check` holds; then, if `again`, a write, another power cut, and that write
    comes back too. Removes the data dirs afterwards."""
    caplog.clear()
    second = root.with_name(root.name + "-again")
    with caplog.at_level(logging.WARNING, "storage"):
        store = open_store(root)
        try:
            assert contents(store) == expected(want)
            got = storage_warnings(caplog)
            assert len(got) == len(logged), got
            for prefix in logged:
                assert len([g for g in got if g.startswith(prefix)]) == 1, (prefix, got)
            check()
            caplog.clear()
            if again:
                apply(store, AFTER_RECOVERY)
                power_cut(root, second)
        finally:
            store.close()
        shutil.rmtree(root)
        if again:
            with open_store(second) as reopened:
                assert contents(reopened) == expected([*want, AFTER_RECOVERY])
            shutil.rmtree(second)
        assert storage_warnings(caplog) == []
