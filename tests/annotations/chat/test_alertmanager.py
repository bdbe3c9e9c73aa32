"""Alertmanager-style targets: their URLs and names, and the payload that a real local receiver
gets through the notifier, as queued by the grouping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from annotations.alerts.dispatch import dispatch
from annotations.alerts.model import Grouping, Instance, fingerprint
from annotations.chat.alertmanager import AlertmanagerTarget
from annotations.chat.announce import Announcer, parse_targets
from annotations.chat.errors import TargetError
from annotations.chat.notify import Notifier
from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, start_deploy

Server = Callable[[web.Application], Awaitable[TestServer]]
ALLOW = ("127.0.0.1", "*.example.com")
NS = 10**9
T0 = 1_700_000_000 * NS


@pytest.fixture
async def db(control_url: str, tmp_path: Path) -> AsyncIterator[ControlDB]:
    """A control DB on SQLite or PostgreSQL, opened and closed off the event loop."""
    opened = await asyncio.to_thread(ControlDB.open, control_url, tmp_path)
    yield opened
    await asyncio.to_thread(opened.close)


def test_the_url_sets_the_grouping_and_the_rest_goes_to_the_receiver():
    target = AlertmanagerTarget(
        "alertmanager+http://127.0.0.1:9093/hook?group_by=alertname,service&group_wait=1s"
        "&group_interval=2m&repeat_interval=1h&token=s3cret",
        ALLOW,
        "oncall",
    )
    assert (target.kind, target.name) == ("alertmanager", "oncall")
    assert target.url == "http://127.0.0.1:9093/hook?token=s3cret"
    assert target.grouping == Grouping(
        "oncall",
        group_by=("alertname", "service"),
        group_wait_ns=NS,
        group_interval_ns=120 * NS,
        repeat_interval_ns=3600 * NS,
    )


def test_alertmanagers_defaults_and_a_name_that_hides_the_path():
    target = AlertmanagerTarget("alertmanager+https://am.example.com/hook/s3cret", ALLOW)
    assert target.url == "https://am.example.com/hook/s3cret"
    assert target.name.startswith("alertmanager+https://am.example.com/…")
    assert "s3cret" not in target.name
    assert target.grouping == Grouping(target.name)
    assert target.grouping.group_by == ("alertname",)
    assert (target.grouping.group_wait_ns, target.grouping.repeat_interval_ns) == (
        30 * NS,
        4 * 3600 * NS,
    )
    # The grouping options do not rename the target: its queue stays its own.
    regrouped = AlertmanagerTarget(
        "alertmanager+https://am.example.com/hook/s3cret?group_wait=5s", ALLOW
    )
    assert regrouped.name == target.name


@pytest.mark.parametrize(
    "url",
    ["alertmanager+http://10.0.0.1:9093/hook", "alertmanager+https://example.com/hook",
     "alertmanager+http://169.254.169.254/latest", "alertmanager+https://u:p@am.example.com/x",
     "alertmanager+http://127.0.0.1:port/x"],
)  # fmt: skip
def test_the_webhook_allowlist_refuses_other_hosts(url: str):
    with pytest.raises(TargetError):
        parse_targets([url], ALLOW)


@pytest.mark.parametrize(
    ("query", "says"),
    [("group_wait=soon", "group_wait"), ("group_interval=0s", "more than 0s"),
     ("repeat_interval=0", "more than 0s"), ("group_wiat=1s", "unknown option"),
     ("group_by=a b", "label names"), ("group_by=a,,b", "label names"),
     ("group_by=", "label names"),
     ("group_wait=1s&group_wait=2s", "twice")],
)  # fmt: skip
def test_bad_grouping_options_are_refused_at_startup(query: str, says: str):
    with pytest.raises(TargetError, match=says):
        parse_targets([f"oncall=alertmanager+http://127.0.0.1/hook?{query}"], ALLOW)


labels = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(
    st.one_of(st.just(("...",)), st.lists(labels, min_size=1, max_size=4).map(tuple)),
    st.integers(0, 10**6),
    st.integers(1, 10**6),
    st.integers(1, 10**6),
)
def test_a_grouping_written_in_the_url_parses_back(
    group_by: tuple[str, ...], wait_s: int, interval_s: int, repeat_s: int
):
    query = urlencode(
        {
            "group_by": ",".join(group_by),
            "group_wait": f"{wait_s}s",
            "group_interval": f"{interval_s}s",
            "repeat_interval": f"{repeat_s}s",
        }
    )
    target = AlertmanagerTarget(f"alertmanager+http://127.0.0.1/h?{query}", ALLOW, "t")
    assert target.grouping == Grouping("t", group_by, wait_s * NS, interval_s * NS, repeat_s * NS)
    assert target.url == "http://127.0.0.1/h"


@given(st.text(max_size=60))
def test_any_query_is_a_target_or_a_target_error(query: str):
    try:
        target = AlertmanagerTarget(f"alertmanager+http://127.0.0.1/h?{query}", ALLOW)
    except TargetError:
        return
    assert target.grouping.group_interval_ns > 0


def test_named_targets_and_names_given_twice():
    targets = parse_targets(
        [
            "oncall=alertmanager+http://127.0.0.1:9093/hook",
            "team-chat=json+https://hooks.example.com/x",
            "https://hooks.example.com/y",
            "ops=irc://bot@irc.example.com:6667/#ops",
        ],
        ALLOW,
    )
    assert [t.name for t in targets[:2]] == ["oncall", "team-chat"]
    assert targets[2].name.startswith("https://hooks.example.com/…")
    assert [t.kind for t in targets] == ["alertmanager", "webhook", "webhook", "irc"]
    assert targets[3].name == "ops"
    with pytest.raises(TargetError, match="'oncall' is listed twice"):
        parse_targets(
            ["oncall=https://hooks.example.com/x", "oncall=alertmanager+http://127.0.0.1/h"],
            ALLOW,
        )
    with pytest.raises(TargetError, match="name"):
        parse_targets(["on call=https://hooks.example.com/x"], ALLOW)
    with pytest.raises(TargetError, match="alertmanager"):
        parse_targets(["oncall=ftp://127.0.0.1/x"], ALLOW)


async def test_annotations_are_never_queued_for_alertmanager_targets(db: ControlDB):
    targets = parse_targets(
        ["oncall=alertmanager+http://127.0.0.1/hook", "chat=json+http://127.0.0.1/hook"], ALLOW
    )
    announcer = Announcer(Notifier(db, targets))
    assert announcer.plain_targets == ("chat",)
    assert announcer.groupings == [Grouping("oncall")]
    start = DeployStart("web", "prod", "v42")
    await db.run(start_deploy, db, start, who="alice", start_ns=T0, outbox=announcer.outbox)
    rows = await db.run(db.query, "SELECT target FROM announcements")
    assert [row["target"] for row in rows] == ["chat"]


def receiver() -> tuple[web.Application, list[Any]]:
    got: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=200, text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app, got


async def test_the_receiver_gets_the_grouped_payload_through_the_notifier(
    db: ControlDB, aiohttp_server: Server
):
    app, got = receiver()
    server = await aiohttp_server(app)
    url = f"oncall=alertmanager+http://127.0.0.1:{server.port}/hook?group_wait=0s"
    announcer = Announcer(Notifier(db, parse_targets([url], ALLOW)))
    labels = {"alertname": "HighErrorRate", "service": "web"}
    alert = Instance(
        rule="HighErrorRate",
        labels=labels,
        fingerprint=fingerprint(labels),
        state="firing",
        value=0.031,
        evaluated_ns=T0,
        active_ns=T0,
        fired_ns=T0,
        annotations={"summary": "web errors at 3.1%"},
    )
    queued = await db.run(
        dispatch, db, announcer.groupings, {alert.fingerprint: alert}, [], T0, "https://dash"
    )
    assert queued == 1
    async with announcer.delivering():
        async with asyncio.timeout(10):
            while not got:  # noqa: ASYNC110 (a list the receiver fills, with no event)
                await asyncio.sleep(0.02)
    assert got == [
        {
            "version": "4",
            "status": "firing",
            "receiver": "oncall",
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": labels,
            "commonAnnotations": {"summary": "web errors at 3.1%"},
            "externalURL": "https://dash",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {"summary": "web errors at 3.1%"},
                    "startsAt": "2023-11-14T22:13:20.000Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "https://dash/d/services?from=1699998200&to=1700001800",
                    "fingerprint": alert.fingerprint,
                }
            ],
        }
    ]
    assert announcer.notifier.delivered["alertmanager"] == 1
    assert await db.run(db.query, "SELECT * FROM announcements") == []
