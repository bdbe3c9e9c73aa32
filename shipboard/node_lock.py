"""Node locks: among the nodes sharing one control DB, exactly one does a duty at a time (runs
the rollups, keeps the chat bot connected, evaluates the alert rules)."""

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
    "alerts": 0x5348_4950_414C_5254,  # "SHIPALRT"
    "verdicts": 0x5348_4950_5645_5244,  # "SHIPVERD"
    "rollouts": 0x5348_4950_524F_4C4C,  # "SHIPROLL"
}
"""The fixed key of each duty's PostgreSQL advisory lock."""

DUTIES = {
    "aggregator": "runs the rollups",
    "chat": "keeps the chat bot connected",
    "alerts": "evaluates the alert rules",
    "verdicts": "judges the deploys",
    "rollouts": "steps the guarded rollouts",
}


CONNECT_TIMEOUT_S = 2
"""For the lock's own connection (libpq's least): a try never blocks its thread for long."""


class NodeLock:
    """Held by at most one process at a time for `duty`. With PostgreSQL it is a session-level
    advisory lock on a connection kept open for it, released when the process or its connection
    dies; with SQLite (one machine) it is a file lock beside the control DB.

    While PostgreSQL is away nobody holds it (the server dropped the session, and with it the
    lock): `try_acquire` answers False, and takes the lock again on the first try once the
    server is back (unless another node was quicker). `try_acquire` blocks on the network:
    call it from a thread."""

    def __init__(self, duty: str, control_db: str, data_dir: Path) -> None:
        self.duty = duty
        self._key = ADVISORY_KEYS[duty]
        self._url = control_db if control_db.startswith(("postgresql://", "postgres://")) else ""
        self._path = data_dir / f"{duty}.lock"
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._file: IO[bytes] | None = None
        self._away = False  # the server could not be reached at the last try (logged once)

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
        if self._conn is not None:
            try:
                self._conn.execute("SELECT 1")  # the lock lives as long as this session
                return True
            except psycopg.Error as error:
                log.warning("%s lock lost: %s", self.duty, _first_line(error))
                self.release()
            # The session is gone; if the server is back already, take the lock again now.
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            except BaseException:
                conn.close()
                raise
        except psycopg.Error as error:
            if not self._away:
                log.warning(
                    "%s lock: control DB unreachable (%s); this node waits for it",
                    self.duty,
                    _first_line(error),
                )
            self._away = True
            return False
        if self._away:
            log.info("%s lock: control DB reachable again", self.duty)
            self._away = False
        if row != (True,):
            conn.close()  # another node holds it
            return False
        self._conn = conn
        log.info("this node now %s (PostgreSQL advisory lock taken)", DUTIES[self.duty])
        return True

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()  # ending the session releases its advisory locks
        if self._file is not None:
            handle, self._file = self._file, None
            handle.close()  # closing the descriptor releases the flock


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
