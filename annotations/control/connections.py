"""How ControlDB reaches its database: SQLite connections, or a PostgreSQL pool that outlives
the server going away.

Both run SQL written with `?` placeholders and turn a broken unique key into ConflictError.
SQLite has one writer connection behind a lock (writes from any thread are serialised) and a
read connection per thread, so reads never wait for a write (as datasette's database.py).

PostgreSQL is a psycopg_pool pool. Each call takes a connection and, unless it worked less than
CHECK_IDLE_S ago, checks it with a round trip, so a connection the server dropped while idle is
never used; a transaction keeps its connection for the thread that runs it, and nested uses
join it. When the server goes away, every call fails with
UnavailableError (503) instead of hanging: the first within CONNECT_WAIT_S, the next ones at
once, while the pool's own threads reconnect (about once a second while calls keep coming).
The first call that gets a working connection again ends the outage; both ends are logged,
with the number of calls refused meanwhile.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from annotations.control.errors import ConflictError, UnavailableError

log = logging.getLogger(__name__)

Row = dict[str, Any]

CONNECT_WAIT_S = 0.5
"""The longest a call waits for a connection while the server is up (all of them busy)."""
DOWN_WAIT_S = 0.002
"""The same while the server is known to be away: answer at once, the pool reconnects."""
RECONNECT_GIVE_UP_S = 2.0
"""A lost connection is retried about 1 s apart for this long, then the pool gives it up and
the next call starts a fresh attempt at once: a server that is back is reconnected to within
about a second of the next call."""
CHECK_IDLE_S = 0.5
"""A connection that worked this recently is used unchecked (HikariCP's alive-bypass window):
the check's round trip would double the cost of a busy node's short statements."""
POOL_SIZE = 4
CONNECT_TIMEOUT_S = 5
"""For each connection attempt (libpq counts whole seconds, at least 2)."""


class Connections(Protocol):
    """What ControlDB runs its SQL on."""

    @property
    def dialect(self) -> str: ...

    @property
    def refused(self) -> int:
        """Calls refused with UnavailableError so far."""

    def transaction(self) -> AbstractContextManager[None]:
        """The statements inside run atomically; nested uses join the outer transaction."""

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        """Run one statement; the number of rows it changed."""

    def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """Rows of a SELECT (or of `… RETURNING`) as dicts."""

    def close(self) -> None: ...


class SqliteConnections:
    """One SQLite writer connection behind a lock, and a read connection per reading thread.

    In WAL mode a reader sees the last commit while a write transaction is open, so reads take
    no lock: a SELECT outside this thread's transaction runs on the thread's own connection.
    Statements inside a transaction, and every other statement, run on the writer."""

    dialect = "sqlite"
    refused = 0

    def __init__(self, path: Path, writer: sqlite3.Connection) -> None:
        self._path = path
        self._writer = writer
        self._write_lock = threading.RLock()
        # This thread's `.reader` connection, and `.in_transaction` while it holds the writer's.
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> SqliteConnections:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = _connect(path)
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA synchronous=FULL")
        return cls(path, writer)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction():
            yield
            return
        with self._write_lock:
            self._local.in_transaction = True
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
                self._writer.execute("COMMIT")
            finally:
                self._local.in_transaction = False

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        with self._write_lock:
            return _cursor(self._writer, sql, params).rowcount

    def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        if _is_read(sql) and not self._in_transaction():
            return _rows(_cursor(self._reader(), sql, params))
        with self._write_lock:  # `… RETURNING`, or a read that must see this transaction
            return _rows(_cursor(self._writer, sql, params))

    def close(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        with self._write_lock:
            self._writer.close()

    def _in_transaction(self) -> bool:
        return bool(getattr(self._local, "in_transaction", False))

    def _reader(self) -> sqlite3.Connection:
        reader: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = _connect(self._path)
            reader.execute("PRAGMA query_only=ON")  # a misrouted write fails, never lands
            with self._readers_lock:
                self._readers.append(reader)
            self._local.reader = reader
        return reader


def _connect(path: Path) -> sqlite3.Connection:
    # check_same_thread off: close() runs on whichever thread closes the DB.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


def _cursor(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
    try:
        return conn.execute(sql, tuple(params))
    except sqlite3.IntegrityError as error:
        raise ConflictError(str(error)) from error


def _rows(cursor: sqlite3.Cursor) -> list[Row]:
    return [dict(row) for row in cursor.fetchall()]


@dataclass
class _Outage:
    since: float
    reason: str
    refused: int = 0


PgConnection = psycopg.Connection[DictRow]


class PostgresPool:
    """A few PostgreSQL connections, reconnected in the background when the server goes away;
    meanwhile every call fails fast with UnavailableError."""

    dialect = "postgresql"

    def __init__(self, pool: ConnectionPool[PgConnection]) -> None:
        self._pool = pool
        self._local = threading.local()  # `.conn`: the connection of this thread's transaction
        self._state = threading.Lock()
        self._outage: _Outage | None = None
        self._worked_at: weakref.WeakKeyDictionary[PgConnection, float] = (
            weakref.WeakKeyDictionary()
        )
        self.refused = 0

    @classmethod
    def open(cls, url: str) -> PostgresPool:
        """Connect once first, so that a wrong URL, password or database fails at startup
        with its reason; then open the pool."""
        try:
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.OperationalError as error:
            raise UnavailableError(f"control database unavailable: {_first_line(error)}") from None
        pool = ConnectionPool(
            url,
            connection_class=PgConnection,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT_S,
            },
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            timeout=CONNECT_WAIT_S,
            reconnect_timeout=RECONNECT_GIVE_UP_S,
            num_workers=2,
            name="control-db",
        )
        pool.open(wait=True, timeout=30.0)
        return cls(pool)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        conn = self._checked_out()
        self._local.conn = conn
        try:
            with self._mapped(), conn.transaction():
                yield
            self._worked(conn)
        finally:
            self._local.conn = None
            self._pool.putconn(conn)  # a broken one is dropped and replaced by the pool

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        with self._connection() as conn, self._mapped():
            return conn.execute(_placeholders(sql), tuple(params)).rowcount

    def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self._connection() as conn, self._mapped():
            return [dict(row) for row in conn.execute(_placeholders(sql), tuple(params))]

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _connection(self) -> Iterator[PgConnection]:
        """This thread's transaction's connection, or one of the pool's for one statement."""
        pinned: PgConnection | None = getattr(self._local, "conn", None)
        if pinned is not None:
            yield pinned
            return
        conn = self._checked_out()
        try:
            yield conn
            self._worked(conn)
        finally:
            self._pool.putconn(conn)

    def _checked_out(self) -> PgConnection:
        """A connection that answered a round trip just now, or UnavailableError."""
        outage = self._outage
        wait_s = CONNECT_WAIT_S if outage is None else DOWN_WAIT_S
        deadline = time.monotonic() + wait_s
        lost: Exception | None = None
        for _ in range(2):
            try:
                conn = self._pool.getconn(max(deadline - time.monotonic(), 0.001))
            except PoolTimeout as timeout:
                if outage is not None:
                    reason = outage.reason
                elif lost is not None:
                    reason = "connection lost"
                else:
                    reason = f"no connection within {wait_s:g} s"
                raise self._unavailable(reason, lost or timeout) from None
            with self._state:
                worked_at = self._worked_at.get(conn)
            fresh = worked_at is not None and time.monotonic() - worked_at < CHECK_IDLE_S
            try:
                if not fresh:
                    self._pool.check_connection(conn)
            except psycopg.Error as error:
                self._pool.putconn(conn)
                lost = error
                # The server dropped this one: it dropped the idle others too if it restarted.
                # Replace them now, then try once more (a server that is back answers in time).
                self._pool.check()
                continue
            self._reached()
            return conn
        raise self._unavailable("connection lost", lost or RuntimeError()) from None

    def _worked(self, conn: PgConnection) -> None:
        with self._state:
            self._worked_at[conn] = time.monotonic()

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """psycopg's errors as ours: a unique key is a conflict, a lost server unavailability."""
        try:
            yield
        except psycopg.errors.IntegrityError as error:
            raise ConflictError(_first_line(error)) from error
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise self._unavailable(_reason(error), error) from error

    def _unavailable(self, reason: str, error: Exception) -> UnavailableError:
        with self._state:
            self.refused += 1
            if self._outage is None:
                self._outage = _Outage(time.monotonic(), reason)
                log.warning(
                    "control database unavailable (%s): calls answer 503 until it is back;"
                    " reconnecting with backoff",
                    _first_line(error),
                )
            self._outage.refused += 1
        return UnavailableError(f"control database unavailable: {reason}, retrying")

    def _reached(self) -> None:
        if self._outage is None:
            return
        with self._state:
            outage, self._outage = self._outage, None
        if outage is not None:
            log.warning(
                "control database reachable again after %.1f s; %d calls were refused meanwhile",
                time.monotonic() - outage.since,
                outage.refused,
            )


def _placeholders(sql: str) -> str:
    """psycopg takes %s; our SQL never holds a literal `%` or `?` outside placeholders."""
    return sql.replace("?", "%s")


def _reason(error: psycopg.Error) -> str:
    """What the client is told: the SQLSTATE's name in words (`admin shutdown`), or that the
    connection was lost (the details, host and port included, go to the log only)."""
    if not error.sqlstate:
        return "connection lost"
    return re.sub(r"(?<!^)(?=[A-Z])", " ", type(error).__name__).lower()


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
