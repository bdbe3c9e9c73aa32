"""`GET /api/v1/rules` through the real control app (SQLite and PostgreSQL): a rule's
`on_firing` as written, and the knob it holds now with when it will be set back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from annotations.alerts.knob_actions import KnobActions
from annotations.alerts.model import Instance, Rule, fingerprint
from annotations.alerts.routes import RuleProblem
from annotations.app import ControlPlane, setup_control
from annotations.control.outbox import Outbox
from annotations.flags.store import create_flag

Client = TestClient[Any, Any]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
NS = 10**9
T0 = 1_700_000_000 * NS  # 2023-11-14T22:13:20Z

RULES = {
    name: Rule.model_validate(
        {
            "name": name,
            "query": {"metric": "search.p99", "agg": "max"},
            "op": ">",
            "threshold": 0.5,
            "source": "rules/search.yaml:1",
            **extra,
        }
    )
    for name, extra in [
        (
            "SlowSearch",
            {"on_firing": {"flag": "search.max_results", "environment": "prod", "set": 20}},
        ),
        ("Plain", {}),
    ]
}


def rules_view() -> tuple[Mapping[str, Rule], Sequence[RuleProblem]]:
    return RULES, []


def firing(rule: str) -> dict[str, Instance]:
    labels = {"alertname": rule}
    instance = Instance(rule, labels, fingerprint(labels), "firing", 0.9, T0, T0, T0, T0)
    return {instance.fingerprint: instance}


@pytest.fixture
async def client(control: ControlPlane, aiohttp_client: AiohttpClient) -> Client:
    app = web.Application()
    setup_control(app, control, anonymous_read=False, ingest_token="", rules_view=rules_view)
    return await aiohttp_client(app)


async def rules(client: Client, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/v1/rules", headers=headers)
    assert response.status == 200
    return {rule["name"]: rule for rule in (await response.json())["rules"]}


async def test_rules_show_on_firing_and_the_knob_held_until_it_is_set_back(
    client: Client, control: ControlPlane, tokens: dict[str, dict[str, str]]
) -> None:
    db = control.db
    doc = {"key": "search.max_results", "environments": {"prod": {"value": 50}}}
    await db.run(create_flag, db, doc, who="alice", now_ns=T0 - NS)
    shown = await rules(client, tokens["viewer"])
    assert shown["SlowSearch"]["on_firing"] == {
        "flag": "search.max_results",
        "environment": "prod",
        "set": 20,
        "revert_after": "10m",
    }
    assert shown["SlowSearch"]["knob_action"] is None
    assert (shown["Plain"]["on_firing"], shown["Plain"]["knob_action"]) == (None, None)

    knobs = KnobActions(db, Outbox())
    await db.run(knobs.step, RULES, firing("SlowSearch"), T0)
    held = {
        "flag": "search.max_results",
        "environment": "prod",
        "set": 20,
        "previous": 50,
        "since": "2023-11-14T22:13:20.000Z",
        "resolved_since": None,
        "reverts_at": None,
    }
    assert (await rules(client, tokens["viewer"]))["SlowSearch"]["knob_action"] == held

    await db.run(knobs.step, RULES, {}, T0 + 60 * NS)  # resolved: set back 10 minutes on
    assert (await rules(client, tokens["viewer"]))["SlowSearch"]["knob_action"] == {
        **held,
        "resolved_since": "2023-11-14T22:14:20.000Z",
        "reverts_at": "2023-11-14T22:24:20.000Z",
    }
    await db.run(knobs.step, RULES, {}, T0 + 660 * NS)
    assert (await rules(client, tokens["viewer"]))["SlowSearch"]["knob_action"] is None
