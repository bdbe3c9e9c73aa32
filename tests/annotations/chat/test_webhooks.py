"""Webhook announcements against a local aiohttp receiver, through the queue in the control DB."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, generate_latest

from annotations.chat.announce import Announcer, parse_targets
from annotations.chat.errors import TargetError
from annotations.chat.notify import Notifier
from annotations.chat.webhooks import host_allowed
from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, finish_deploy, start_deploy

Server = Callable[[web.Application], Awaitable[TestServer]]
ALLOW = ("127.0.0.1",)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[ControlDB]:
    opened = await asyncio.to_thread(ControlDB.open, "", tmp_path)
    yield opened
    await asyncio.to_thread(opened.close)


def receiver(failures: int, *, hang: bool = False) -> tuple[web.Application, list[Any]]:
    """Answers 500 to the first `failures` posts (or never answers), then 204."""
    got: list[Any] = []
    calls = [0]

    async def hook(request: web.Request) -> web.Response:
        calls[0] += 1
        if hang:
            await asyncio.sleep(3600)
        if calls[0] <= failures:
            return web.Response(status=500, text="busy")
        got.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app, got


@contextlib.asynccontextmanager
async def delivering(notifier: Notifier) -> AsyncIterator[None]:
    """The notifier delivering to its targets, each kept open meanwhile."""
    async with Announcer(notifier).delivering():
        yield


async def wait_until(predicate: Callable[[], object], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 (plain counters, with no event to wait on)
            await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_slack_webhook_answering_500_for_a_while_gets_the_line_exactly_once(
    db: ControlDB, aiohttp_server: Server
):
    app, got = receiver(failures=3)
    server = await aiohttp_server(app)
    targets = parse_targets([f"http://127.0.0.1:{server.port}/hook"], ALLOW)
    notifier = Notifier(db, targets, public_url="https://dash.example", retry_s=0.05)
    outbox = notifier.outbox
    start = DeployStart("web", "prod", "3f2c1a9", description="faster search")
    async with delivering(notifier):
        deploy_id = await db.run(
            start_deploy, db, start, who="alice", start_ns=1_700_000_000 * 10**9, outbox=outbox
        )
        await db.run(
            finish_deploy,
            db,
            str(deploy_id),
            status="succeeded",
            end_ns=1_700_000_134 * 10**9,
            outbox=outbox,
        )
        await wait_until(lambda: len(got) == 2)
        await asyncio.sleep(0.3)  # nothing more arrives: each line exactly once
    assert got == [
        {"text": '[deploy] alice started web 3f2c1a9 to prod: "faster search"'
                 " https://dash.example/d/services?from=1699998200&to=1700001800"},
        {"text": "[deploy] web 3f2c1a9 succeeded in 2m14s"
                 " https://dash.example/d/services?from=1699998200&to=1700001934"},
    ]  # fmt: skip
    assert notifier.delivered["webhook"] == 2
    assert notifier.retried["webhook"] == 3
    assert await db.run(db.query, "SELECT * FROM announcements") == []


async def test_json_webhook_carries_the_annotation(db: ControlDB, aiohttp_server: Server):
    app, got = receiver(failures=0)
    server = await aiohttp_server(app)
    notifier = Notifier(db, parse_targets([f"json+http://127.0.0.1:{server.port}/hook"], ALLOW))
    async with delivering(notifier):
        await db.run(
            start_deploy,
            db,
            DeployStart("api", "staging", "v2"),
            who="bob",
            start_ns=5,
            outbox=notifier.outbox,
        )
        await wait_until(lambda: len(got) == 1)
    assert got[0]["text"] == "[deploy] bob started api v2 to staging"
    assert got[0]["event"] == "added"
    assert got[0]["annotation"]["tags"] == {"service": "api", "environment": "staging"}


@pytest.mark.slow
async def test_a_webhook_never_answering_is_dropped_after_the_bounded_tries(
    db: ControlDB, aiohttp_server: Server
):
    app, _ = receiver(failures=0, hang=True)
    server = await aiohttp_server(app)
    targets = parse_targets([f"http://127.0.0.1:{server.port}/hook"], ALLOW)
    notifier = Notifier(db, targets, max_tries=3, retry_s=0.05, timeout_s=0.2)
    async with delivering(notifier):
        start = DeployStart("web", "prod", "1")
        await db.run(start_deploy, db, start, who="a", start_ns=1, outbox=notifier.outbox)
        await wait_until(lambda: notifier.dropped["webhook", "tries"] == 1)
    assert notifier.retried["webhook"] == 2
    assert notifier.delivered["webhook"] == 0
    assert await db.run(db.query, "SELECT * FROM announcements") == []
    registry = CollectorRegistry()
    registry.register(notifier.collector())
    text = generate_latest(registry)
    assert b'shipboard_announcements_dropped_total{reason="tries",target="webhook"} 1.0' in text


@pytest.mark.parametrize(
    "url",
    ["https://internal.corp/hook", "http://169.254.169.254/latest", "https://hooks.slack.com.evil/x",
     "ftp://hooks.slack.com/x", "file:///etc/passwd", "https://user:pw@hooks.slack.com/x",
     "gopher://127.0.0.1/x", "https://hooks.slack.com:port/x"],
)  # fmt: skip
def test_webhook_targets_outside_the_allowlist_are_refused(url: str):
    with pytest.raises(TargetError):
        parse_targets([url], ("hooks.slack.com", "*.example.com"))


def test_allowlist_matches_exact_hosts_and_wildcard_subdomains():
    allow = ("hooks.slack.com", "*.example.com")
    assert host_allowed("HOOKS.slack.com.", allow)
    assert host_allowed("chat.example.com", allow)
    assert not host_allowed("example.com", allow)
    assert not host_allowed("evilexample.com", allow)
    assert parse_targets(["https://hooks.slack.com/services/T/B/x"], allow)[0].kind == "webhook"
