"""HTTP routes of the control plane: deploys, annotations, tokens and the audit log."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from annotations.control.audit import list_audit
from annotations.control.auth import PRINCIPAL
from annotations.control.bodies import (
    DeployFinishBody,
    DeployStartBody,
    NoteBody,
    TokenBody,
    read_body,
)
from annotations.control.db import ControlDB
from annotations.control.deploys import (
    DeployStart,
    deploy_json,
    finish_deploy,
    get_deploy,
    list_deploys,
    start_deploy,
)
from annotations.control.errors import BadRequestError, NotFoundError
from annotations.control.notes import (
    KINDS,
    Annotation,
    add_annotation,
    get_annotation,
    list_annotations,
)
from annotations.control.outbox import Outbox
from annotations.control.timespec import parse_range
from annotations.control.tokens import create_token, list_tokens, revoke_token

CONTROL_DB = web.AppKey("control_db", ControlDB)
OUTBOX = web.AppKey("outbox", Outbox)
"""Where the routes that record an annotation queue its announcement."""
MAX_AUDIT = 1000

routes = web.RouteTableDef()


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON that a browser never renders as markup, whatever text it carries."""
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers={"X-Content-Type-Options": "nosniff", **(headers or {})},
    )


def _writers(request: web.Request) -> tuple[ControlDB, Outbox]:
    """The DB and the outbox that a route recording an annotation writes to."""
    return request.config_dict[CONTROL_DB], request.config_dict[OUTBOX]


def _tag_filter(text: str) -> dict[str, str]:
    """`service:web,environment:prod` -> {"service": "web", "environment": "prod"}."""
    tags: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition(":")
        if not sep or not key:
            raise BadRequestError(f"bad tag filter {part!r}: use key:value")
        tags[key.strip()] = value.strip()
    return tags


@routes.post("/api/v1/deploys")
async def post_deploy(request: web.Request) -> web.Response:
    db, outbox = _writers(request)
    body = await read_body(request, DeployStartBody)
    now_ns = time.time_ns()
    start = DeployStart(
        service=body.service,
        environment=body.environment,
        version=body.version,
        description=body.description,
        url=body.url,
        watch=tuple(body.watch),
        risk=body.risk,
        rollback=body.rollback,
        verify_after_ns=body.verify_after_ns(),
    )
    who = body.who or request[PRINCIPAL].name
    start_ns = body.time_ns_or_now("start", now_ns)
    key = body.idempotency_key or None

    def record() -> Annotation:
        # One transaction, so that a 503 (the DB went away) means nothing was recorded.
        with db.transaction():
            deploy_id = start_deploy(
                db,
                start,
                who=who,
                start_ns=start_ns,
                idempotency_key=key,
                outbox=outbox,
            )
            return get_deploy(db, str(deploy_id))

    return json_response(deploy_json(await db.run(record)), status=201)


@routes.post("/api/v1/deploys/{ref}/finish")
async def post_deploy_finish(request: web.Request) -> web.Response:
    db, outbox = _writers(request)
    body = await read_body(request, DeployFinishBody)
    now_ns = time.time_ns()
    end_ns = body.time_ns_or_now("end", now_ns)
    deploy = await db.run(
        finish_deploy,
        db,
        request.match_info["ref"],
        status=body.status,
        end_ns=end_ns,
        log_tail=body.log_tail,
        exit_code=body.exit_code,
        outbox=outbox,
    )
    return json_response(deploy_json(deploy))


@routes.get("/api/v1/deploys")
async def get_deploys(request: web.Request) -> web.Response:
    db = request.config_dict[CONTROL_DB]
    query = request.query
    start_ns, end_ns = parse_range(query.get("from"), query.get("to"), time.time_ns(), "-30d")
    deploys = await db.run(
        list_deploys,
        db,
        start_ns,
        end_ns,
        service=query.get("service") or None,
        environment=query.get("environment") or None,
    )
    return json_response({"deploys": [deploy_json(d) for d in deploys]})


@routes.get("/api/v1/deploys/{ref}")
async def get_one_deploy(request: web.Request) -> web.Response:
    db = request.config_dict[CONTROL_DB]
    deploy = await db.run(get_deploy, db, request.match_info["ref"])
    return json_response(deploy_json(deploy))


@routes.post("/api/v1/annotations")
async def post_note(request: web.Request) -> web.Response:
    db, outbox = _writers(request)
    body = await read_body(request, NoteBody)
    now_ns = time.time_ns()
    start_ns = body.time_ns_or_now("start", now_ns)
    end_ns = body.time_ns("end", now_ns)
    if end_ns is not None and end_ns < start_ns:
        raise BadRequestError("end is before start")
    who = body.who or request[PRINCIPAL].name
    key = body.idempotency_key or None

    def record() -> Annotation:
        with db.transaction():  # as for deploys: a 503 means nothing was recorded
            note_id = add_annotation(
                db,
                "note",
                start_ns=start_ns,
                end_ns=end_ns,
                title=body.title,
                body=body.body,
                who=who,
                tags=body.tags,
                idempotency_key=key,
                outbox=outbox,
            )
            return get_annotation(db, note_id)

    return json_response((await db.run(record)).to_json(), status=201)


@routes.get("/api/v1/annotations")
async def get_annotations(request: web.Request) -> web.Response:
    db = request.config_dict[CONTROL_DB]
    query = request.query
    start_ns, end_ns = parse_range(query.get("from"), query.get("to"), time.time_ns(), "-6h")
    kinds = [k for k in query.get("kind", "").split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise BadRequestError(f"kind must be among {', '.join(KINDS)}")
    found = await db.run(
        list_annotations,
        db,
        start_ns,
        end_ns,
        kinds=kinds,
        tags=_tag_filter(query.get("tags", "")),
    )
    return json_response({"annotations": [a.to_json() for a in found]})


@routes.get("/api/v1/tokens")
async def get_tokens(request: web.Request) -> web.Response:
    db = request.config_dict[CONTROL_DB]
    revoked = request.query.get("revoked") in ("1", "true")
    tokens = await db.run(list_tokens, db, include_revoked=revoked)
    return json_response({"tokens": [t.to_json() for t in tokens]})


@routes.post("/api/v1/tokens")
async def post_token(request: web.Request) -> web.Response:
    db = request.config_dict[CONTROL_DB]
    body = await read_body(request, TokenBody)
    info, token = await db.run(create_token, db, body.name, body.role)
    return json_response({**info.to_json(), "token": token}, status=201)


MAX_ID = 2**63 - 1  # the largest id a BIGINT column holds


def row_id(request: web.Request, what: str) -> int:
    """The `{id}` of the path as a row id: ASCII digits (`²` is a digit to `str.isdigit`, not
    to `int`), and past the column's range no such row, not a database error."""
    ref = request.match_info["id"]
    if not (ref.isascii() and ref.isdigit()):
        raise BadRequestError(f"{what} id must be a number")
    if int(ref) > MAX_ID:
        raise NotFoundError(f"no {what} {ref}")
    return int(ref)


@routes.delete("/api/v1/tokens/{id}")
async def delete_token(request: web.Request) -> web.Response:
    db = request.config_dict[CONTROL_DB]
    info = await db.run(revoke_token, db, row_id(request, "token"))
    return json_response(info.to_json())


@routes.get("/api/v1/audit")
async def get_audit(request: web.Request) -> web.Response:
    db = request.config_dict[CONTROL_DB]
    query = request.query
    start_ns, end_ns = parse_range(query.get("from"), query.get("to"), time.time_ns(), "-7d")
    try:
        limit = min(int(query.get("limit", "200")), MAX_AUDIT)
    except ValueError:
        raise BadRequestError("limit must be an integer") from None
    entries = await db.run(list_audit, db, start_ns, end_ns, max(limit, 1))
    return json_response({"audit": [e.to_json() for e in entries]})
