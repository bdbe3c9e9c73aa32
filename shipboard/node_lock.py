"""Node locks: among the nodes sharing one control DB, exactly one does a duty at a time (runs
the rollups, keeps the chat bot connected)."""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import IO

import psycopg

log = logging.getLogger("shipboard.lock")

ADVISORY_KEYS = {
    "aggregator": 0x5348_4950_424F_4152,  # "SHIPBOAR" in ASCII
    "chat": 0x5348_4950_4348_4154,  # "SHIPCHAT"
}
"""The fixed key of each duty's PostgreSQL advisory lock."""

DUTIES = {"aggregator": "runs the rollups", "chat": "keeps the chat bot connected"}


class NodeLock:
    """Held by at most one process at a time for `duty`. With PostgreSQL it is a session-level
    advisory lock on a connection kept open for it, released when the process or its connection
    dies; with SQLite (one machine) it is a file lock beside the control DB.

    `try_acquire` blocks on the network: call it from a thread."""

    def __init__(self, duty: str, control_db: str, data_dir: Path) -> None:
        self.duty = duty
        self._key = ADVISORY_KEYS[duty]
        self._url = control_db if control_db.startswith(("postgresql://", "postgres://")) else ""
        self._path = data_dir / f"{duty}.lock"
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        """True when this process holds the lock now (taking it if free); checks that a held
        PostgreSQL lock's session is still alive, and lets it go otherwise."""
        if self._url:
            return self._try_postgresql()
        if self._file is None:
            handle = self._path.open("ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._file = handle
        return True

    def _try_postgresql(self) -> bool:
        try:
            if self._conn is None:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
                if row.fetchone() != (True,):
                    self.release()
                    return False
                log.info("this node now %s (PostgreSQL advisory lock taken)", DUTIES[self.duty])
            else:
                self._conn.execute("SELECT 1")  # the lock lives as long as this session
            return True
        except psycopg.Error as error:
            log.warning("%s lock lost or unavailable: %s", self.duty, error)
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()  # ending the session releases its advisory locks
        if self._file is not None:
            handle, self._file = self._file, None
            handle.close()  # closing the descriptor releases the flock
