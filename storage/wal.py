"""The write-ahead log: framed records in numbered segment files, appended with group commit.

A record is a 12-byte frame (magic, payload length, CRC32 of the payload) and a payload: a
20-byte body (kind, flags, rows, meta length, watermark), a JSON meta (tier, new series
definitions, and for rollup records the pass bound and the dirty buckets cleared; absent for raw
batches without new series) and the columns as raw little-endian bytes (ts int64,
the float64 value columns, sid uint32). With the `_HAS_SKETCHES` flag the tier's sketch rows
follow, written with the rest in one step: their count (uint32), ts, key, value and sid. One
record holds a whole batch, so encoding costs a few `tobytes()` and one CRC, never per-point
work. A record whose frame or CRC does not check is a
torn tail: everything before it was fsync'd and acknowledged, nothing after it was.

A power loss leaves the last segment's bytes after its last fsync in any state: cut anywhere,
zeros where the file grew but the data never landed, or stale bytes. Reading stops at the first
record that does not check, and recovery cuts the segment there (`cut_torn_tail`), durably, so a
second power loss finds the same clean end. Earlier segments were fsync'd whole before the next
one was created: damage there is corruption, never a torn tail.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from storage.columns import RAW_WIDTH, ROLLUP_WIDTH, SKETCH_WIDTH, Columns
from storage.errors import CorruptStoreError
from storage.files import fsync_dir
from storage.records import RAW, Series

_LOG = logging.getLogger(__name__)

_FRAME = struct.Struct("<4sII")
_BODY = struct.Struct("<BBxxIIq")
_COUNT = struct.Struct("<I")
_MAGIC = b"SBW1"
_KIND_RAW, _KIND_ROLLUP = 0, 1
_HAS_SKETCHES = 1
_NO_WATERMARK = -(2**63)
_SUFFIX = ".wal"


@dataclass(frozen=True, slots=True)
class Cleared:
    """Dirty buckets a rollup record rolled up again: those not made dirty after write `seq`."""

    seq: int
    bucket_ns: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Record:
    """One logged batch: rows of `tier` (and its sketch rows), the series first defined by it,
    the tier watermark; for a rollup tier also the bound of a pass begun (`claim_ns`) and the
    buckets it cleared."""

    tier: str
    rows: Columns
    new_series: tuple[tuple[int, Series], ...] = ()
    watermark_ns: int | None = None
    claim_ns: int | None = None
    cleared: Cleared | None = None
    sketches: Columns = field(default_factory=lambda: Columns.empty(SKETCH_WIDTH))


def encode(record: Record) -> bytes:
    """The framed bytes of `record`."""
    rows = record.rows
    meta = b""
    if record.tier != RAW or record.new_series:
        defs = [[sid, s.metric, s.tags] for sid, s in record.new_series]
        fields: dict[str, Any] = {"tier": record.tier, "series": defs}
        if record.claim_ns is not None:
            fields["claim"] = record.claim_ns
        if record.cleared is not None:
            fields["cleared"] = [record.cleared.seq, record.cleared.bucket_ns]
        meta = json.dumps(fields).encode()
    kind = _KIND_RAW if record.tier == RAW else _KIND_ROLLUP
    watermark = _NO_WATERMARK if record.watermark_ns is None else record.watermark_ns
    sketches = record.sketches
    flags = _HAS_SKETCHES if len(sketches) else 0
    parts = [_BODY.pack(kind, flags, len(rows), len(meta), watermark), meta, *_columns(rows)]
    if flags:
        parts += [_COUNT.pack(len(sketches)), *_columns(sketches)]
    crc = 0
    length = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
        length += len(part)
    return b"".join([_FRAME.pack(_MAGIC, length, crc), *parts])


def _columns(rows: Columns) -> list[bytes]:
    return [
        rows.ts.astype("<i8", copy=False).tobytes(),
        *(c.astype("<f8", copy=False).tobytes() for c in rows.cols),
        rows.sid.astype("<u4", copy=False).tobytes(),
    ]


def decode(payload: bytes) -> Record:
    """The record of a checked payload."""
    kind, flags, n, meta_len, watermark = _BODY.unpack_from(payload)
    offset = _BODY.size
    tier = RAW
    new_series: tuple[tuple[int, Series], ...] = ()
    claim_ns: int | None = None
    cleared: Cleared | None = None
    if meta_len:
        meta = json.loads(payload[offset : offset + meta_len])
        tier = meta["tier"]
        intern = sys.intern  # the names the series index shares, shared at once
        new_series = tuple(
            (sid, Series(intern(metric), tuple([(intern(k), v) for k, v in tags])))
            for sid, metric, tags in meta["series"]
        )
        claim_ns = meta.get("claim")
        if "cleared" in meta:
            seq, buckets = meta["cleared"]
            cleared = Cleared(seq, tuple(buckets))
        offset += meta_len
    width = RAW_WIDTH if kind == _KIND_RAW else ROLLUP_WIDTH

    rows, offset = _read_columns(payload, offset, n, width)
    sketches = Columns.empty(SKETCH_WIDTH)
    if flags & _HAS_SKETCHES:
        (m,) = _COUNT.unpack_from(payload, offset)
        sketches, offset = _read_columns(payload, offset + _COUNT.size, m, SKETCH_WIDTH)
    return Record(
        tier,
        rows,
        new_series,
        None if watermark == _NO_WATERMARK else watermark,
        claim_ns,
        cleared,
        sketches,
    )


def _read_columns(payload: bytes, offset: int, n: int, width: int) -> tuple[Columns, int]:
    """`n` rows of `width` value columns at `offset`, and the offset after them."""

    def column(dtype: str, itemsize: int) -> NDArray[Any]:
        nonlocal offset
        array = np.frombuffer(payload, dtype, n, offset).copy()
        offset += n * itemsize
        return array

    ts = column("<i8", 8).astype(np.int64, copy=False)
    cols = tuple(column("<f8", 8).astype(np.float64, copy=False) for _ in range(width))
    sid = column("<u4", 4).astype(np.uint32, copy=False)
    return Columns(sid, ts, cols), offset


def read_records(path: Path, offset: int = 0) -> Iterator[tuple[Record, int]]:
    """(record, offset after it) for each whole record of segment `path` from `offset`.

    Stops quietly at the first incomplete or damaged record: the caller compares the last
    offset with the file size to tell a clean end from a torn tail. A record whose CRC checks
    but which does not decode was written so, not torn: `CorruptStoreError`."""
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size  # a torn length must not make us read gigabytes
        f.seek(offset)
        while True:
            frame = f.read(_FRAME.size)
            if len(frame) < _FRAME.size:
                return
            magic, length, crc = _FRAME.unpack(frame)
            # A zero length is a frame whose length never landed (zeros): crc32(b"") is 0 too.
            if magic != _MAGIC or length < _BODY.size or offset + _FRAME.size + length > size:
                return
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return
            try:
                record = decode(payload)
            except (ValueError, KeyError, TypeError, struct.error) as error:
                raise CorruptStoreError(
                    f"{path}: the record at byte {offset} checks but cannot be decoded: {error}"
                ) from error
            offset += _FRAME.size + length
            yield record, offset


def cut_torn_tail(path: Path, end: int) -> None:
    """Drop the bytes of segment `path` from `end` on (a torn tail: never fsync'd, so never
    acknowledged), durably, and log what was dropped."""
    with path.open("r+b") as f:
        size = os.fstat(f.fileno()).st_size
        f.truncate(end)
        os.fsync(f.fileno())
    _LOG.warning(
        "discarding a torn WAL tail: %d bytes of %s from byte %d (written after the last "
        "fsync, never acknowledged)",
        size - end,
        path,
        end,
    )


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"{number:010d}{_SUFFIX}"


def segments(directory: Path) -> list[int]:
    """Numbers of the segments in `directory`, ascending."""
    return sorted(int(p.name[: -len(_SUFFIX)]) for p in directory.glob("*" + _SUFFIX))


class WalWriter:
    """Appends records to the current segment; concurrent callers share one write and fsync.

    `submit` queues a record (callers order their submissions under their own lock) and
    `wait` returns once it is durable. Whoever waits while no write is running becomes the
    leader: it writes every queued record as one append, fsyncs once and wakes the others.
    """

    def __init__(self, directory: Path, number: int) -> None:
        self._directory = directory
        self.number = number
        self._fd = self._open(number)
        self._cond = threading.Condition()
        self._queue: list[bytes] = []
        self._submitted = 0
        self._durable = 0
        self._busy = False
        self._error: Exception | None = None
        self.segment_bytes = 0
        self.fsyncs = 0

    def _open(self, number: int) -> int:
        fd = os.open(segment_path(self._directory, number), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        fsync_dir(self._directory)  # the new name itself must survive a crash
        return fd

    def submit(self, frame: bytes) -> int:
        """Queue `frame`; returns the ticket to `wait` on."""
        with self._cond:
            self._queue.append(frame)
            self._submitted += 1
            self.segment_bytes += len(frame)
            return self._submitted

    def wait(self, ticket: int) -> None:
        """Return once record `ticket` is written and fsync'd."""
        with self._cond:
            while self._durable < ticket:
                if self._error is not None:
                    raise self._error
                if self._busy:
                    self._cond.wait()
                else:
                    self._lead()

    def _lead(self) -> None:
        """Write the queue and fsync it with the lock released; called holding the lock."""
        self._busy = True
        batch, self._queue = self._queue, []
        upto = self._submitted
        self._cond.release()
        error: Exception | None = None
        try:
            _write_all(self._fd, b"".join(batch))
            os.fdatasync(self._fd)
        except Exception as exc:  # re-raised to every waiter below
            error = exc
        finally:
            self._cond.acquire()
        self._busy = False
        if error is None:
            self._durable = upto
            self.fsyncs += 1
        else:
            self._error = error  # later records would follow a gap: fail every writer
        self._cond.notify_all()

    def rotate(self) -> int:
        """Make everything queued durable, start the next segment; returns the sealed one.

        The caller holds the lock that orders submissions, so nothing is queued meanwhile."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            if self._queue:
                self._lead()
            if self._error is not None:
                raise self._error
            sealed = self.number
            os.close(self._fd)
            self.number += 1
            self._fd = self._open(self.number)
            self.segment_bytes = 0
            return sealed

    def close(self) -> None:
        with self._cond:
            while self._busy:
                self._cond.wait()
            if self._queue:
                self._lead()
            os.close(self._fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
