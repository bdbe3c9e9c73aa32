"""HTTP routes of the feature flags: CRUD with merge patch, evaluate, and the SDK snapshot.

Roles are enforced by the application's middleware by method: GET is a read (viewer), POST,
PATCH and DELETE are changes (operator). A body is a flag document (or a merge patch of one),
validated by `model.FlagDoc`. Errors are raised as `annotations.control.errors` types and turned
into `{"error": ...}` by that middleware too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from annotations.control.bodies import read_json
from annotations.control.db import ControlDB
from annotations.control.errors import BadRequestError
from annotations.control.outbox import Outbox
from annotations.control.routes import json_response
from annotations.flags.bucketing import evaluate
from annotations.flags.store import (
    StoredFlag,
    create_flag,
    delete_flag,
    get_flag,
    list_flags,
    patch_flag,
    snapshot,
)

Who = Callable[[web.Request], str]
Extras = Callable[[ControlDB, StoredFlag], Mapping[str, Any]]
"""Read-only fields a flag's GET adds beside its document (the rollouts' `rollout_state`)."""

PREFIX = "/api/v1"
READ_ONLY = frozenset({"rollout_state"})
_JSON = "application/json"


def flag_routes(
    db_key: web.AppKey[ControlDB],
    outbox_key: web.AppKey[Outbox],
    who: Who,
    extras: Extras | None = None,
) -> list[web.RouteDef]:
    """The routes, for `app.add_routes`; `who(request)` names the caller for the annotations,
    which are announced through the app's `outbox_key`; a flag's GET adds `extras` to its
    document, and a document written back with them has them dropped."""

    def writable(body: object) -> object:
        if isinstance(body, dict) and extras is not None:
            return {k: v for k, v in body.items() if k not in READ_ONLY}
        return body

    def db_of(request: web.Request) -> ControlDB:
        return request.config_dict[db_key]

    def outbox_of(request: web.Request) -> Outbox:
        return request.config_dict[outbox_key]

    async def list_all(request: web.Request) -> web.Response:
        db = db_of(request)
        flags = await db.run(list_flags, db)
        return json_response({"flags": [s.flag.to_doc() for s in flags]})

    async def create(request: web.Request) -> web.Response:
        db, doc = db_of(request), writable(await read_json(request))
        stored = await db.run(
            create_flag, db, doc, who=who(request), now_ns=time.time_ns(), outbox=outbox_of(request)
        )
        location = f"{PREFIX}/flags/{stored.flag.key}"
        return json_response(stored.flag.to_doc(), status=201, headers={"Location": location})

    async def snapshot_of(request: web.Request) -> web.StreamResponse:
        db = db_of(request)
        environment = request.query.get("environment") or None
        flags = await db.run(list_flags, db)
        body, etag = snapshot(flags, environment)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _matches(request.headers.get("If-None-Match", ""), etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type=_JSON, headers=headers)

    async def read(request: web.Request) -> web.Response:
        db = db_of(request)
        stored = await db.run(get_flag, db, request.match_info["key"])
        more = {} if extras is None else await db.run(extras, db, stored)
        return json_response(stored.flag.to_doc() | dict(more))

    async def patch(request: web.Request) -> web.Response:
        db, body = db_of(request), writable(await read_json(request))
        key = request.match_info["key"]
        stored = await db.run(
            patch_flag,
            db,
            key,
            body,
            who=who(request),
            now_ns=time.time_ns(),
            outbox=outbox_of(request),
        )
        return json_response(stored.flag.to_doc())

    async def delete(request: web.Request) -> web.Response:
        db = db_of(request)
        await db.run(
            delete_flag,
            db,
            request.match_info["key"],
            who=who(request),
            now_ns=time.time_ns(),
            outbox=outbox_of(request),
        )
        return web.Response(status=204)

    async def evaluate_one(request: web.Request) -> web.Response:
        db = db_of(request)
        environment = request.query.get("environment", "")
        if not environment:
            raise BadRequestError("environment is required: ?environment=prod")
        groups = [g for value in request.query.getall("groups", []) for g in value.split(",") if g]
        stored = await db.run(get_flag, db, request.match_info["key"])
        result = evaluate(stored.flag, environment, request.query.get("user", ""), groups)
        return json_response(result.to_doc())

    base = f"{PREFIX}/flags"
    # The snapshot comes before `{key}` so that it is never read as a flag named "snapshot".
    return [
        web.get(base, list_all),
        web.post(base, create),
        web.get(f"{base}/snapshot", snapshot_of),
        web.get(f"{base}/{{key}}", read),
        web.patch(f"{base}/{{key}}", patch),
        web.delete(f"{base}/{{key}}", delete),
        web.get(f"{base}/{{key}}/evaluate", evaluate_one),
    ]


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match list against our ETag."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags
