"""The flag routes through the real control app, on SQLite and PostgreSQL, for every role."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from annotations.app import ControlPlane, setup_control
from annotations.control.notes import Annotation, list_annotations
from annotations.flags.store import create_flag, get_flag, patch_flag

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

SEARCH = {
    "key": "new-search",
    "description": "Search v2",
    "owner": "search-team",
    "environments": {
        "prod": {"percentage": 10, "allow_groups": ["staff"]},
        "staging": {"percentage": 100},
    },
}


@pytest.fixture
async def client(control: ControlPlane, aiohttp_client: AiohttpClient) -> TestClient[Any, Any]:
    app = web.Application()
    setup_control(app, control, anonymous_read=False, ingest_token="")
    return await aiohttp_client(app)


async def notes_of(control: ControlPlane, **filters: Any) -> list[Annotation]:
    return await control.db.run(list_annotations, control.db, 0, 2**62, **filters)


async def create(client: TestClient[Any, Any], tokens: dict[str, dict[str, str]]) -> None:
    response = await client.post("/api/v1/flags", json=SEARCH, headers=tokens["operator"])
    assert response.status == 201, await response.text()


async def test_create_returns_the_full_document(client, tokens) -> None:
    response = await client.post("/api/v1/flags", json=SEARCH, headers=tokens["operator"])
    assert response.status == 201
    assert response.headers["Location"] == "/api/v1/flags/new-search"
    doc = await response.json()
    assert doc["enabled"] is True
    assert doc["environments"]["prod"] == {
        "enabled": True,
        "percentage": 10.0,
        "allow_users": [],
        "allow_groups": ["staff"],
        "variants": [],
    }
    listed = await (await client.get("/api/v1/flags", headers=tokens["viewer"])).json()
    assert listed == {"flags": [doc]}
    read = await client.get("/api/v1/flags/new-search", headers=tokens["viewer"])
    assert await read.json() == doc


async def test_create_twice_is_a_conflict(client, tokens) -> None:
    await create(client, tokens)
    again = await client.post("/api/v1/flags", json=SEARCH, headers=tokens["operator"])
    assert again.status == 409
    assert "exists" in (await again.json())["error"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{", "body is not JSON"),
        (b'{"key": "x", "environments": {"prod": {"percentage": 101}}}', "percentage"),
        (b'{"key": "x", "colour": "red"}', "colour: Extra inputs are not permitted"),
        (b"[]", "must be a JSON object"),
    ],
)
async def test_invalid_flags_get_400_with_the_reason(client, tokens, body, error) -> None:
    response = await client.post("/api/v1/flags", data=body, headers=tokens["operator"])
    assert response.status == 400
    assert error in (await response.json())["error"]


async def test_patch_is_a_merge_patch_and_is_annotated(client, tokens, control) -> None:
    await create(client, tokens)
    patch = {"environments": {"prod": {"percentage": 25, "allow_groups": None}}}
    response = await client.patch(
        "/api/v1/flags/new-search", json=patch, headers=tokens["operator"]
    )
    assert response.status == 200
    prod = (await response.json())["environments"]["prod"]
    assert prod["percentage"] == 25.0
    assert prod["allow_groups"] == []
    notes = await notes_of(control, kinds=["flag"], tags={"environment": "prod"})
    assert [n.title for n in notes] == [
        "new-search created: prod 10%, staging 100%",
        "new-search prod: 10% -> 25%; allow_groups -staff",
    ]
    assert {n.who for n in notes} == {"operator-1"}
    assert notes[1].tags == {"flag": "new-search", "environment": "prod"}


async def test_kill_switch_is_annotated_in_every_environment(client, tokens, control) -> None:
    await create(client, tokens)
    response = await client.patch(
        "/api/v1/flags/new-search", json={"enabled": False}, headers=tokens["admin"]
    )
    assert response.status == 200
    killed = (await notes_of(control, kinds=["flag"]))[-2:]
    assert [(n.tags["environment"], n.title, n.who) for n in killed] == [
        ("prod", "new-search killed (off in every environment)", "admin-1"),
        ("staging", "new-search killed (off in every environment)", "admin-1"),
    ]
    evaluated = await client.get(
        "/api/v1/flags/new-search/evaluate?user=u&groups=staff&environment=prod",
        headers=tokens["viewer"],
    )
    assert await evaluated.json() == {
        "key": "new-search",
        "environment": "prod",
        "enabled": False,
        "variant": None,
        "reason": "killed",
        "value": None,
    }


async def test_patch_that_changes_nothing_records_nothing(client, tokens, control) -> None:
    await create(client, tokens)
    before = len(await notes_of(control))
    same = {"environments": {"prod": {"percentage": 10}}}
    response = await client.patch("/api/v1/flags/new-search", json=same, headers=tokens["operator"])
    assert response.status == 200
    assert len(await notes_of(control)) == before


async def test_patch_cannot_rename_or_break_a_flag(client, tokens) -> None:
    await create(client, tokens)
    for patch, error in [
        ({"key": "other"}, "key: cannot be changed"),
        ({"environments": {"prod": {"percentage": 0.05}}}, "steps of 0.1"),
        ([1], "must be a JSON object"),
    ]:
        response = await client.patch(
            "/api/v1/flags/new-search", json=patch, headers=tokens["operator"]
        )
        assert response.status == 400
        assert error in (await response.json())["error"]
    doc = await (await client.get("/api/v1/flags/new-search", headers=tokens["viewer"])).json()
    assert doc["environments"]["prod"]["percentage"] == 10.0


async def test_delete_then_404(client, tokens, control) -> None:
    await create(client, tokens)
    response = await client.delete("/api/v1/flags/new-search", headers=tokens["operator"])
    assert response.status == 204
    for method in ("GET", "PATCH", "DELETE"):
        gone = await client.request(
            method, "/api/v1/flags/new-search", json={}, headers=tokens["operator"]
        )
        assert gone.status == 404
        assert "new-search" in (await gone.json())["error"]
    titles = [n.title for n in await notes_of(control, kinds=["flag"])]
    assert titles[-2:] == ["new-search deleted", "new-search deleted"]


async def test_evaluate_gives_reason_and_variant(client, tokens) -> None:
    doc = {
        "key": "exp",
        "environments": {
            "prod": {
                "percentage": 100,
                "allow_users": ["ann"],
                "variants": [{"name": "blue", "weight": 1}],
            },
            "dev": {"percentage": 0},
        },
    }
    await client.post("/api/v1/flags", json=doc, headers=tokens["operator"])

    async def evaluate(query: str) -> dict[str, Any]:
        response = await client.get(f"/api/v1/flags/exp/evaluate?{query}", headers=tokens["viewer"])
        assert response.status == 200
        return dict(await response.json())

    assert await evaluate("user=ann&environment=prod") == {
        "key": "exp",
        "environment": "prod",
        "enabled": True,
        "variant": "blue",
        "reason": "allowlist",
        "value": None,
    }
    assert (await evaluate("user=bob&environment=prod"))["reason"] == "rollout"
    assert (await evaluate("user=bob&environment=dev"))["reason"] == "default"
    assert (await evaluate("user=bob&environment=qa"))["enabled"] is False
    missing = await client.get("/api/v1/flags/exp/evaluate?user=bob", headers=tokens["viewer"])
    assert missing.status == 400


async def test_snapshot_etag_and_304(client, tokens) -> None:
    await create(client, tokens)
    url = "/api/v1/flags/snapshot?environment=prod"
    first = await client.get(url, headers=tokens["viewer"])
    assert first.status == 200
    etag = first.headers["ETag"]
    body = await first.json()
    assert body["environment"] == "prod"
    assert [list(f["environments"]) for f in body["flags"]] == [["prod"]]
    unchanged = await client.get(url, headers={**tokens["viewer"], "If-None-Match": etag})
    assert unchanged.status == 304
    assert unchanged.headers["ETag"] == etag
    weak = await client.get(url, headers={**tokens["viewer"], "If-None-Match": f'"x", W/{etag}'})
    assert weak.status == 304
    # A change elsewhere (staging) leaves prod's snapshot, and its ETag, alone.
    patch = {"environments": {"staging": {"percentage": 50}}}
    await client.patch("/api/v1/flags/new-search", json=patch, headers=tokens["operator"])
    assert (
        await client.get(url, headers={**tokens["viewer"], "If-None-Match": etag})
    ).status == 304
    patch = {"environments": {"prod": {"percentage": 50}}}
    await client.patch("/api/v1/flags/new-search", json=patch, headers=tokens["operator"])
    changed = await client.get(url, headers={**tokens["viewer"], "If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag
    everything = await (await client.get("/api/v1/flags/snapshot", headers=tokens["viewer"])).json()
    assert list(everything["flags"][0]["environments"]) == ["prod", "staging"]


async def test_two_nodes_on_one_state_give_the_same_etag(
    client, tokens, control_url, tmp_path, aiohttp_client
) -> None:
    await create(client, tokens)
    other_plane = await asyncio.to_thread(ControlPlane.open, control_url, tmp_path)
    try:
        other = web.Application()
        setup_control(other, other_plane, anonymous_read=True, ingest_token="")
        other_client = await aiohttp_client(other)
        url = "/api/v1/flags/snapshot?environment=prod"
        one = await client.get(url, headers=tokens["viewer"])
        two = await other_client.get(url)
        assert one.headers["ETag"] == two.headers["ETag"]
        assert await one.read() == await two.read()
    finally:
        await asyncio.to_thread(other_plane.close)


MUTATIONS = [
    ("POST", "/api/v1/flags", {"key": "other"}),
    ("PATCH", "/api/v1/flags/new-search", {"enabled": False}),
    ("DELETE", "/api/v1/flags/new-search", None),
]
READS = [
    "/api/v1/flags",
    "/api/v1/flags/new-search",
    "/api/v1/flags/snapshot?environment=prod",
    "/api/v1/flags/new-search/evaluate?user=u&environment=prod",
]


@pytest.mark.parametrize(("method", "path", "body"), MUTATIONS)
async def test_viewer_gets_403_on_every_change(client, tokens, method, path, body) -> None:
    await create(client, tokens)
    response = await client.request(method, path, json=body, headers=tokens["viewer"])
    assert response.status == 403
    assert "viewer" in (await response.json())["error"]
    doc = await (await client.get("/api/v1/flags/new-search", headers=tokens["viewer"])).json()
    assert doc["enabled"] is True


@pytest.mark.parametrize(("method", "path", "body"), MUTATIONS)
async def test_operator_and_admin_may_change(client, tokens, method, path, body) -> None:
    for role in ("operator", "admin"):
        await client.delete("/api/v1/flags/other", headers=tokens["admin"])
        await client.delete("/api/v1/flags/new-search", headers=tokens["admin"])
        await create(client, tokens)
        response = await client.request(method, path, json=body, headers=tokens[role])
        assert response.status in (200, 201, 204), (role, await response.text())


@pytest.mark.parametrize("path", READS)
async def test_every_role_reads_and_nobody_without_a_token(client, tokens, path) -> None:
    await create(client, tokens)
    for role in ("viewer", "operator", "admin"):
        assert (await client.get(path, headers=tokens[role])).status == 200
    assert (await client.get(path)).status == 401


async def test_changes_are_audited(client, tokens) -> None:
    await create(client, tokens)
    await client.patch(
        "/api/v1/flags/new-search", json={"enabled": False}, headers=tokens["viewer"]
    )
    audit = await (await client.get("/api/v1/audit", headers=tokens["admin"])).json()
    entries = [(e["method"], e["path"], e["status"], e["who"]) for e in audit["audit"]]
    assert ("POST", "/api/v1/flags", 201, "operator-1") in entries
    assert ("PATCH", "/api/v1/flags/new-search", 403) in [e[:3] for e in entries]


def test_concurrent_patches_from_two_nodes_lose_nothing(control_url, tmp_path) -> None:
    # Two connections, as two Shipboard nodes on one database, patch different environments.
    nodes = [ControlPlane.open(control_url, tmp_path) for _ in range(2)]
    try:
        create_flag(nodes[0].db, SEARCH, who="setup", now_ns=1)

        def move(node: ControlPlane, env: str) -> None:
            for percentage in range(1, 21):
                patch = {"environments": {env: {"percentage": percentage}}}
                patch_flag(node.db, "new-search", patch, who=env, now_ns=2)

        threads = [
            threading.Thread(target=move, args=(node, env))
            for node, env in zip(nodes, ("prod", "staging"), strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        stored = get_flag(nodes[0].db, "new-search")
        assert stored.version == 1 + 20 + 20
        assert stored.flag.environments["prod"].percentage == 20.0
        assert stored.flag.environments["staging"].percentage == 20.0
        changes = list_annotations(
            nodes[1].db, 0, 2**62, kinds=["flag"], tags={"environment": "prod"}
        )
        assert [n.title for n in changes[1:3]] == [
            "new-search prod: 10% -> 1%",
            "new-search prod: 1% -> 2%",
        ]
    finally:
        for node in nodes:
            node.close()
