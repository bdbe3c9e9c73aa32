"""The alerting routes through the real control app, on SQLite and PostgreSQL: alerts with
their silences, rules with their evaluations, silences by role, and the audit of changes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotations.alerts.instances import record_rule_status, save_instances
from annotations.alerts.model import Instance, Rule, fingerprint
from annotations.alerts.routes import RuleProblem
from annotations.alerts.rules import RuleError
from annotations.alerts.silences import add_silence
from annotations.app import ControlPlane, setup_control
from annotations.control.timespec import format_time

Client = TestClient[Any, Any]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
Headers = dict[str, dict[str, str]]

NS = 10**9
T0 = 1_700_000_000 * NS  # 2023-11-14T22:13:20Z

RULE = Rule.model_validate(
    {
        "name": "HighErrorRate",
        "query": {"metric": "http.errors.count", "agg": "sum", "group_by": ["service"]},
        "ratio_of": {"metric": "http.requests.count", "agg": "sum"},
        "op": ">",
        "threshold": 0.02,
        "for": "5m",
        "labels": {"severity": "page"},
        "annotations": {"summary": "{service} errors at {value:.1%}"},
        "source": "rules/web.yaml:3",
    }
)


PROBLEMS = [RuleError("rules/bad.yaml", 7, "op: Input should be '>', '>=', …")]


def rules_view() -> tuple[Mapping[str, Rule], Sequence[RuleProblem]]:
    return {RULE.name: RULE}, PROBLEMS


def alert(
    state: str,
    service: str,
    active_ns: int | None,
    fired_ns: int | None = None,
    last_held_ns: int | None = None,
    resolved_ns: int | None = None,
) -> Instance:
    labels = {"alertname": "HighErrorRate", "severity": "page", "service": service}
    return Instance(
        rule="HighErrorRate",
        labels=labels,
        fingerprint=fingerprint(labels),
        state=state,
        value=0.031,
        evaluated_ns=T0 + 600 * NS,
        active_ns=active_ns,
        fired_ns=fired_ns,
        last_held_ns=last_held_ns,
        resolved_ns=resolved_ns,
        annotations={"summary": f"{service} errors at 3.1%"},
    )


FIRING = alert("firing", "web", active_ns=T0, fired_ns=T0 + 300 * NS, last_held_ns=T0)
PENDING = alert("pending", "api", active_ns=T0 + 500 * NS, last_held_ns=T0 + 500 * NS)
RESOLVED = alert("resolved", "db", active_ns=T0, fired_ns=T0, resolved_ns=T0 + 550 * NS)
FAILED = alert("error", "queue", active_ns=None)


@pytest.fixture
async def client(control: ControlPlane, aiohttp_client: AiohttpClient) -> Client:
    app = web.Application()
    setup_control(app, control, anonymous_read=False, ingest_token="", rules_view=rules_view)
    return await aiohttp_client(app)


def seed(control: ControlPlane) -> int:
    """The four alerts, and a silence of web's; the silence's id."""
    db = control.db
    with db.transaction():
        save_instances(
            db, "HighErrorRate", {i.fingerprint: i for i in (FIRING, PENDING, RESOLVED, FAILED)}
        )
        now_ns = time.time_ns()
        silence = add_silence(db, {"service": "w*"}, now_ns + 3600 * NS, "known", "bob", now_ns)
        add_silence(db, {"service": "api"}, now_ns + 1, "lapsed", "bob", now_ns)  # over at once
    return silence.id


async def test_alerts_show_state_since_and_the_silences_matching_them(
    client: Client, control: ControlPlane, tokens: Headers
) -> None:
    silence_id = await control.db.run(seed, control)
    response = await client.get("/api/v1/alerts", headers=tokens["viewer"])
    assert response.status == 200
    alerts = {a["labels"]["service"]: a for a in (await response.json())["alerts"]}
    assert alerts["web"] == {
        "rule": "HighErrorRate",
        "labels": {"alertname": "HighErrorRate", "severity": "page", "service": "web"},
        "state": "firing",
        "value": 0.031,
        "since": "2023-11-14T22:18:20.000Z",
        "silenced_by": [silence_id],
        "annotations": {"summary": "web errors at 3.1%"},
        "fingerprint": FIRING.fingerprint,
        "error": "",
    }
    assert alerts["api"]["since"] == "2023-11-14T22:21:40.000Z"  # pending: since it held
    assert alerts["api"]["silenced_by"] == []  # its silence has lapsed
    assert alerts["db"]["since"] == "2023-11-14T22:22:30.000Z"  # resolved: since it resolved
    assert alerts["queue"]["since"] == "2023-11-14T22:23:20.000Z"  # error: its last evaluation


async def test_alerts_are_filtered_by_state(
    client: Client, control: ControlPlane, tokens: Headers
) -> None:
    await control.db.run(seed, control)
    response = await client.get("/api/v1/alerts?state=pending,firing", headers=tokens["viewer"])
    assert sorted(a["state"] for a in (await response.json())["alerts"]) == ["firing", "pending"]
    response = await client.get("/api/v1/alerts?state=burning", headers=tokens["viewer"])
    assert response.status == 400
    assert "state must be among" in (await response.json())["error"]


async def test_rules_show_their_definition_place_last_evaluation_and_file_errors(
    client: Client, control: ControlPlane, tokens: Headers
) -> None:
    response = await client.get("/api/v1/rules", headers=tokens["viewer"])
    body = await response.json()
    assert body["errors"] == [
        {"file": "rules/bad.yaml", "line": 7, "message": "op: Input should be '>', '>=', …"}
    ]
    [never] = body["rules"]
    assert (never["last_evaluation"], never["duration_s"], never["error"]) == (None, None, "")
    await control.db.run(
        record_rule_status, control.db, "HighErrorRate", RULE.source, T0, 0.004, "boom"
    )
    [rule] = (await (await client.get("/api/v1/rules", headers=tokens["viewer"])).json())["rules"]
    assert rule["name"] == "HighErrorRate"
    assert (rule["file"], rule["line"]) == ("rules/web.yaml", 3)
    assert rule["query"] == {
        "metric": "http.errors.count",
        "tags": {},
        "agg": "sum",
        "group_by": ["service"],
    }
    assert rule["ratio_of"]["metric"] == "http.requests.count"
    assert (rule["op"], rule["threshold"], rule["for"], rule["window"]) == (">", 0.02, "5m", "5m")
    assert rule["labels"] == {"severity": "page"}
    assert rule["annotations"] == {"summary": "{service} errors at {value:.1%}"}
    assert (rule["last_evaluation"], rule["duration_s"], rule["error"]) == (
        "2023-11-14T22:13:20.000Z",
        0.004,
        "boom",
    )


async def test_a_node_without_an_engine_lists_no_rules(
    control: ControlPlane, aiohttp_client: AiohttpClient, tokens: Headers
) -> None:
    app = web.Application()
    setup_control(app, control, anonymous_read=False, ingest_token="")
    client = await aiohttp_client(app)
    response = await client.get("/api/v1/rules", headers=tokens["viewer"])
    assert await response.json() == {"rules": [], "errors": []}


SILENCE = {
    "matchers": {"alertname": "HighErrorRate", "host": "web*"},
    "ends_at": "+2h",
    "comment": "deploying web",
}


async def test_an_operator_silences_and_expires_and_a_viewer_only_reads(
    client: Client, tokens: Headers
) -> None:
    refused = await client.post("/api/v1/silences", json=SILENCE, headers=tokens["viewer"])
    assert refused.status == 403
    before_ns = time.time_ns()
    response = await client.post("/api/v1/silences", json=SILENCE, headers=tokens["operator"])
    assert response.status == 201, await response.text()
    silence = await response.json()
    assert silence["matchers"] == SILENCE["matchers"]
    assert (silence["state"], silence["who"], silence["comment"]) == (
        "active",
        "operator-1",
        "deploying web",
    )
    assert before_ns + 7200 * NS <= silence["ends_ns"] <= time.time_ns() + 7200 * NS
    assert silence["ends_at"] == format_time(silence["ends_ns"])

    listed = await client.get("/api/v1/silences", headers=tokens["viewer"])
    assert (await listed.json())["silences"] == [silence]
    refused = await client.delete(f"/api/v1/silences/{silence['id']}", headers=tokens["viewer"])
    assert refused.status == 403
    expired = await client.delete(f"/api/v1/silences/{silence['id']}", headers=tokens["operator"])
    assert expired.status == 200
    assert (await expired.json())["state"] == "expired"
    listed = await client.get("/api/v1/silences", headers=tokens["viewer"])
    assert [s["state"] for s in (await listed.json())["silences"]] == ["expired"]


async def test_silences_need_a_token(client: Client) -> None:
    assert (await client.get("/api/v1/silences")).status == 401
    assert (await client.post("/api/v1/silences", json=SILENCE)).status == 401
    assert (await client.get("/api/v1/alerts")).status == 401


async def test_posting_with_the_id_updates_that_silence(client: Client, tokens: Headers) -> None:
    first = await client.post("/api/v1/silences", json=SILENCE, headers=tokens["operator"])
    silence = await first.json()
    update = SILENCE | {"id": silence["id"], "ends_at": "2200-01-01T00:00:00Z", "comment": "more"}
    response = await client.post("/api/v1/silences", json=update, headers=tokens["operator"])
    assert response.status == 200
    updated = await response.json()
    assert (updated["id"], updated["ends_at"], updated["comment"]) == (
        silence["id"],
        "2200-01-01T00:00:00.000Z",
        "more",
    )
    changed = SILENCE | {"id": silence["id"], "matchers": {"alertname": "Other"}}
    response = await client.post("/api/v1/silences", json=changed, headers=tokens["operator"])
    assert response.status == 201
    assert (await response.json())["id"] != silence["id"]
    unknown = SILENCE | {"id": 999}
    response = await client.post("/api/v1/silences", json=unknown, headers=tokens["operator"])
    assert response.status == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({k: v for k, v in SILENCE.items() if k != "ends_at"}, 400, "ends_at"),
        ({k: v for k, v in SILENCE.items() if k != "comment"}, 400, "comment"),
        (SILENCE | {"comment": ""}, 400, "comment"),
        (SILENCE | {"ends_at": "-1m"}, 400, "in the future"),
        (SILENCE | {"ends_at": "soonish"}, 400, "is not a time"),
        (SILENCE | {"matchers": {}}, 400, "matchers"),
        (SILENCE | {"matchers": {"host": 1}}, 400, "matchers.host"),
        (SILENCE | {"matchers": {"alertname": "*"}}, 400, "must not match an empty value"),
        (SILENCE | {"id": "3"}, 400, "id"),
        (SILENCE | {"id": 2**63}, 400, "id"),
        (SILENCE | {"comment": "a\x00b"}, 400, "NUL"),
    ],
)
async def test_bad_silences_get_a_json_error_naming_the_field(
    client: Client, tokens: Headers, body: dict[str, Any], status: int, message: str
) -> None:
    response = await client.post("/api/v1/silences", json=body, headers=tokens["operator"])
    assert response.status == status
    assert message in (await response.json())["error"]


async def test_deleting_an_unknown_or_malformed_id(client: Client, tokens: Headers) -> None:
    response = await client.delete("/api/v1/silences/77", headers=tokens["operator"])
    assert (response.status, await response.json()) == (404, {"error": "no silence 77"})
    for ref in ("abc", "%C2%B2", "-1"):  # ² is a digit to str.isdigit
        response = await client.delete(f"/api/v1/silences/{ref}", headers=tokens["operator"])
        assert response.status == 400
    response = await client.delete(f"/api/v1/silences/{2**64}", headers=tokens["operator"])
    assert response.status == 404


async def test_silence_changes_are_audited_and_reads_are_not(
    client: Client, tokens: Headers
) -> None:
    await client.post("/api/v1/silences", json=SILENCE, headers=tokens["viewer"])
    created = await client.post("/api/v1/silences", json=SILENCE, headers=tokens["operator"])
    silence_id = (await created.json())["id"]
    await client.delete(f"/api/v1/silences/{silence_id}", headers=tokens["admin"])
    await client.get("/api/v1/silences", headers=tokens["viewer"])
    await client.get("/api/v1/alerts", headers=tokens["viewer"])
    response = await client.get("/api/v1/audit?from=-1h", headers=tokens["admin"])
    entries = [
        (e["who"], e["method"], e["path"], e["status"]) for e in (await response.json())["audit"]
    ]
    assert entries == [
        ("admin-1", "DELETE", f"/api/v1/silences/{silence_id}", 200),
        ("operator-1", "POST", "/api/v1/silences", 201),
        ("viewer-1", "POST", "/api/v1/silences", 403),
    ]
    detail = (await response.json())["audit"][1]["detail"]
    assert '"deploying web"' in detail


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
SILENCE_FIELDS = st.sampled_from(["matchers", "ends_at", "ends_at_ns", "comment", "who", "id"])
SILENCE_BODIES = st.fixed_dictionaries(
    {"matchers": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)},
    optional={
        "ends_at": st.sampled_from(["+2h", "-1h", "2200-01-01", "x"]) | JSON_VALUES,
        "comment": st.text(max_size=10) | st.just("\x00"),
        "who": st.text(max_size=10) | st.just("\x00"),
        "id": st.integers(),
    },
) | st.dictionaries(SILENCE_FIELDS, JSON_VALUES, max_size=6)


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=SILENCE_BODIES, ref=st.text(max_size=25))
async def test_arbitrary_silences_and_ids_are_answered_never_a_500(
    client: Client, tokens: Headers, body: dict[str, Any], ref: str
) -> None:
    response = await client.post("/api/v1/silences", json=body, headers=tokens["operator"])
    assert response.status in (200, 201, 400, 404), await response.text()
    path = "/api/v1/silences/" + quote(ref, safe="")
    response = await client.delete(path, headers=tokens["operator"])
    assert response.status in (200, 400, 404, 405), await response.text()
    assert response.content_type == "application/json"


@pytest.mark.parametrize("what", ["tokens", "silences"])
@pytest.mark.parametrize(
    ("ref", "status"), [("²", 400), ("-1", 400), ("x", 400), ("99999999999999999999", 404)]
)
async def test_a_path_id_that_is_no_row_id_is_a_400_or_a_404_never_a_500(
    client: Client, tokens: Headers, what: str, ref: str, status: int
) -> None:
    # `²` is a digit to str.isdigit but not to int; a number past BIGINT names no row.
    response = await client.delete(f"/api/v1/{what}/{ref}", headers=tokens["admin"])
    assert response.status == status
    assert what[:-1] in (await response.json())["error"]
