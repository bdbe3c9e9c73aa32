"""A bounded on-disk spool: writes held durably while the metric server is away, drained in order.

Each record is one file `<seq>.rec` (20-digit sequence number, so names sort in order): a header
(magic, payload length, CRC-32) and the payload. A record is written to a temporary name,
fsync'd, renamed and the directory fsync'd, so after a crash a record is either whole or absent;
it is removed only after the server acknowledged it. Records are taken oldest first, one at a
time, so the server sees writes in the order they were acknowledged to clients.

After a power loss, a `.tmp` file is an append that never returned (never acknowledged): opening
the spool removes it and logs it. A `.rec` that does not check (which the protocol above cannot
leave, but a disk can) is moved aside to `<seq>.damaged` and logged, and draining goes on with the
next record instead of stopping for good.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import BinaryIO

from storage.errors import SpoolFullError
from storage.files import fsync_dir, mkdir_durable, replace_file

_MAGIC = b"SBSP"
_HEADER = struct.Struct("<4sII")  # magic, payload length, crc32
_SUFFIX = ".rec"
_DAMAGED = ".damaged"

_LOG = logging.getLogger(__name__)


class Spool:
    """Records appended durably and taken back oldest first; at most `max_bytes` on disk."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self._dir = Path(path)
        mkdir_durable(self._dir)
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        for stray in sorted(self._dir.glob("*.tmp")):
            _LOG.warning(
                "removing %s (%d bytes): a spool append that did not finish, never acknowledged",
                stray,
                stray.stat().st_size,
            )
            stray.unlink()
        self._sizes: dict[int, int] = {}
        for entry in sorted(self._dir.glob("*" + _SUFFIX)):
            self._sizes[int(entry.stem)] = entry.stat().st_size
        self._bytes = sum(self._sizes.values())
        set_aside = [int(entry.stem) for entry in self._dir.glob("*" + _DAMAGED)]
        self._next = max([*self._sizes, *set_aside], default=0) + 1  # never over a damaged one

    @property
    def depth(self) -> int:
        """Records waiting."""
        return len(self._sizes)

    @property
    def size_bytes(self) -> int:
        """Bytes on disk, headers included."""
        return self._bytes

    def append(self, payload: bytes) -> int:
        """Store `payload` durably and return its sequence number; `SpoolFullError` if it would
        take the spool past `max_bytes`."""
        size = _HEADER.size + len(payload)
        with self._lock:
            if self._bytes + size > self._max_bytes:
                raise SpoolFullError(
                    f"the spool in {self._dir} holds {self._bytes} bytes of writes not yet "
                    f"delivered and may hold {self._max_bytes} (--spool-max-bytes)"
                )
            seq = self._next
            self._next += 1
            self._bytes += size  # reserved now so concurrent appends cannot overshoot
        try:
            path = self._path(seq)
            header = _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload))

            def write(file: BinaryIO) -> None:
                file.write(header)
                file.write(payload)  # not joined to the header: a body may be megabytes

            replace_file(path, write, temporary=path.with_suffix(".tmp"))
        except BaseException:
            with self._lock:
                self._bytes -= size
            raise
        with self._lock:
            self._sizes[seq] = size
        return seq

    def oldest(self) -> tuple[int, bytes] | None:
        """The oldest whole record (sequence number and payload), or None when the spool is
        empty; a damaged record on the way is moved aside and logged."""
        while True:
            with self._lock:
                if not self._sizes:
                    return None
                seq = min(self._sizes)
            path = self._path(seq)
            data = path.read_bytes()
            if len(data) >= _HEADER.size:
                magic, length, crc = _HEADER.unpack_from(data)
                payload = data[_HEADER.size :]
                if magic == _MAGIC and length == len(payload) and zlib.crc32(payload) == crc:
                    return seq, payload
            self._set_aside(seq, len(data))

    def _set_aside(self, seq: int, size: int) -> None:
        """Move damaged record `seq` out of the queue, keeping its bytes for inspection."""
        path = self._path(seq)
        damaged = path.with_suffix(_DAMAGED)
        _LOG.error(
            "spool record %s (%d bytes) is damaged and cannot be delivered: moved to %s",
            path,
            size,
            damaged,
        )
        os.replace(path, damaged)
        fsync_dir(self._dir)
        with self._lock:
            self._bytes -= self._sizes.pop(seq)

    def remove(self, seq: int) -> None:
        """Drop record `seq`, once the server acknowledged it."""
        self._path(seq).unlink()
        fsync_dir(self._dir)
        with self._lock:
            self._bytes -= self._sizes.pop(seq)

    def _path(self, seq: int) -> Path:
        return self._dir / f"{seq:020d}{_SUFFIX}"
