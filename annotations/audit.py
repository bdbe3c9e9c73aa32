"""The audit log: every mutating call (who, when, what, from where), readable by admins."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from annotations.auth import ANONYMOUS, INGEST_PATHS, PRINCIPAL, READ_METHODS
from annotations.db import ControlDB, Row

log = logging.getLogger(__name__)

MAX_DETAIL = 2000
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


def record_audit(db: ControlDB, entry: AuditEntry) -> int:
    return db.insert(
        "INSERT INTO audit (ts_ns, who, role, method, path, status, remote, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            entry.ts_ns,
            entry.who,
            entry.role,
            entry.method,
            entry.path,
            entry.status,
            entry.remote,
            entry.detail[:MAX_DETAIL],
        ),
    )


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


def audit_middleware(db: ControlDB) -> Middleware:
    """Middleware that records every call that is not a read and not metric ingest, whatever
    its outcome (refused calls too)."""

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
            )
            try:
                await db.run(record_audit, db, entry)
            except Exception:
                log.exception("could not write the audit entry for %s %s", entry.method, entry.path)

    return middleware
