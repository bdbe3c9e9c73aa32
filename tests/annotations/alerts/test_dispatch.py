"""Alertmanager's grouping: what each target is sent when, on SQLite and PostgreSQL, with the
times given by the test; the payload built from alerts; the pure step's invariants."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from annotations.alerts.dispatch import (
    FIRING_ENDS_AT,
    GroupState,
    announcement,
    dispatch,
    payload,
    step,
)
from annotations.alerts.model import Grouping, Instance, Rule, Selector, fingerprint
from annotations.alerts.silences import add_silence, list_silences
from annotations.control.db import ControlDB

NS = 10**9
T0 = 1_700_000_000 * NS
URL = "https://dash.example"
ONCALL = Grouping("oncall", group_by=("alertname", "service"))  # 30s, 5m, 4h


# Fired at T0 after a minute pending; each test's alerts differ by their labels.
FIRED = Instance("HighErrorRate", {}, "", "firing", 0.031, T0, active_ns=T0 - 60 * NS, fired_ns=T0)


def alert(**labels: str) -> Instance:
    full = {"alertname": "HighErrorRate", **labels}
    notes = {"summary": f"{labels.get('host', '?')} errors at 3.1%", "team": "search"}
    return replace(FIRED, labels=full, fingerprint=fingerprint(full), annotations=notes)


def by_fp(*instances: Instance) -> dict[str, Instance]:
    return {i.fingerprint: i for i in instances}


def resolved(instance: Instance, at_ns: int) -> Instance:
    return replace(instance, state="resolved", resolved_ns=at_ns, evaluated_ns=at_ns)


def run(
    db: ControlDB, instances: dict[str, Instance], at_s: float, *groupings: Grouping, **kw: Any
) -> list[dict[str, Any]]:
    """Dispatch at T0 + at_s; the payloads it queued (taken off the queue), oldest first."""
    before = {row["id"] for row in db.query("SELECT id FROM announcements")}
    count = dispatch(db, list(groupings or [ONCALL]), instances, [], T0 + int(at_s * NS), URL, **kw)
    rows = [r for r in db.query("SELECT * FROM announcements ORDER BY id") if r["id"] not in before]
    db.execute("DELETE FROM announcements")
    assert count == len(rows)
    return [{"target": r["target"], **orjson.loads(r["payload"])["annotation"]} for r in rows]


def statuses(sent: list[dict[str, Any]]) -> list[list[tuple[str, str]]]:
    """Each payload as (host, status) of its alerts."""
    return [[(a["labels"]["host"], a["status"]) for a in body["alerts"]] for body in sent]


def test_the_payload_is_alertmanagers_version_4():
    a = alert(service="web", host="web-1")
    b = resolved(alert(service="web", host="web-2"), T0 + 90 * NS)
    body = payload("oncall", {"alertname": "HighErrorRate", "service": "web"}, [b, a], URL)
    link = "https://dash.example/d/services?from=1699998200&to=1700001800"
    assert body == {
        "version": "4",
        "status": "firing",
        "receiver": "oncall",
        "groupLabels": {"alertname": "HighErrorRate", "service": "web"},
        "commonLabels": {"alertname": "HighErrorRate", "service": "web"},
        "commonAnnotations": {"team": "search"},
        "externalURL": URL,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighErrorRate", "host": "web-1", "service": "web"},
                "annotations": {"summary": "web-1 errors at 3.1%", "team": "search"},
                "startsAt": "2023-11-14T22:13:20.000Z",
                "endsAt": FIRING_ENDS_AT,
                "generatorURL": link,
                "fingerprint": a.fingerprint,
            },
            {
                "status": "resolved",
                "labels": {"alertname": "HighErrorRate", "host": "web-2", "service": "web"},
                "annotations": {"summary": "web-2 errors at 3.1%", "team": "search"},
                "startsAt": "2023-11-14T22:13:20.000Z",
                "endsAt": "2023-11-14T22:14:50.000Z",
                "generatorURL": link,
                "fingerprint": b.fingerprint,
            },
        ],
    }
    row = announcement(body)
    assert (row.text, row.event, row.link) == ("[FIRING:1] HighErrorRate web", "alerts", link)
    gone = payload("oncall", {"alertname": "HighErrorRate"}, [b], "")
    assert gone["status"] == "resolved"
    assert gone["alerts"][0]["generatorURL"] == ""
    assert announcement(gone).text == "[RESOLVED] HighErrorRate"


def test_a_new_group_waits_group_wait_then_is_sent_once(control_db: ControlDB):
    alerts = by_fp(alert(service="web", host="web-1"))
    assert run(control_db, alerts, 0) == []
    assert run(control_db, alerts, 29.9) == []
    [sent] = run(control_db, alerts, 30)
    assert sent["target"] == "oncall"
    assert sent["groupLabels"] == {"alertname": "HighErrorRate", "service": "web"}
    assert statuses([sent]) == [[("web-1", "firing")]]
    assert run(control_db, alerts, 31) == []
    assert run(control_db, alerts, 3600) == []


def test_a_change_waits_for_group_interval_after_the_last_notification(control_db: ControlDB):
    one = alert(service="web", host="web-1")
    two = alert(service="web", host="web-2")
    assert run(control_db, by_fp(one), 0) == []
    assert len(run(control_db, by_fp(one), 30)) == 1
    assert run(control_db, by_fp(one, two), 40) == []  # joined the group: no group_wait
    assert run(control_db, by_fp(one, two), 329.9) == []
    sent = run(control_db, by_fp(one, two), 330)
    assert statuses(sent) == [[("web-1", "firing"), ("web-2", "firing")]]
    assert run(control_db, by_fp(one, two), 700) == []


def test_an_unchanged_firing_group_is_sent_again_after_repeat_interval(control_db: ControlDB):
    alerts = by_fp(alert(service="web", host="web-1"))
    grouping = Grouping("oncall", group_wait_ns=0, repeat_interval_ns=3600 * NS)
    assert len(run(control_db, alerts, 0, grouping)) == 1
    assert run(control_db, alerts, 3599, grouping) == []
    again = run(control_db, alerts, 3600, grouping)
    assert statuses(again) == [[("web-1", "firing")]]
    assert run(control_db, alerts, 3601, grouping) == []
    assert len(run(control_db, alerts, 7200, grouping)) == 1


def test_a_group_that_resolves_sends_one_resolved_message_then_is_gone(control_db: ControlDB):
    one = alert(service="web", host="web-1")
    two = alert(service="web", host="web-2")
    assert len(run(control_db, by_fp(one, two), 30)) == 0  # the group starts waiting
    assert len(run(control_db, by_fp(one, two), 60)) == 1
    gone = by_fp(resolved(one, T0 + 70 * NS), resolved(two, T0 + 80 * NS))
    assert run(control_db, gone, 90) == []
    [sent] = run(control_db, gone, 360)
    assert sent["status"] == "resolved"
    assert statuses([sent]) == [[("web-1", "resolved"), ("web-2", "resolved")]]
    assert [a["endsAt"] for a in sent["alerts"]] == [
        "2023-11-14T22:14:30.000Z",
        "2023-11-14T22:14:40.000Z",
    ]
    assert [a["fingerprint"] for a in sent["alerts"]] == [one.fingerprint, two.fingerprint]
    assert run(control_db, gone, 700) == []
    assert run(control_db, gone, 4 * 3600 + 400) == []
    assert control_db.query("SELECT * FROM alert_groups") == []


def test_a_resolved_alert_is_sent_once_then_leaves_its_firing_group(control_db: ControlDB):
    one = alert(service="web", host="web-1")
    two = alert(service="web", host="web-2")
    grouping = replace(ONCALL, group_wait_ns=0)
    assert len(run(control_db, by_fp(one, two), 0, grouping)) == 1
    half = by_fp(resolved(one, T0 + 10 * NS), two)
    assert statuses(run(control_db, half, 300, grouping)) == [
        [("web-1", "resolved"), ("web-2", "firing")]
    ]
    assert run(control_db, half, 600, grouping) == []
    assert statuses(run(control_db, half, 300 + 4 * 3600, grouping)) == [[("web-2", "firing")]]


def test_an_alert_resolved_before_its_group_was_sent_is_never_sent(control_db: ControlDB):
    one = alert(service="web", host="web-1")
    assert run(control_db, by_fp(one), 0) == []
    assert run(control_db, by_fp(resolved(one, T0 + 5 * NS)), 30) == []
    assert control_db.query("SELECT * FROM alert_groups") == []


def test_a_restart_neither_resends_nor_forgets_the_wait(
    control_url: str, control_db: ControlDB, tmp_path: Path
):
    waiting = by_fp(alert(service="api", host="api-1"))
    sent = by_fp(alert(service="web", host="web-1"))
    assert run(control_db, sent, 0) == []
    assert len(run(control_db, sent, 30)) == 1
    assert run(control_db, sent | waiting, 40) == []
    reopened = ControlDB.open(control_url, tmp_path)
    try:
        assert run(reopened, sent | waiting, 41) == []
        assert run(reopened, sent | waiting, 69.9) == []
        [api] = run(reopened, sent | waiting, 70)  # waited from 40 s, not from the restart
        assert api["groupLabels"] == {"alertname": "HighErrorRate", "service": "api"}
        assert run(reopened, sent | waiting, 600) == []  # web waits for its repeat
    finally:
        reopened.close()


def test_alerts_are_grouped_by_the_targets_labels(control_db: ControlDB):
    alerts = by_fp(*(alert(service=s, host=f"{s}-{n}") for s in ("api", "web") for n in (1, 2)))
    by_service = run(control_db, alerts, 0, replace(ONCALL, group_wait_ns=0))
    assert [body["groupLabels"]["service"] for body in by_service] == ["api", "web"]
    assert statuses(by_service) == [
        [("api-1", "firing"), ("api-2", "firing")],
        [("web-1", "firing"), ("web-2", "firing")],
    ]
    each = Grouping("each", group_by=("...",), group_wait_ns=0)
    assert len(run(control_db, alerts, 0, each)) == 4
    one = Grouping("one", group_by=("alertname",), group_wait_ns=0)
    [together] = run(control_db, alerts, 0, one)
    assert together["commonLabels"] == {"alertname": "HighErrorRate"}
    assert len(together["alerts"]) == 4


def test_silenced_alerts_are_left_out(control_db: ControlDB):
    web = alert(service="web", host="web-1")
    api = alert(service="api", host="api-1")
    add_silence(control_db, {"host": "web*"}, T0 + 3600 * NS, "deploying", "alice", T0 - NS)
    silences = list_silences(control_db, T0)
    grouping = replace(ONCALL, group_wait_ns=0)
    queued = dispatch(control_db, [grouping], by_fp(web, api), silences, T0, URL)
    assert queued == 1
    [row] = control_db.query("SELECT payload FROM announcements")
    body = orjson.loads(row["payload"])["annotation"]
    assert [a["labels"]["host"] for a in body["alerts"]] == ["api-1"]


def test_a_rules_notify_picks_its_targets(control_db: ControlDB):
    rule = Rule(
        name="HighErrorRate", query=Selector(metric="http.errors"), op=">", threshold=0.02,
        notify=("pager",),
    )  # fmt: skip
    alerts = by_fp(alert(service="web", host="web-1"))
    pager, chat = Grouping("pager", group_wait_ns=0), Grouping("chat", group_wait_ns=0)
    sent = run(control_db, alerts, 0, pager, chat, rules={rule.name: rule})
    assert [body["target"] for body in sent] == ["pager"]
    assert [body["target"] for body in run(control_db, alerts, 0, chat)] == ["chat"]  # no rule


def test_the_groups_of_a_target_no_longer_configured_are_dropped(control_db: ControlDB):
    alerts = by_fp(alert(service="web", host="web-1"))
    assert run(control_db, alerts, 0, ONCALL, Grouping("old")) == []
    assert {r["target"] for r in control_db.query("SELECT target FROM alert_groups")} == {
        "oncall",
        "old",
    }
    run(control_db, alerts, 1, ONCALL)
    assert [r["target"] for r in control_db.query("SELECT target FROM alert_groups")] == ["oncall"]


# The pure step, over arbitrary histories of one group: (seconds later, firing, resolved).
UNIVERSE = ("a", "b", "c")
histories = st.lists(
    st.tuples(
        st.integers(0, 400),
        st.frozensets(st.sampled_from(UNIVERSE)),
        st.frozensets(st.sampled_from(UNIVERSE)),
    ),
    max_size=40,
)
GROUPING = Grouping(
    "t", group_wait_ns=30 * NS, group_interval_ns=300 * NS, repeat_interval_ns=900 * NS
)


@given(histories)
def test_step_sends_as_alertmanager_would(
    history: list[tuple[int, frozenset[str], frozenset[str]]],
):
    state: GroupState | None = None
    now_ns = T0
    told: frozenset[str] = frozenset()  # what the receiver believes is firing
    sends: list[int] = []
    first_seen: int | None = None
    for gap_s, firing_now, resolved_any in history:
        now_ns += gap_s * NS
        resolved_now = resolved_any - firing_now
        if state is None and firing_now:
            first_seen = now_ns
        before = state
        state, sent = step(GROUPING, state, firing_now, resolved_now, now_ns)
        if state is None and not sent and before is not None:  # gone without a word
            assert before.last_sent_ns is None or not (told & resolved_now)
            told, sends = frozenset(), []
        if not sent:
            continue
        if not sends:
            assert first_seen is not None
            assert now_ns - first_seen >= GROUPING.group_wait_ns
        else:
            assert now_ns - sends[-1] >= GROUPING.group_interval_ns
        # A message holds everything firing, and only resolutions the receiver has not had.
        assert sent & firing_now == firing_now
        assert sent - firing_now <= told & resolved_now
        told = firing_now
        sends.append(now_ns)
        if not firing_now:  # the one resolved message ends the group
            assert state is None
            told, sends = frozenset(), []
        else:
            assert state == GroupState(firing_now, now_ns + GROUPING.group_interval_ns, now_ns)
