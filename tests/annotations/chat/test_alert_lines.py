"""The chat lines of alerts: what fired, at what value, what changed before, and the link."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.chat.messages import announcement_text, render_announcement
from annotations.control.notes import Annotation

S = 10**9
STARTED = 1_800_000_000 * S
DEPLOY = {
    "kind": "deploy",
    "id": 3,
    "at_ns": STARTED - 4 * 60 * S - 10 * S,
    "who": "alice",
    "service": "web",
    "environment": "production",
    "version": "v42",
    "status": "succeeded",
    "watch": ["http.errors", "p99"],
    "risk": "new cache",
    "rollback": "",
}
FLAG = {
    "kind": "flag",
    "id": 4,
    "at_ns": STARTED - 12 * 60 * S,
    "who": "bob",
    "flag": "checkout",
    "environment": "production",
    "change": "checkout production: 10% -> 50%",
}


def alert(changes: list[dict[str, Any]], **fields: Any) -> Annotation:
    values: dict[str, Any] = {
        "id": 9,
        "kind": "alert",
        "start_ns": STARTED + 300 * S,
        "end_ns": None,
        "tags": {"alertname": "HighErrorRate", "severity": "page", "service": "web"},
        "title": "HighErrorRate",
        "body": "web errors at 3.1%",
        "who": "shipboard",
        "extra": {
            "value": 0.031,
            "op": ">",
            "threshold": 0.02,
            "group": {"service": "web"},
            "started_ns": STARTED,
            "changes": changes,
        },
    }
    values.update(fields)
    return Annotation(**values)


def test_a_firing_line_says_the_value_what_changed_before_and_links_the_start():
    line = announcement_text(alert([DEPLOY, FLAG]), "added", "https://ship.example")
    assert line == (
        "[alert] FIRING HighErrorRate service=web: web errors at 3.1% (0.031 > 0.02)"
        " · changed before: deploy web v42 by alice 4m before (watch http.errors, p99;"
        " risk: new cache); flag checkout production: 10% -> 50% by bob 12m before"
        " · https://ship.example/d/services?from=1799998200&to=1800001800"
    )


def test_a_firing_line_without_changes_says_so_and_a_failed_deploy_is_named():
    assert announcement_text(alert([]), "added") == (
        "[alert] FIRING HighErrorRate service=web: web errors at 3.1% (0.031 > 0.02)"
        " · no deploy or flag change in the 30 min before"
    )
    failed = {**DEPLOY, "status": "rolled_back", "watch": [], "risk": "", "at_ns": STARTED - 30}
    assert announcement_text(alert([failed]), "added").endswith(
        "changed before: deploy web v42 by alice 0s before (rolled back)"
    )


def test_a_line_names_three_changes_and_counts_the_rest():
    line = announcement_text(alert([FLAG] * 5), "added")
    assert line.count("flag checkout") == 3
    assert line.endswith("by bob 12m before; 2 more")


def test_a_resolved_line_says_how_long_it_fired():
    resolved = alert([DEPLOY], end_ns=STARTED + 300 * S + 432 * S)
    assert announcement_text(resolved, "updated", "https://ship.example") == (
        "[alert] RESOLVED HighErrorRate service=web after 7m12s"
    )
    announcement = render_announcement(resolved, "updated", "https://ship.example")
    assert announcement.link == "https://ship.example/d/services?from=1799998200&to=1800002532"
    assert announcement.annotation["extra"]["changes"] == [DEPLOY]


def test_an_alert_without_a_value_says_no_data():
    line = announcement_text(alert([], extra={"value": None, "op": ">", "threshold": 1}), "added")
    assert "(no data > 1)" in line


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@pytest.mark.slow
@given(
    text=st.text(max_size=300),
    labels=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4),
    event=st.sampled_from(["added", "updated"]),
)
def test_no_text_of_anyone_starts_a_second_line(text: str, labels: dict[str, str], event: str):
    change = {**DEPLOY, "who": text, "risk": text, "watch": [text], "version": text}
    flag = {**FLAG, "who": text, "change": text}
    annotation = alert(
        [change, flag],
        title=text,
        body=text,
        tags=labels,
        end_ns=STARTED + 400 * S if event == "updated" else None,
        extra={
            "value": 1.0,
            "op": text,
            "threshold": 0.5,
            "group": labels,
            "changes": [change, flag],
        },
    )
    line = announcement_text(annotation, event, "https://ship.example")
    assert not _CONTROL.search(line)
    assert line.startswith("[alert] RESOLVED " if event == "updated" else "[alert] FIRING ")
