"""The audit log: every mutating call (who, when, what, from where), readable by admins.

A call refused because the control DB is away (503) is audited too: its entry, and those of
any call made while it is away, wait in memory (`AuditBacklog`, logged as they are kept) and are
written, oldest first, once the DB is back. Every entry carries a unique key, so one written
twice (its commit acknowledgement lost) is recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from annotations.control.auth import ANONYMOUS, INGEST_PATHS, PRINCIPAL, READ_METHODS
from annotations.control.db import ControlDB, Row
from annotations.control.errors import UnavailableError
from storage.tasks import background

log = logging.getLogger(__name__)

MAX_DETAIL = 2000
MAX_KEPT = 10_000
"""Entries kept while the DB is away; past this, new ones are only logged (and counted)."""
FLUSH_BATCH = 500
RETRY_S = 1.0
_COLUMNS = "id, ts_ns, who, role, method, path, status, remote, detail"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts_ns: int
    who: str
    role: str
    method: str
    path: str
    status: int
    remote: str
    detail: str
    key: str = ""
    """Unique per entry (empty for entries read back); an entry written again is ignored."""

    @classmethod
    def from_row(cls, row: Row) -> AuditEntry:
        return cls(
            int(row["id"]),
            int(row["ts_ns"]),
            row["who"],
            row["role"],
            row["method"],
            row["path"],
            int(row["status"]),
            row["remote"],
            row["detail"],
        )

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "ts_ns": self.ts_ns,
            "who": self.who,
            "role": self.role,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "remote": self.remote,
            "detail": self.detail,
        }


def record_audit(db: ControlDB, entry: AuditEntry) -> bool:
    """Write `entry`; False if an entry with its key was written before."""
    return bool(
        db.execute(
            "INSERT INTO audit (ts_ns, who, role, method, path, status, remote, detail, entry_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entry_key) DO NOTHING",
            (
                entry.ts_ns,
                entry.who,
                entry.role,
                entry.method,
                entry.path,
                entry.status,
                entry.remote,
                entry.detail[:MAX_DETAIL],
                entry.key or None,
            ),
        )
    )


def record_all(db: ControlDB, entries: list[AuditEntry]) -> None:
    """Write `entries` in one transaction, in order."""
    with db.transaction():
        for entry in entries:
            record_audit(db, entry)


def list_audit(db: ControlDB, start_ns: int, end_ns: int, limit: int) -> list[AuditEntry]:
    """Entries in [start_ns, end_ns], newest first."""
    rows = db.query(
        f"SELECT {_COLUMNS} FROM audit WHERE ts_ns >= ? AND ts_ns <= ?"
        " ORDER BY ts_ns DESC, id DESC LIMIT ?",
        (start_ns, end_ns, limit),
    )
    return [AuditEntry.from_row(row) for row in rows]


def _remote(request: web.Request) -> str:
    peer = request.remote or "?"
    # A forwarded-for header is the client's claim, kept beside the peer, never instead of it.
    forwarded = request.headers.get("X-Forwarded-For")
    return f"{peer} (forwarded for {forwarded[:200]})" if forwarded else peer


async def _detail(request: web.Request) -> str:
    if not request.can_read_body or (request.content_length or 0) > 1_000_000:
        return ""
    # read() caches the body, so the handler still sees it.
    body = await request.read()
    return body[:MAX_DETAIL].decode("utf-8", "replace")


class AuditBacklog:
    """Audit entries not yet written because the control DB was away, oldest first."""

    def __init__(self, limit: int = MAX_KEPT) -> None:
        self._entries: deque[AuditEntry] = deque()
        self._limit = limit
        self._writing = asyncio.Lock()
        self.kept = 0
        """Entries kept because the DB was away (or behind others that were)."""
        self.written = 0
        """Kept entries written since."""
        self.dropped = 0
        """Entries past the limit: in the log only."""

    def __len__(self) -> int:
        return len(self._entries)

    def keep(self, entry: AuditEntry) -> None:
        if len(self._entries) >= self._limit:
            self.dropped += 1
            log.error(
                "audit entry NOT kept (%d already wait): %s", len(self._entries), _line(entry)
            )
            return
        self._entries.append(entry)
        self.kept += 1
        log.warning("audit entry kept until the control DB is back: %s", _line(entry))

    async def record(self, db: ControlDB, entry: AuditEntry) -> None:
        """Write `entry` now, after the kept ones, or keep it if the DB is away."""
        if self._entries:
            self.keep(entry)
            await self.flush(db)
            return
        try:
            await db.run(record_audit, db, entry)
        except UnavailableError:
            self.keep(entry)

    async def flush(self, db: ControlDB) -> bool:
        """Write the kept entries, oldest first; False if the DB is still away."""
        async with self._writing:
            while self._entries:
                batch = [self._entries[i] for i in range(min(FLUSH_BATCH, len(self._entries)))]
                try:
                    await db.run(record_all, db, batch)
                except UnavailableError:
                    return False
                for _ in batch:
                    self._entries.popleft()
                self.written += len(batch)
                log.warning("wrote %d audit entries kept while the control DB was away", len(batch))
            return True

    @contextlib.asynccontextmanager
    async def writing(self, db: ControlDB, retry_s: float = RETRY_S) -> AsyncIterator[None]:
        """For the life of the block, write kept entries as soon as the DB is back, even with
        no calls; on the way out a last try, after which what is still kept is only in the
        log."""
        try:
            async with background(self._retry(db, retry_s)):
                yield
        finally:
            with contextlib.suppress(Exception):
                await self.flush(db)
            if self._entries:
                log.error(
                    "%d audit entries could not be written (the control DB is away); they"
                    " are in this log, each as 'audit entry kept'",
                    len(self._entries),
                )

    async def _retry(self, db: ControlDB, retry_s: float) -> None:
        while True:
            await asyncio.sleep(retry_s)
            if self._entries:
                try:
                    await self.flush(db)
                except Exception:
                    log.exception("writing the kept audit entries failed; retrying")


def _line(entry: AuditEntry) -> str:
    return (
        f"{entry.method} {entry.path} by {entry.who} ({entry.role}) from {entry.remote}"
        f" -> {entry.status} at {entry.ts_ns} key {entry.key} detail {entry.detail[:500]!r}"
    )


def audit_middleware(db: ControlDB, backlog: AuditBacklog) -> Middleware:
    """Middleware that records every call that is not a read and not metric ingest, whatever
    its outcome (refused calls too); entries wait in `backlog` while the DB is away."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in READ_METHODS or request.rel_url.path in INGEST_PATHS:
            return await handler(request)
        ts_ns = time.time_ns()
        detail = await _detail(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            principal = request.get(PRINCIPAL, ANONYMOUS)
            entry = AuditEntry(
                0,
                ts_ns,
                principal.name,
                principal.role,
                request.method,
                request.rel_url.path_qs[:1000],
                status,
                _remote(request),
                detail,
                uuid.uuid4().hex,
            )
            try:
                await backlog.record(db, entry)
            except Exception:
                log.exception("could not write the audit entry for %s %s", entry.method, entry.path)

    return middleware
