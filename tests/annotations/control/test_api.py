"""The control API through a real aiohttp server, on SQLite and PostgreSQL, for every role."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotations.app import ControlPlane, setup_control
from annotations.control.notes import add_annotation
from annotations.control.tokens import create_token

Client = TestClient[Any, Any]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
Headers = dict[str, dict[str, str]]

DEPLOY = {"service": "web", "environment": "prod", "version": "abc123", "description": "d"}


async def _ingest(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(
    control: ControlPlane, *, anonymous_read: bool = False, ingest: str = ""
) -> web.Application:
    """The control plane inside an app that also has the root's ingest and health routes."""
    app = web.Application()
    app.router.add_post("/write", _ingest)
    app.router.add_post("/api/v2/write", _ingest)
    app.router.add_get("/healthz", _health)
    setup_control(app, control, anonymous_read=anonymous_read, ingest_token=ingest)
    return app


@pytest.fixture
async def client(control: ControlPlane, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(make_app(control))


async def start(client: Client, tokens: Headers, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/deploys", json=DEPLOY | fields, headers=tokens["operator"]
    )
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


# (method, path, body, lowest role allowed); `{deploy}` is an existing deploy's id.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/api/v1/deploys", None, "viewer"),
    ("GET", "/api/v1/deploys/{deploy}", None, "viewer"),
    ("POST", "/api/v1/deploys", DEPLOY, "operator"),
    ("POST", "/api/v1/deploys/{deploy}/finish", {"status": "succeeded"}, "operator"),
    ("GET", "/api/v1/annotations", None, "viewer"),
    ("POST", "/api/v1/annotations", {"title": "failover"}, "operator"),
    ("GET", "/api/v1/tokens", None, "admin"),
    ("POST", "/api/v1/tokens", {"name": "bob", "role": "viewer"}, "admin"),
    ("DELETE", "/api/v1/tokens/{token}", None, "admin"),
    ("GET", "/api/v1/audit", None, "admin"),
]
RANK = {"viewer": 0, "operator": 1, "admin": 2}


@pytest.mark.parametrize(("method", "path", "body", "lowest"), ENDPOINTS)
async def test_each_role_is_allowed_or_refused_with_403(
    client: Client,
    control: ControlPlane,
    tokens: Headers,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    lowest: str,
) -> None:
    for role in ("viewer", "operator", "admin"):
        deploy = await start(client, tokens)
        victim, _ = await control.db.run(create_token, control.db, "victim", "viewer")
        url = path.format(deploy=deploy["id"], token=victim.id)
        response = await client.request(method, url, json=body, headers=tokens[role])
        if RANK[role] >= RANK[lowest]:
            assert response.status in (200, 201), (role, await response.text())
        else:
            assert response.status == 403, (role, await response.text())
            assert "may not" in (await response.json())["error"]


@pytest.mark.parametrize(("method", "path", "body", "lowest"), ENDPOINTS)
async def test_no_token_or_a_bad_one_is_401(
    client: Client, method: str, path: str, body: dict[str, Any] | None, lowest: str
) -> None:
    url = path.format(deploy=1, token=1)
    for headers in ({}, {"Authorization": "Bearer sb_nope"}, {"Authorization": "Basic eDp5"}):
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "error" in await response.json()


async def test_anonymous_read_lets_reads_through_and_nothing_else(
    control: ControlPlane, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(make_app(control, anonymous_read=True))
    assert (await client.get("/api/v1/deploys")).status == 200
    assert (await client.get("/api/v1/annotations?from=-1h")).status == 200
    assert (await client.get("/api/v1/tokens")).status == 401
    assert (await client.get("/api/v1/audit")).status == 401
    assert (await client.post("/api/v1/annotations", json={"title": "x"})).status == 401
    bad = await client.get("/api/v1/deploys", headers={"Authorization": "Bearer sb_bad"})
    assert bad.status == 401


async def test_health_is_open_and_ingest_is_open_without_an_ingest_token(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.post("/write", data=b"cpu v=1")).status == 204
    assert (await client.post("/api/v2/write", data=b"cpu v=1")).status == 204


async def test_ingest_token_is_required_when_configured(
    control: ControlPlane, tokens: Headers, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(make_app(control, ingest="s3cret"))
    for path in ("/write", "/api/v2/write"):
        assert (await client.post(path, data=b"cpu v=1")).status == 401
        wrong = await client.post(path, data=b"x", headers={"Authorization": "Token nope"})
        assert wrong.status == 401
        v2 = await client.post(path, data=b"x", headers={"Authorization": "Token s3cret"})
        assert v2.status == 204
        bearer = await client.post(path, data=b"x", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status == 204
        assert (await client.post(path, data=b"x", headers=tokens["operator"])).status == 204
        assert (await client.post(path, data=b"x", headers=tokens["viewer"])).status == 403
    # The ingest token opens ingest only.
    api = await client.get("/api/v1/deploys", headers={"Authorization": "Bearer s3cret"})
    assert api.status == 401


async def test_deploy_starts_finishes_and_lists_newest_first(
    client: Client, tokens: Headers
) -> None:
    first = await start(client, tokens, start_ns=1_000_000_000_000, watch=["http.errors"])
    assert first["status"] == "running"
    assert first["who"] == "operator-1"
    assert first["watch"] == ["http.errors"]
    second = await start(client, tokens, version="def456", who="alice", risk="r", rollback="rb")
    assert second["who"] == "alice"
    finish = await client.post(
        f"/api/v1/deploys/{first['id']}/finish",
        json={"status": "failed", "log_tail": "boom", "exit_code": 3, "end_ns": 1_002_000_000_000},
        headers=tokens["operator"],
    )
    done = await finish.json()
    assert (done["status"], done["exit_code"], done["log_tail"]) == ("failed", 3, "boom")
    assert done["duration_s"] == 2.0
    listed = await client.get("/api/v1/deploys?from=0&to=now", headers=tokens["viewer"])
    ids = [d["id"] for d in (await listed.json())["deploys"]]
    assert ids == [second["id"], first["id"]]


async def test_deploy_list_filters_by_service_environment_and_time(
    client: Client, tokens: Headers
) -> None:
    await start(client, tokens, service="api")
    await start(client, tokens, environment="staging")
    old = await start(client, tokens, start="2020-01-01T00:00:00Z")
    assert old["start_ns"] == 1_577_836_800_000_000_000

    async def services(query: str) -> list[tuple[str, str]]:
        response = await client.get(f"/api/v1/deploys?{query}", headers=tokens["viewer"])
        return [(d["service"], d["environment"]) for d in (await response.json())["deploys"]]

    assert await services("service=api") == [("api", "prod")]
    assert await services("environment=staging") == [("web", "staging")]
    assert await services("from=-1h") == [("web", "staging"), ("api", "prod")]
    assert await services("from=2019-12-31&to=2020-01-02&service=web") == [("web", "prod")]


async def test_idempotency_key_and_finish_by_key_record_once(
    client: Client, tokens: Headers
) -> None:
    one = await start(client, tokens, idempotency_key="deploy-k1")
    two = await start(client, tokens, idempotency_key="deploy-k1")
    assert one["id"] == two["id"]
    for _ in range(2):
        response = await client.post(
            "/api/v1/deploys/deploy-k1/finish",
            json={"status": "succeeded"},
            headers=tokens["operator"],
        )
        assert response.status == 200
    listed = await (await client.get("/api/v1/deploys", headers=tokens["viewer"])).json()
    assert [(d["id"], d["status"]) for d in listed["deploys"]] == [(one["id"], "succeeded")]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/deploys", {"service": "web"}, 400),
        ("/api/v1/deploys", {**DEPLOY, "watch": 5}, 400),
        ("/api/v1/deploys", {**DEPLOY, "start": "yesterday"}, 400),
        ("/api/v1/deploys", {**DEPLOY, "idempotency_key": "42"}, 400),
        ("/api/v1/deploys/999999/finish", {"status": "succeeded"}, 404),
        ("/api/v1/deploys/nokey/finish", {"status": "succeeded"}, 404),
        ("/api/v1/deploys/{deploy}/finish", {"status": "great"}, 400),
        ("/api/v1/deploys/{deploy}/finish", {"status": "failed", "end_ns": 5}, 400),
        ("/api/v1/annotations", {"body": "no title"}, 400),
        ("/api/v1/annotations", {"title": "t", "tags": {"a": 1}}, 400),
        ("/api/v1/annotations", {"title": "t", "start": "now", "end": "-1h"}, 400),
        ("/api/v1/tokens", {"name": "x", "role": "root"}, 400),
    ],
)
async def test_bad_requests_get_a_json_error_and_fitting_status(
    client: Client, tokens: Headers, path: str, body: dict[str, Any], status: int
) -> None:
    deploy = await start(client, tokens)
    response = await client.post(
        path.format(deploy=deploy["id"]), json=body, headers=tokens["admin"]
    )
    assert response.status == status
    assert response.content_type == "application/json"
    assert isinstance((await response.json())["error"], str)


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("/api/v1/deploys", {"service": "web"}, "environment: Field required"),
        ("/api/v1/deploys", {**DEPLOY, "watch": 5}, "watch: Input should be a valid list"),
        ("/api/v1/deploys", {**DEPLOY, "idempotency_key": "42"}, "idempotency_key: must not"),
        (
            "/api/v1/deploys",
            {**DEPLOY, "start_ns": True},
            "start_ns: Input should be a valid integer",
        ),
        ("/api/v1/annotations", {"title": "t", "tags": {"a": 1}}, "tags.a: Input should be a"),
        ("/api/v1/annotations", {"title": 5}, "title: Input should be a valid string"),
        ("/api/v1/annotations", [], "body must be a JSON object"),
        # PostgreSQL's text cannot hold a NUL: refused for what it is, not a 500 from the DB.
        ("/api/v1/deploys", {**DEPLOY, "description": "a\x00b"}, "description: must not hold"),
        ("/api/v1/deploys", {**DEPLOY, "watch": ["a\x00"]}, "watch[0]: must not hold"),
        ("/api/v1/annotations", {"title": "t\x00"}, "title: must not hold a NUL"),
        ("/api/v1/annotations", {"title": "t", "tags": {"a": "\x00"}}, "tags.a: must not hold"),
        ("/api/v1/tokens", {"name": "n\x00", "role": "viewer"}, "name: must not hold a NUL"),
    ],
)
async def test_a_bad_body_is_refused_naming_the_field(
    client: Client, tokens: Headers, path: str, body: Any, error: str
) -> None:
    response = await client.post(path, json=body, headers=tokens["admin"])
    assert response.status == 400
    assert (await response.json())["error"].startswith(error)


async def test_malformed_json_and_unknown_routes_are_json_errors(
    client: Client, tokens: Headers
) -> None:
    bad = await client.post("/api/v1/annotations", data=b"{nope", headers=tokens["operator"])
    assert bad.status == 400
    assert "not JSON" in (await bad.json())["error"]
    missing = await client.get("/api/v1/nothing-here", headers=tokens["viewer"])
    assert missing.status == 404
    assert (await missing.json()) == {"error": "Not Found"}


async def test_annotations_merge_deploys_flags_and_notes_in_time_order(
    client: Client, control: ControlPlane, tokens: Headers
) -> None:
    base = 1_700_000_000 * 10**9
    await start(client, tokens, start_ns=base + 2 * 10**9)
    await control.db.run(
        add_annotation,
        control.db,
        "flag",
        start_ns=base + 3 * 10**9,
        title="f",
        who="ops",
        tags={"flag": "search"},
    )
    note = await client.post(
        "/api/v1/annotations",
        json={
            "title": "db failover",
            "start": "1700000001",
            "end_ns": base + 5 * 10**9,
            "tags": {"service": "web", "environment": "prod"},
        },
        headers=tokens["operator"],
    )
    assert note.status == 201
    assert (await note.json())["end_ns"] == base + 5 * 10**9

    async def kinds(query: str) -> list[str]:
        response = await client.get(f"/api/v1/annotations?{query}", headers=tokens["viewer"])
        assert response.status == 200
        return [a["kind"] for a in (await response.json())["annotations"]]

    window = "from=1700000000&to=1700000010"
    assert await kinds(window) == ["note", "deploy", "flag"]
    assert await kinds(window + "&kind=deploy,flag") == ["deploy", "flag"]
    assert await kinds(window + "&tags=service:web,environment:prod") == ["note", "deploy"]
    assert await kinds(window + "&tags=flag:search") == ["flag"]
    assert await kinds("from=1700000004&to=1700000010") == ["note"]
    assert await kinds("from=-6h") == []
    bad = await client.get("/api/v1/annotations?kind=bogus", headers=tokens["viewer"])
    assert bad.status == 400


async def test_script_in_a_description_comes_back_as_inert_json(
    client: Client, tokens: Headers
) -> None:
    script = '<script>alert("x")</script>'
    await start(client, tokens, description=script, version=script)
    for path in ("/api/v1/deploys", "/api/v1/annotations?kind=deploy"):
        response = await client.get(path, headers=tokens["viewer"])
        assert response.content_type == "application/json"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert script in (await response.text()).replace("\\", "")
    deploys = (await (await client.get("/api/v1/deploys", headers=tokens["viewer"])).json())[
        "deploys"
    ]
    assert deploys[0]["description"] == script
    error = await client.get(f"/api/v1/deploys/{script}", headers=tokens["viewer"])
    assert error.content_type == "application/json"


async def test_tokens_are_created_listed_revoked_and_stored_hashed(
    client: Client, control: ControlPlane, tokens: Headers, control_url: str, tmp_path: Path
) -> None:
    created = await client.post(
        "/api/v1/tokens", json={"name": "wall", "role": "viewer"}, headers=tokens["admin"]
    )
    assert created.status == 201
    info = await created.json()
    secret = info["token"]
    wall = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/api/v1/deploys", headers=wall)).status == 200

    listing = await (await client.get("/api/v1/tokens", headers=tokens["admin"])).text()
    assert "wall" in listing
    assert secret not in listing
    rows = await control.db.run(control.db.query, "SELECT * FROM tokens")
    assert all(secret not in str(value) for row in rows for value in row.values())
    if control_url.startswith("sqlite://"):
        data = await asyncio.to_thread(Path(control_url.removeprefix("sqlite://")).read_bytes)
        assert secret.encode() not in data

    revoked = await client.delete(f"/api/v1/tokens/{info['id']}", headers=tokens["admin"])
    assert (await revoked.json())["revoked_ns"] is not None
    assert (await client.get("/api/v1/deploys", headers=wall)).status == 401
    active = await (await client.get("/api/v1/tokens", headers=tokens["admin"])).json()
    assert "wall" not in [t["name"] for t in active["tokens"]]
    every = await (await client.get("/api/v1/tokens?revoked=1", headers=tokens["admin"])).json()
    assert "wall" in [t["name"] for t in every["tokens"]]
    assert (await client.delete("/api/v1/tokens/999999", headers=tokens["admin"])).status == 404


async def test_every_mutating_call_is_audited_and_reads_are_not(
    client: Client, tokens: Headers
) -> None:
    await start(client, tokens, description="audited")
    await client.get("/api/v1/deploys", headers=tokens["operator"])
    await client.post("/api/v1/annotations", json={"title": "x"}, headers=tokens["viewer"])
    await client.post("/api/v1/annotations", json={"title": "y"})
    await client.post("/write", data=b"cpu v=1")
    response = await client.get("/api/v1/audit?from=-1h", headers=tokens["admin"])
    entries = (await response.json())["audit"]
    seen = [(e["who"], e["role"], e["method"], e["path"], e["status"]) for e in entries]
    assert seen == [
        ("anonymous", "anonymous", "POST", "/api/v1/annotations", 401),
        ("viewer-1", "viewer", "POST", "/api/v1/annotations", 403),
        ("operator-1", "operator", "POST", "/api/v1/deploys", 201),
    ]
    assert entries[2]["remote"] == "127.0.0.1"
    assert '"audited"' in entries[2]["detail"]


async def test_ensure_admin_token_creates_one_token_once(
    control: ControlPlane, aiohttp_client: AiohttpClient
) -> None:
    token = await control.db.run(control.ensure_admin_token)
    assert token is not None
    assert await control.db.run(control.ensure_admin_token) is None
    client = await aiohttp_client(make_app(control))
    admin = {"Authorization": f"Bearer {token}"}
    listed = await (await client.get("/api/v1/tokens", headers=admin)).json()
    assert [(t["name"], t["role"]) for t in listed["tokens"]] == [("admin", "admin")]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "service",
        "environment",
        "version",
        "watch",
        "start",
        "start_ns",
        "end",
        "end_ns",
        "title",
        "tags",
        "status",
        "exit_code",
        "idempotency_key",
        "name",
        "role",
        "who",
        "log_tail",
    ]
)
BODIES = st.binary(max_size=200) | st.dictionaries(FIELDS, JSON_VALUES, max_size=8).map(
    lambda doc: json.dumps(doc).encode()
)


@pytest.mark.slow
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=BODIES,
    path=st.sampled_from(
        ["/api/v1/deploys", "/api/v1/deploys/1/finish", "/api/v1/annotations", "/api/v1/tokens"]
    ),
)
async def test_arbitrary_bodies_are_accepted_or_refused_never_a_500(
    client: Client, tokens: Headers, body: bytes, path: str
) -> None:
    response = await client.post(path, data=body, headers=tokens["admin"])
    assert response.status in (200, 201, 400, 404), await response.text()
    assert response.content_type == "application/json"
