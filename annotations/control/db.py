"""ControlDB: the control-plane database, SQLite in the data dir or PostgreSQL, one SQL dialect.

Every method is synchronous and may block; async code calls them through `ControlDB.run`
(`asyncio.to_thread`). SQL is written once with `?` placeholders and runs unchanged on both
backends (`annotations.control.connections`: an SQLite writer behind a lock and a reader per
thread, or a PostgreSQL pool that answers UnavailableError while the server is away and
reconnects when it is back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from annotations.control.connections import Connections, PostgresPool, SqliteConnections
from annotations.control.connections import Row as Row  # where the other modules import it from
from annotations.control.errors import ConflictError

P = ParamSpec("P")
R = TypeVar("R")

# Each migration is a list of statements; `{id}` becomes the dialect's auto-increment key.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE tokens (
            id {id},
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            created_ns BIGINT NOT NULL,
            revoked_ns BIGINT
        )""",
        """CREATE TABLE annotations (
            id {id},
            kind TEXT NOT NULL,
            start_ns BIGINT NOT NULL,
            end_ns BIGINT,
            tags TEXT NOT NULL,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            who TEXT NOT NULL,
            extra TEXT NOT NULL,
            idempotency_key TEXT UNIQUE
        )""",
        "CREATE INDEX annotations_start ON annotations (start_ns)",
        "CREATE INDEX annotations_kind_start ON annotations (kind, start_ns)",
        """CREATE TABLE audit (
            id {id},
            ts_ns BIGINT NOT NULL,
            who TEXT NOT NULL,
            role TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            status INTEGER NOT NULL,
            remote TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX audit_ts ON audit (ts_ns)",
        """CREATE TABLE flags (
            key TEXT PRIMARY KEY,
            doc TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated_at BIGINT NOT NULL
        )""",
    ),
    (
        # The announcement queue: one row per announcement and target, deleted once delivered.
        """CREATE TABLE announcements (
            id {id},
            target TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_ns BIGINT NOT NULL,
            next_ns BIGINT NOT NULL,
            tries INTEGER NOT NULL,
            last_error TEXT NOT NULL
        )""",
        "CREATE INDEX announcements_target ON announcements (target, id)",
    ),
    (
        # A key per audit entry, so that an entry written again (kept while the DB was away,
        # or resent after a lost commit acknowledgement) is recorded once.
        "ALTER TABLE audit ADD COLUMN entry_key TEXT",
        "CREATE UNIQUE INDEX audit_entry_key ON audit (entry_key)",
    ),
    (
        # Alerting (annotations.alerts): each alert's state, so that a restart neither re-pages
        # nor forgets; each rule's last evaluation; silences; Alertmanager-style groups.
        """CREATE TABLE alert_instances (
            fingerprint TEXT PRIMARY KEY,
            rule TEXT NOT NULL,
            labels TEXT NOT NULL,
            state TEXT NOT NULL,
            value DOUBLE PRECISION,
            active_ns BIGINT,
            fired_ns BIGINT,
            last_held_ns BIGINT,
            resolved_ns BIGINT,
            evaluated_ns BIGINT NOT NULL,
            error TEXT NOT NULL,
            annotation_id BIGINT,
            annotations TEXT NOT NULL
        )""",
        "CREATE INDEX alert_instances_rule ON alert_instances (rule)",
        """CREATE TABLE alert_rules (
            name TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            evaluated_ns BIGINT NOT NULL,
            duration_s DOUBLE PRECISION NOT NULL,
            error TEXT NOT NULL
        )""",
        """CREATE TABLE silences (
            id {id},
            matchers TEXT NOT NULL,
            starts_ns BIGINT NOT NULL,
            ends_ns BIGINT NOT NULL,
            comment TEXT NOT NULL,
            who TEXT NOT NULL,
            created_ns BIGINT NOT NULL
        )""",
        "CREATE INDEX silences_ends ON silences (ends_ns)",
        """CREATE TABLE alert_groups (
            target TEXT NOT NULL,
            group_key TEXT NOT NULL,
            fingerprints TEXT NOT NULL,
            next_ns BIGINT,
            last_sent_ns BIGINT,
            PRIMARY KEY (target, group_key)
        )""",
    ),
    (
        # Guarded rollouts (annotations.rollouts): where each flag environment's plan stands,
        # so that a restart or another node goes on from the same step.
        """CREATE TABLE rollouts (
            flag TEXT NOT NULL,
            environment TEXT NOT NULL,
            plan TEXT NOT NULL,
            status TEXT NOT NULL,
            step INTEGER NOT NULL,
            percentage DOUBLE PRECISION NOT NULL,
            step_started_ns BIGINT NOT NULL,
            next_ns BIGINT,
            holds INTEGER NOT NULL,
            reason TEXT NOT NULL,
            evaluation TEXT,
            updated_ns BIGINT NOT NULL,
            PRIMARY KEY (flag, environment)
        )""",
    ),
    (
        # Alert rules' knob actions (annotations.alerts.knob_actions): the knob an alert set and
        # what it was before, one per flag environment, so that a restart or another node
        # neither sets it twice nor forgets to set it back.
        """CREATE TABLE knob_actions (
            flag TEXT NOT NULL,
            environment TEXT NOT NULL,
            rule TEXT NOT NULL,
            set_value TEXT NOT NULL,
            previous TEXT,
            revert_after_ns BIGINT NOT NULL,
            started_ns BIGINT NOT NULL,
            resolved_ns BIGINT,
            PRIMARY KEY (flag, environment)
        )""",
    ),
)

_ID = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
}


class ControlDB:
    """The control-plane database, migrated to the latest schema on open."""

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self.dialect = connections.dialect

    @classmethod
    def open(cls, url: str, data_dir: Path) -> ControlDB:
        """`""` or `sqlite:///path` opens SQLite (default `data_dir/control.db`);
        `postgresql://…` opens PostgreSQL (UnavailableError when it cannot be reached)."""
        connections: Connections
        if url.startswith(("postgresql://", "postgres://")):
            connections = PostgresPool.open(url)
        else:
            path = Path(url.removeprefix("sqlite://")) if url else data_dir / "control.db"
            connections = SqliteConnections.open(path)
        db = cls(connections)
        try:
            db.migrate()
        except BaseException:
            db.close()
            raise
        return db

    @property
    def refused(self) -> int:
        """Calls refused with UnavailableError (PostgreSQL away) since the DB was opened."""
        return self._connections.refused

    def close(self) -> None:
        self._connections.close()

    async def run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call blocking `fn` off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def transaction(self) -> AbstractContextManager[None]:
        """Statements inside run atomically; nested uses join the outer transaction."""
        return self._connections.transaction()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return self._connections.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of a SELECT (or of `… RETURNING`) as dicts."""
        return self._connections.query(sql, params)

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an `INSERT … RETURNING id`; the new row's id."""
        row = self.query_one(sql, params)
        if row is None:
            raise ConflictError("insert returned no row")
        return int(row["id"])

    def migrate(self) -> None:
        """Apply the migrations this database has not seen yet, each in a transaction."""
        with self.transaction():
            if self.dialect == "postgresql":
                # Two servers starting at once on one database: the second waits here.
                self.execute("SELECT pg_advisory_xact_lock(7012026)")
            self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = self.schema_version()
            for number, statements in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                for statement in statements:
                    self.execute(statement.replace("{id}", _ID[self.dialect]))
                self.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))

    def schema_version(self) -> int:
        row = self.query_one("SELECT MAX(version) AS version FROM schema_version")
        return int(row["version"]) if row and row["version"] is not None else 0
