"""HTTP routes of the control plane: deploys, annotations, tokens and the audit log."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from annotations.control.audit import list_audit
from annotations.control.auth import PRINCIPAL
from annotations.control.db import ControlDB
from annotations.control.deploys import (
    DeployStart,
    deploy_json,
    finish_deploy,
    get_deploy,
    list_deploys,
    start_deploy,
)
from annotations.control.errors import BadRequestError
from annotations.control.notes import (
    KINDS,
    Annotation,
    add_annotation,
    get_annotation,
    list_annotations,
)
from annotations.control.outbox import Outbox
from annotations.control.timespec import parse_range, parse_time
from annotations.control.tokens import create_token, list_tokens, revoke_token
from storage.timeparse import MAX_ABS_NS

CONTROL_DB = web.AppKey("control_db", ControlDB)
OUTBOX = web.AppKey("outbox", Outbox)
"""Where the routes that record an annotation queue its announcement."""
MAX_TEXT = 10_000
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


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as error:
        raise BadRequestError(f"body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequestError("body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise BadRequestError(f"{name} is required")
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadRequestError(f"{name} must be a string of at most {MAX_TEXT} characters")
    return value


def _time(body: dict[str, Any], name: str, now_ns: int) -> int | None:
    """`<name>_ns` (int) or `<name>` (now, -5m, ISO 8601, unix seconds) from the body."""
    ns = body.get(f"{name}_ns")
    if ns is not None:
        if not isinstance(ns, int) or isinstance(ns, bool) or abs(ns) > MAX_ABS_NS:
            raise BadRequestError(f"{name}_ns must be a 64-bit integer")
        return ns
    text = body.get(name)
    if text is None:
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise BadRequestError(f"{name} must be a time")
    return parse_time(text, now_ns)


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadRequestError("tags must be an object of strings")
    return value


def _tag_filter(text: str) -> dict[str, str]:
    """`service:web,environment:prod` -> {"service": "web", "environment": "prod"}."""
    tags: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition(":")
        if not sep or not key:
            raise BadRequestError(f"bad tag filter {part!r}: use key:value")
        tags[key.strip()] = value.strip()
    return tags


def _key(body: dict[str, Any]) -> str | None:
    key = _text(body, "idempotency_key")
    if key.isdigit():
        raise BadRequestError("idempotency_key must not be a bare number")
    return key or None


@routes.post("/api/v1/deploys")
async def post_deploy(request: web.Request) -> web.Response:
    db, outbox = request.config_dict[CONTROL_DB], request.config_dict[OUTBOX]
    body = await _body(request)
    now_ns = time.time_ns()
    watch = body.get("watch") or []
    if isinstance(watch, str):
        watch = [w.strip() for w in watch.split(",") if w.strip()]
    if not isinstance(watch, list) or not all(isinstance(w, str) for w in watch):
        raise BadRequestError("watch must be a list of metric names")
    start = DeployStart(
        service=_text(body, "service", required=True),
        environment=_text(body, "environment", required=True),
        version=_text(body, "version", required=True),
        description=_text(body, "description"),
        url=_text(body, "url"),
        watch=tuple(watch),
        risk=_text(body, "risk"),
        rollback=_text(body, "rollback"),
    )
    who = _text(body, "who") or request[PRINCIPAL].name
    start_ns = _time(body, "start", now_ns)
    key = _key(body)

    def record() -> Annotation:
        # One transaction, so that a 503 (the DB went away) means nothing was recorded.
        with db.transaction():
            deploy_id = start_deploy(
                db,
                start,
                who=who,
                start_ns=now_ns if start_ns is None else start_ns,
                idempotency_key=key,
                outbox=outbox,
            )
            return get_deploy(db, str(deploy_id))

    return json_response(deploy_json(await db.run(record)), status=201)


@routes.post("/api/v1/deploys/{ref}/finish")
async def post_deploy_finish(request: web.Request) -> web.Response:
    db, outbox = request.config_dict[CONTROL_DB], request.config_dict[OUTBOX]
    body = await _body(request)
    now_ns = time.time_ns()
    end_ns = _time(body, "end", now_ns)
    exit_code = body.get("exit_code")
    if exit_code is not None and (
        not isinstance(exit_code, int) or isinstance(exit_code, bool) or abs(exit_code) > 2**31
    ):
        raise BadRequestError("exit_code must be an integer")
    deploy = await db.run(
        finish_deploy,
        db,
        request.match_info["ref"],
        status=_text(body, "status", required=True),
        end_ns=now_ns if end_ns is None else end_ns,
        log_tail=_text(body, "log_tail"),
        exit_code=exit_code,
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
    db, outbox = request.config_dict[CONTROL_DB], request.config_dict[OUTBOX]
    body = await _body(request)
    now_ns = time.time_ns()
    start = _time(body, "start", now_ns)
    start_ns = now_ns if start is None else start
    end_ns = _time(body, "end", now_ns)
    if end_ns is not None and end_ns < start_ns:
        raise BadRequestError("end is before start")
    title, text = _text(body, "title", required=True), _text(body, "body")
    who = _text(body, "who") or request[PRINCIPAL].name
    tags, key = _tags(body.get("tags")), _key(body)

    def record() -> Annotation:
        with db.transaction():  # as for deploys: a 503 means nothing was recorded
            note_id = add_annotation(
                db,
                "note",
                start_ns=start_ns,
                end_ns=end_ns,
                title=title,
                body=text,
                who=who,
                tags=tags,
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
    body = await _body(request)
    info, token = await db.run(
        create_token, db, _text(body, "name", required=True), _text(body, "role", required=True)
    )
    return json_response({**info.to_json(), "token": token}, status=201)


@routes.delete("/api/v1/tokens/{id}")
async def delete_token(request: web.Request) -> web.Response:
    db = request.config_dict[CONTROL_DB]
    ref = request.match_info["id"]
    if not ref.isdigit():
        raise BadRequestError("token id must be a number")
    info = await db.run(revoke_token, db, int(ref))
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
