"""Typed knobs through the real control app and the SDK: a value PATCHed in is checked against
its schema (400 naming the bound), audited, annotated and announced like a percentage change,
and evaluated (server and SDK alike) as the variant's value, else the environment's."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from annotations.app import ControlPlane, setup_control
from annotations.chat.messages import render_announcement
from annotations.control.notes import list_annotations
from annotations.control.outbox import Outbox
from annotations.control.tokens import create_token
from annotations.flags.bucketing import evaluate, variant_of
from annotations.flags.client import Flags
from annotations.flags.model import Flag
from annotations.flags.store import create_flag, get_flag, patch_flag
from tests.annotations.flag_server import LiveServer

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

KEY = "search.max_results"
KNOB = {
    "key": KEY,
    "environments": {
        "prod": {"percentage": 0, "value": 50, "schema": {"min": 1, "max": 100}},
        "staging": {"percentage": 100, "value": {"limit": 80, "mode": "fast"}},
    },
}
ARMS_PROD: dict[str, Any] = {
    "percentage": 100,
    "value": 10,
    "schema": {"enum": [10, 20, 50]},
    "variants": [{"name": "short", "weight": 1, "value": 20}, {"name": "plain", "weight": 1}],
}
ARMS = {"key": "ranking", "environments": {"prod": ARMS_PROD}}


@pytest.fixture
async def client(control: ControlPlane, aiohttp_client: AiohttpClient) -> TestClient[Any, Any]:
    app = web.Application()
    outbox = Outbox(("chat",), render_announcement)
    setup_control(app, control, anonymous_read=False, ingest_token="", outbox=outbox)
    return await aiohttp_client(app)


async def knob(client: TestClient[Any, Any], tokens: dict[str, dict[str, str]]) -> None:
    response = await client.post("/api/v1/flags", json=KNOB, headers=tokens["operator"])
    assert response.status == 201, await response.text()


async def set_prod(client: TestClient[Any, Any], headers: dict[str, str], prod: Any) -> Any:
    return await client.patch(
        f"/api/v1/flags/{KEY}", json={"environments": {"prod": prod}}, headers=headers
    )


async def announced(control: ControlPlane) -> list[str]:
    rows = await control.db.run(control.db.query, "SELECT payload FROM announcements")
    return [orjson.loads(row["payload"])["text"] for row in rows]


async def titles(control: ControlPlane) -> list[tuple[str, str]]:
    notes = await control.db.run(
        list_annotations, control.db, 0, 2**62, kinds=["flag"], tags={"environment": "prod"}
    )
    return [(n.who, n.title) for n in notes]


async def test_a_value_patched_in_is_audited_annotated_and_announced(
    client, tokens, control
) -> None:
    await knob(client, tokens)
    response = await set_prod(client, tokens["operator"], {"value": 20})
    assert response.status == 200, await response.text()
    prod = (await response.json())["environments"]["prod"]
    assert prod["value"] == 20
    assert prod["schema"] == {"max": 100, "min": 1}
    assert prod["percentage"] == 0.0
    assert await titles(control) == [
        (
            "operator-1",
            "search.max_results created: prod 0% value 50,"
            ' staging 100% value {"limit": 80, "mode": "fast"}',
        ),
        ("operator-1", "search.max_results prod: 50 -> 20"),
    ]
    assert "[flag] operator-1: search.max_results prod: 50 -> 20" in await announced(control)
    audit = await (await client.get("/api/v1/audit", headers=tokens["admin"])).json()
    entries = [(e["method"], e["path"], e["status"], e["who"]) for e in audit["audit"]]
    assert ("PATCH", f"/api/v1/flags/{KEY}", 200, "operator-1") in entries


async def test_a_value_outside_its_schema_is_a_400_naming_the_bound(
    client, tokens, control
) -> None:
    await knob(client, tokens)
    cases = [
        ({"value": 500}, "environments.prod.value: 500 is above the maximum 100 (schema.max)"),
        ({"value": 0}, "environments.prod.value: 0 is below the minimum 1 (schema.min)"),
        ({"value": "20"}, 'environments.prod.value: "20" is not a number (schema.min)'),
        ({"schema": {"max": 10}}, "environments.prod.value: 50 is above the maximum 10"),
        ({"schema": {"min": 9, "max": 1}}, "environments.prod.schema: min 9 is above max 1"),
        # A merge patch merges the schema object too: a JSON Schema needs the shorthand's keys gone.
        ({"schema": {"type": "integer"}}, "environments.prod.schema: min and max belong to the"),
        (
            {"schema": {"min": None, "max": None, "type": "integer", "maximum": "100"}},
            "environments.prod.schema.maximum: not a JSON Schema: '100' is not of type 'number'",
        ),
    ]
    for prod, error in cases:
        response = await set_prod(client, tokens["operator"], prod)
        assert response.status == 400
        assert (await response.json())["error"].startswith(error)
    read = await (await client.get(f"/api/v1/flags/{KEY}", headers=tokens["viewer"])).json()
    assert read["environments"]["prod"]["value"] == 50
    assert len(await titles(control)) == 1  # the creation alone
    audit = await (await client.get("/api/v1/audit", headers=tokens["admin"])).json()
    assert [e["status"] for e in audit["audit"] if e["method"] == "PATCH"] == [400] * len(cases)


async def test_a_schema_change_and_a_removal_are_annotated(client, tokens, control) -> None:
    await knob(client, tokens)
    await set_prod(client, tokens["operator"], {"schema": {"min": 1, "max": 200}})
    response = await set_prod(client, tokens["admin"], {"value": None, "schema": None})
    prod = (await response.json())["environments"]["prod"]
    assert "value" not in prod
    assert "schema" not in prod
    old, new = '{"max": 100, "min": 1}', '{"max": 200, "min": 1}'
    assert (await titles(control))[1:] == [
        ("operator-1", f"search.max_results prod: schema {old} -> {new}"),
        ("admin-1", f"search.max_results prod: 50 -> (none); schema {new} -> (none)"),
    ]


async def test_evaluate_gives_the_knob_value(client, tokens) -> None:
    await knob(client, tokens)
    assert (await client.post("/api/v1/flags", json=ARMS, headers=tokens["operator"])).status == 201

    async def value_of(key: str, query: str) -> Any:
        url = f"/api/v1/flags/{key}/evaluate?{query}"
        response = await client.get(url, headers=tokens["viewer"])
        assert response.status == 200
        return (await response.json())["value"]

    # prod is at 0%: the knob turns for everyone all the same.
    assert await value_of(KEY, "user=42&environment=prod") == 50
    assert await value_of(KEY, "user=42&environment=staging") == {"limit": 80, "mode": "fast"}
    assert await value_of(KEY, "user=42&environment=dev") is None
    arms = Flag.from_doc(ARMS).environments["prod"].variants
    for user in ("u1", "u2", "u3", "u4", "u5", "u6"):
        chosen = variant_of("ranking", user, arms)
        assert chosen is not None
        want = 20 if chosen.name == "short" else 10
        assert await value_of("ranking", f"user={user}&environment=prod") == want
    await set_prod(client, tokens["operator"], {"enabled": False})
    assert await value_of(KEY, "user=42&environment=prod") is None
    await set_prod(client, tokens["operator"], {"enabled": True})
    await client.patch(f"/api/v1/flags/{KEY}", json={"enabled": False}, headers=tokens["admin"])
    assert await value_of(KEY, "user=42&environment=staging") is None


async def test_a_knob_set_by_a_merge_patch_of_its_value_alone(control) -> None:
    """The shape an alert's action writes: `{"environments": {env: {"value": X}}}`."""
    db = control.db
    await db.run(create_flag, db, KNOB, who="alice", now_ns=1)
    stored = await db.run(
        patch_flag, db, KEY, {"environments": {"prod": {"value": 20}}}, who="alert", now_ns=2,
        why="alert SlowSearch firing",
    )  # fmt: skip
    assert stored.version == 2
    assert stored.flag.to_doc()["environments"]["prod"]["value"] == 20
    again = await db.run(
        patch_flag, db, KEY, {"environments": {"prod": {"value": 20}}}, who="alert", now_ns=3
    )
    assert again.version == 2  # unchanged: nothing recorded
    assert (await titles(control))[-1] == (
        "alert", "search.max_results prod: 50 -> 20 (alert SlowSearch firing)"
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"environments\.prod\.value: 500 is above the maximum"):
        await db.run(
            patch_flag, db, KEY, {"environments": {"prod": {"value": 500}}}, who="alert", now_ns=4
        )
    assert (await db.run(get_flag, db, KEY)).version == 2


@given(st.text(max_size=12), st.integers(0, 100), st.booleans(), st.booleans())
def test_the_value_is_the_variants_else_the_environments_unless_killed(
    user: str, percentage: int, killed: bool, env_off: bool
) -> None:
    prod = {**ARMS_PROD, "percentage": percentage, "enabled": not env_off}
    doc = {"key": "ranking", "enabled": not killed, "environments": {"prod": prod}}
    flag = Flag.from_doc(doc)
    got = evaluate(flag, "prod", user)
    if killed or env_off:
        assert got.value is None
    elif got.variant == "short":
        assert got.value == 20
    else:
        assert got.value == 10
    assert evaluate(flag, "staging", user).value is None


@pytest.fixture
def sdk_control(control: ControlPlane) -> ControlPlane:
    create_flag(control.db, KNOB, who="test", now_ns=1)
    create_flag(control.db, ARMS, who="test", now_ns=1)
    return control


@pytest.fixture
def statsd() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


def test_the_sdk_reads_the_value_or_the_default(
    sdk_control: ControlPlane, server: LiveServer, statsd: socket.socket
) -> None:
    token = create_token(sdk_control.db, "app", "viewer")[1]
    port = statsd.getsockname()[1]
    flags = Flags(server.url, token, "prod", statsd=f"127.0.0.1:{port}", exposure_interval_s=60)
    try:
        assert flags.value(KEY, user="42", groups=(), default=20) == 50
        assert flags.value("no-such-flag", user="42", default=20) == 20
        chosen = variant_of("ranking", "u1", Flag.from_doc(ARMS).environments["prod"].variants)
        assert chosen is not None
        assert flags.value("ranking", "u1") == (20 if chosen.name == "short" else 10)
        patch_flag(
            sdk_control.db, KEY, {"environments": {"prod": {"value": 30}}}, who="t", now_ns=2
        )
        assert flags.refresh()
        assert flags.value(KEY, "42", default=20) == 30
        patch_flag(sdk_control.db, KEY, {"enabled": False}, who="t", now_ns=3)
        assert flags.refresh()
        assert flags.value(KEY, "42", default=20) == 20
    finally:
        flags.close()
    staging = Flags(server.url, token, "staging")
    try:
        assert staging.value("ranking", "u1", default=5) == 5  # no rules there: the default
        patch_flag(sdk_control.db, KEY, {"enabled": True}, who="t", now_ns=4)
        assert staging.refresh()
        got = staging.value(KEY, "42")
        assert got == {"limit": 80, "mode": "fast"}
        got["limit"] = 1  # a copy: the next read is unchanged
        assert staging.value(KEY, "42") == {"limit": 80, "mode": "fast"}
    finally:
        staging.close()
    # Every read of a known flag counted one exposure, as is_enabled does; the unknown none.
    lines = statsd.recv(65536).decode().split("\n")
    assert sorted(lines) == sorted(
        [
            f"shipboard.flag.exposure:3|c|#flag:{KEY},variant:off,environment:prod",
            f"shipboard.flag.exposure:1|c|#flag:ranking,variant:{chosen.name},environment:prod",
        ]
    )
