"""The PostgreSQL control DB going away and coming back, on a server of the module's own: calls
fail fast with UnavailableError meanwhile, work again once it is back, and write nothing twice."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from annotations.app import AUDIT_BACKLOG, ControlPlane
from annotations.chat.announce import Announcer, parse_targets
from annotations.chat.bot import Bot
from annotations.chat.notify import Notifier
from annotations.control.connections import CHECK_IDLE_S, RECONNECT_GIVE_UP_S
from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, start_deploy
from annotations.control.errors import UnavailableError
from annotations.control.notes import add_annotation, list_annotations
from tests.annotations.control.test_api import DEPLOY, AiohttpClient, Client, Headers, make_app
from tests.postgres import OwnPostgres

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

T = TypeVar("T")
INSERT_FLAG = "INSERT INTO flags (key, doc, version, updated_at) VALUES (?, '{}', 1, 1)"


@pytest.fixture
def db(own_pg_url: str, tmp_path: Path) -> Iterator[ControlDB]:
    opened = ControlDB.open(own_pg_url, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def control(own_pg_url: str, tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane.open(own_pg_url, tmp_path)
    yield plane
    plane.close()


@pytest.fixture
async def client(control: ControlPlane, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(make_app(control))


async def answered(db: ControlDB, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn`'s result, called again until the DB is back to answer it."""
    while True:
        try:
            return await db.run(fn, *args, **kwargs)
        except UnavailableError:
            await asyncio.sleep(0.1)


def timed_refusal(db: ControlDB) -> float:
    """Seconds a read took to be refused with UnavailableError (fails if it was answered)."""
    started = time.monotonic()
    with pytest.raises(UnavailableError) as refused:
        db.query("SELECT key FROM flags")
    assert str(refused.value).startswith("control database unavailable: ")
    assert str(refused.value).endswith(", retrying")
    return time.monotonic() - started


def wait_until_answered(db: ControlDB, timeout_s: float = 10.0) -> float:
    """Seconds until a read is answered again, calling about 20 times a second."""
    started = time.monotonic()
    while True:
        try:
            db.query("SELECT 1 AS one")
            return time.monotonic() - started
        except UnavailableError:
            if time.monotonic() - started > timeout_s:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_calls_are_refused_within_a_second_while_down_and_answered_again_once_back(
    db: ControlDB, own_pg: OwnPostgres, mode: str
) -> None:
    db.execute(INSERT_FLAG, ("before",))
    own_pg.stop(mode)
    refusals = [timed_refusal(db) for _ in range(20)]
    assert max(refusals) < 1.0
    assert sorted(refusals)[len(refusals) // 2] < 0.05  # once known to be away: at once
    own_pg.start()
    assert wait_until_answered(db) < 10.0
    db.execute(INSERT_FLAG, ("after",))
    assert [r["key"] for r in db.query("SELECT key FROM flags ORDER BY key")] == [
        "after",
        "before",
    ]
    assert db.refused >= 20


def test_a_transaction_cut_by_the_outage_writes_nothing(db: ControlDB, own_pg: OwnPostgres) -> None:
    def cut() -> None:
        with db.transaction():
            db.execute(INSERT_FLAG, ("cut",))
            own_pg.stop("immediate")
            db.execute(INSERT_FLAG, ("cut-too",))

    with pytest.raises(UnavailableError):
        cut()
    own_pg.start()
    wait_until_answered(db)
    assert db.query("SELECT key FROM flags") == []


def test_a_deploy_retried_with_its_idempotency_key_after_the_outage_is_recorded_once(
    db: ControlDB, own_pg: OwnPostgres
) -> None:
    start = DeployStart("web", "prod", "3f2c1a9")
    own_pg.stop("immediate")
    with pytest.raises(UnavailableError):
        start_deploy(db, start, who="ci", start_ns=5, idempotency_key="web-3f2c1a9")
    own_pg.start()
    wait_until_answered(db)
    ids = {
        start_deploy(db, start, who="ci", start_ns=5, idempotency_key="web-3f2c1a9")
        for _ in range(3)
    }
    assert len(ids) == 1
    assert [a.id for a in list_annotations(db, 0, 10)] == list(ids)


def test_a_restart_while_idle_refuses_no_call(db: ControlDB, own_pg: OwnPostgres) -> None:
    """Every pooled connection is dead after a restart nobody saw: the first call's check finds
    that out, the dead ones are replaced, and the call itself still gets an answer."""
    barrier = threading.Barrier(4)

    def busy() -> None:
        barrier.wait()
        db.query("SELECT pg_sleep(0.2)")

    threads = [threading.Thread(target=busy) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(CHECK_IDLE_S)  # idle: a connection that worked just now is used unchecked
    own_pg.stop("immediate")
    own_pg.start()
    for n in range(10):
        add_annotation(db, "note", start_ns=n, title=f"n{n}", who="ops")
    assert db.refused == 0
    assert len(list_annotations(db, 0, 10)) == 10


def test_a_server_that_stays_away_is_refused_fast_for_its_whole_absence(
    db: ControlDB, own_pg: OwnPostgres
) -> None:
    """Past the pool's reconnection give-up, calls are still refused at once, and a fresh
    reconnection starts with the next call."""
    own_pg.stop("immediate")
    deadline = time.monotonic() + 2.5 * RECONNECT_GIVE_UP_S
    slowest = 0.0
    while time.monotonic() < deadline:
        slowest = max(slowest, timed_refusal(db))
        time.sleep(0.1)
    assert slowest < 1.0
    own_pg.start()
    assert wait_until_answered(db) < 2.0


async def test_the_api_answers_503_while_down_then_keeps_the_audit_and_records_a_resent_deploy_once(
    client: Client, tokens: Headers, own_pg: OwnPostgres
) -> None:
    deploy = DEPLOY | {"idempotency_key": "web-abc123-1"}
    operator, admin = tokens["operator"], tokens["admin"]
    await asyncio.to_thread(own_pg.stop, "immediate")
    calls: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = [
        ("POST", "/api/v1/deploys", deploy, operator),
        ("GET", "/api/v1/deploys", None, operator),
        ("POST", "/api/v1/annotations", {"title": "db failover"}, operator),
        ("PATCH", "/api/v1/flags/new-search", {"enabled": False}, operator),
        ("GET", "/api/v1/audit", None, admin),
    ]
    for method, path, body, headers in calls:
        started = time.monotonic()
        response = await client.request(method, path, json=body, headers=headers)
        assert time.monotonic() - started < 1.0
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        error = (await response.json())["error"]
        assert error.startswith("control database unavailable: ")
        assert error.endswith(", retrying")
    backlog = client.app[AUDIT_BACKLOG]
    assert (backlog.kept, backlog.written, len(backlog)) == (3, 0, 3)

    await asyncio.to_thread(own_pg.start)
    resent = 0  # the client resends until it is answered; the refused tries are audited too
    async with asyncio.timeout(10):
        while True:
            response = await client.post("/api/v1/deploys", json=deploy, headers=operator)
            if response.status != 503:
                break
            resent += 1
            await asyncio.sleep(0.2)
    assert response.status == 201
    first = await response.json()
    again = await client.post("/api/v1/deploys", json=deploy, headers=operator)
    assert (await again.json())["id"] == first["id"]
    listed = await (await client.get("/api/v1/deploys", headers=operator)).json()
    assert [d["id"] for d in listed["deploys"]] == [first["id"]]

    async with asyncio.timeout(10):
        while len(backlog):  # noqa: ASYNC110 (written by the app's own task, no event to wait on)
            await asyncio.sleep(0.1)
    # Calls answered while older entries still waited queue behind them, so that order holds.
    assert backlog.kept >= 3 + resent
    assert (backlog.written, backlog.dropped) == (backlog.kept, 0)
    audit = await (await client.get("/api/v1/audit", headers=admin)).json()
    refused = [(e["method"], e["path"], e["status"]) for e in audit["audit"] if e["status"] == 503]
    assert sorted(refused) == [
        ("PATCH", "/api/v1/flags/new-search", 503),
        ("POST", "/api/v1/annotations", 503),
        *[("POST", "/api/v1/deploys", 503)] * (1 + resent),
    ]
    answered = [e["status"] for e in audit["audit"] if e["path"] == "/api/v1/deploys"]
    assert sorted(answered) == [201, 201] + [503] * (1 + resent)


async def test_announcements_wait_out_the_outage_and_a_delivered_one_is_settled_not_resent(
    own_pg: OwnPostgres, own_pg_url: str, tmp_path: Path, aiohttp_server: Any
) -> None:
    """The receiver stops PostgreSQL before it answers the first announcement: the notifier
    cannot record the delivery, waits for the DB, then records it; the second announcement,
    made once the DB is back, is delivered too; each exactly once."""
    got: list[str] = []
    restarted = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        got.append((await request.json())["text"])
        if len(got) == 1:
            await asyncio.to_thread(own_pg.stop, "immediate")

            async def restart() -> None:
                await asyncio.sleep(1.5)
                await asyncio.to_thread(own_pg.start)
                restarted.set()

            background.append(asyncio.create_task(restart()))
        return web.Response(status=204)

    background: list[asyncio.Task[None]] = []
    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    server = await aiohttp_server(receiver)
    db = await asyncio.to_thread(ControlDB.open, own_pg_url, tmp_path)
    notifier = Notifier(db, parse_targets([f"http://127.0.0.1:{server.port}/hook"], ("127.0.0.1",)))
    outbox = notifier.outbox
    try:
        async with Announcer(notifier).delivering():
            start = DeployStart("web", "prod", "v1")
            await db.run(start_deploy, db, start, who="a", start_ns=1, outbox=outbox)
            await asyncio.wait_for(restarted.wait(), 10)
            async with asyncio.timeout(10):
                # The delivered row is settled (deleted) once the DB is back: never sent again.
                while await answered(db, db.query, "SELECT id FROM announcements"):  # noqa: ASYNC110 (the queue is a table)
                    await asyncio.sleep(0.1)
                start = DeployStart("web", "prod", "v2")
                await answered(db, start_deploy, db, start, who="a", start_ns=2, outbox=outbox)
                while len(got) < 2:  # noqa: ASYNC110 (a plain list, with no event to wait on)
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # nothing more arrives
    finally:
        await asyncio.to_thread(db.close)
    assert got == ["[deploy] a started web v1 to prod", "[deploy] a started web v2 to prod"]
    assert notifier.delivered["webhook"] == 2
    assert notifier.retried["webhook"] == 0


async def test_the_chat_bot_answers_that_the_control_db_is_away(
    own_pg: OwnPostgres, own_pg_url: str, tmp_path: Path
) -> None:
    db = await asyncio.to_thread(ControlDB.open, own_pg_url, tmp_path)
    try:
        await asyncio.to_thread(own_pg.stop, "immediate")
        for command in ("!deploys", "!flags prod", "!flag new-search"):
            [line] = await Bot(db).answer(command)
            assert line == "control database unavailable: connection lost, retrying"
    finally:
        await asyncio.to_thread(db.close)
