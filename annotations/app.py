"""The control plane as the composition root sees it: open the DB, add the routes of the control
plane, of the flags and of alerting, and the middlewares that cover every route."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from annotations.alerts.routes import RulesView, add_alert_routes, no_rules
from annotations.control.audit import AuditBacklog, audit_middleware
from annotations.control.auth import PRINCIPAL, auth_middleware
from annotations.control.db import ControlDB
from annotations.control.errors import ControlError, UnauthorizedError, UnavailableError
from annotations.control.outbox import Outbox
from annotations.control.routes import CONTROL_DB, OUTBOX, json_response, routes
from annotations.control.tokens import create_token, has_tokens
from annotations.flags.routes import flag_routes
from annotations.rollouts.routes import rollout_routes, rollout_state

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/api/v1/"
AUDIT_BACKLOG = web.AppKey("audit_backlog", AuditBacklog)
RETRY_AFTER_S = 1
"""What a 503 tells a client to wait: the control DB is reconnected to within seconds."""


class ControlPlane:
    """The control-plane state: its database, opened and migrated."""

    def __init__(self, db: ControlDB) -> None:
        self.db = db

    @classmethod
    def open(cls, url: str, data_dir: Path) -> ControlPlane:
        """`""` opens SQLite at `data_dir/control.db`; `postgresql://…` the shared server."""
        return cls(ControlDB.open(url, data_dir))

    def ensure_admin_token(self) -> str | None:
        """On a DB that never had a token: create an admin token and return it (once)."""
        with self.db.transaction():
            if has_tokens(self.db):
                return None
            _, token = create_token(self.db, "admin", "admin")
            return token

    def close(self) -> None:
        self.db.close()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Control errors anywhere, and any failure under /api/v1, as `{"error": ...}`."""
    try:
        return await handler(request)
    except ControlError as error:
        response = json_response({"error": str(error)}, status=error.status)
        if isinstance(error, UnauthorizedError):
            response.headers["WWW-Authenticate"] = 'Bearer realm="shipboard"'
        if isinstance(error, UnavailableError):
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    except web.HTTPException as error:
        already_json = error.content_type == "application/json"
        if (
            not request.rel_url.path.startswith(CONTROL_PREFIX)
            or error.status < 400
            or already_json
        ):
            raise
        return json_response({"error": error.reason}, status=error.status)
    except Exception:
        if not request.rel_url.path.startswith(CONTROL_PREFIX):
            raise
        log.exception("unexpected error in %s %s", request.method, request.rel_url.path)
        return json_response({"error": "internal error"}, status=500)


def setup_control(
    app: web.Application,
    control: ControlPlane,
    *,
    anonymous_read: bool,
    ingest_token: str,
    outbox: Outbox | None = None,
    rules_view: RulesView = no_rules,
) -> None:
    """Add the /api/v1 control routes, and the audit, error and auth middlewares that cover
    every route of `app` (the metric query and ingest routes too). The deploys, flag changes
    and notes recorded through them are announced through `outbox` (by default: nowhere);
    `/api/v1/rules` lists the rules of `rules_view` (the alert engine's; by default none)."""
    app[CONTROL_DB] = control.db
    app[OUTBOX] = Outbox() if outbox is None else outbox
    app[AUDIT_BACKLOG] = backlog = AuditBacklog()
    app.add_routes(routes)

    def who(request: web.Request) -> str:
        return str(request[PRINCIPAL].name)

    app.add_routes(flag_routes(CONTROL_DB, OUTBOX, who, rollout_state))
    app.add_routes(rollout_routes(CONTROL_DB, OUTBOX, who))
    add_alert_routes(app, rules_view)
    # Outermost first: audit sees the final status, refused calls included.
    app.middlewares.append(audit_middleware(control.db, backlog))
    add_auth(app, control, anonymous_read=anonymous_read, ingest_token=ingest_token)
    app.cleanup_ctx.append(_write_kept_audit)


async def _write_kept_audit(app: web.Application) -> AsyncIterator[None]:
    """Audit entries kept while the control DB was away are written once it is back."""
    async with app[AUDIT_BACKLOG].writing(app[CONTROL_DB]):
        yield


class ControlCollector(Collector):
    """The control DB's outages on /metrics: calls refused, audit entries kept for later."""

    def __init__(self, app: web.Application) -> None:
        self._db, self._backlog = app[CONTROL_DB], app[AUDIT_BACKLOG]

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        backlog = self._backlog
        yield CounterMetricFamily(
            "shipboard_control_db_refused",
            "Calls answered 503 because the control DB was away.",
            value=self._db.refused,
        )
        for name, value, what in (
            ("kept", backlog.kept, "kept in memory while the control DB was away"),
            ("written", backlog.written, "kept, then written once it was back"),
            ("dropped", backlog.dropped, "beyond what is kept: in the log only"),
        ):
            yield CounterMetricFamily(
                f"shipboard_audit_{name}", f"Audit entries {what}.", value=value
            )
        yield GaugeMetricFamily(
            "shipboard_audit_backlog",
            "Audit entries waiting for the control DB.",
            value=len(backlog),
        )


def add_auth(
    app: web.Application, control: ControlPlane, *, anonymous_read: bool, ingest_token: str
) -> None:
    """The error and auth middlewares, in that order: a refused call gets a JSON error."""
    app.middlewares.append(error_middleware)
    app.middlewares.append(
        auth_middleware(control.db, anonymous_read=anonymous_read, ingest_token=ingest_token)
    )
