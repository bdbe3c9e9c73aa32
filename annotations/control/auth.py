"""Who is calling and may they: `Authorization` header -> role, checked against the route.

viewer reads everything under /api/v1 except tokens and audit; operator also changes things;
admin also manages tokens and reads the audit log. Ingest takes the ingest token (or an
operator's) when one is configured; `/healthz` and `/metrics` are open.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from annotations.control.db import ControlDB
from annotations.control.errors import ForbiddenError, UnauthorizedError
from annotations.control.tokens import lookup_token, role_rank

READ_METHODS = frozenset({"GET", "HEAD"})
OPEN_PATHS = frozenset({"/healthz", "/metrics"})
# InfluxDB's, Prometheus remote write's and OTLP's: the ingest token (or an operator's) writes.
INGEST_PATHS = frozenset({"/write", "/api/v2/write", "/api/v1/write", "/v1/metrics"})
ADMIN_PREFIXES = ("/api/v1/tokens", "/api/v1/audit")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a token's name and role, the ingest token, or anonymous."""

    name: str
    role: str


ANONYMOUS = Principal("anonymous", "anonymous")
INGEST = Principal("ingest", "ingest")
PRINCIPAL = web.RequestKey("principal", Principal)


def required_role(method: str, path: str) -> str:
    """The lowest role that may make this call (ingest paths are decided separately)."""
    if path.startswith(ADMIN_PREFIXES):
        return "admin"
    return "viewer" if method in READ_METHODS else "operator"


def credentials(request: web.Request) -> str | None:
    """The token of `Authorization: Bearer …` (or InfluxDB v2's `Token …`)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and token.strip():
        return token.strip()
    return None


def auth_middleware(db: ControlDB, *, anonymous_read: bool, ingest_token: str) -> Middleware:
    """Middleware that sets `request[PRINCIPAL]` or refuses with 401/403."""

    async def identify(token: str) -> Principal:
        info = await db.run(lookup_token, db, token)
        if info is None:
            raise UnauthorizedError("unknown or revoked token")
        return Principal(info.name, info.role)

    async def authorize(request: web.Request) -> None:
        path = request.rel_url.path
        token = credentials(request)
        if path in OPEN_PATHS or (path in INGEST_PATHS and not ingest_token):
            return
        if path in INGEST_PATHS:
            if token is None:
                raise UnauthorizedError("ingest needs the ingest token")
            if hmac.compare_digest(token.encode(), ingest_token.encode()):
                request[PRINCIPAL] = INGEST
                return
            need = "operator"
        else:
            need = required_role(request.method, path)
            if token is None:
                if anonymous_read and need == "viewer":
                    return
                raise UnauthorizedError("send Authorization: Bearer <token>")
        # Known before it is checked, so that a refused call is audited under its name.
        request[PRINCIPAL] = principal = await identify(token)
        if role_rank(principal.role) < role_rank(need):
            raise ForbiddenError(f"role {principal.role} may not {request.method} {path}")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[PRINCIPAL] = ANONYMOUS
        await authorize(request)
        return await handler(request)

    return middleware
