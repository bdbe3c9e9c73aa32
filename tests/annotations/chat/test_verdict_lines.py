"""The chat line of a deploy's verdict: status, the worst metric's before -> after (change), the
confounders, the link; queued through the real outbox of a real control DB."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from annotations.chat.messages import announcement_text, render_announcement
from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, finish_deploy, start_deploy
from annotations.control.notes import Annotation, get_annotation, update_annotation
from annotations.control.outbox import Outbox

S = 10**9
T0 = 1_800_000_000 * S
ERRORS = {
    "metric": "http.errors/http.requests",
    "test": "binomial",
    "before": 0.004,
    "after": 0.009,
    "change": 1.25,
    "interval": [0.8, 1.7],
    "samples": [12000, 11800],
    "baseline": 0.0041,
    "status": "regressed",
}
LATENCY = {
    "metric": "http.latency p99",
    "test": "quantile",
    "before": 180.0,
    "after": 212.5,
    "change": 0.18055,
    "interval": [0.05, 0.31],
    "samples": [5000, 5100],
    "baseline": None,
    "status": "inconclusive",
}


def deploy(verdict: dict[str, Any] | None, **extra: Any) -> Annotation:
    return Annotation(
        id=5,
        kind="deploy",
        start_ns=T0,
        end_ns=T0 + 90 * S,
        tags={"service": "web", "environment": "prod"},
        title="deploy web 3f2c1a9 to prod",
        body="",
        who="alice",
        extra={"version": "3f2c1a9", "status": "succeeded", "verdict": verdict, **extra},
    )


def test_a_regression_names_the_regressed_metric_before_a_larger_change_that_is_not_one():
    louder = LATENCY | {"change": 3.0, "after": 720.0}
    verdict = {"status": "regressed", "at": T0, "metrics": [louder, ERRORS], "confounders": []}
    assert announcement_text(deploy(verdict), "verdict") == (
        "[verdict] web 3f2c1a9: regressed: http.errors/http.requests 0.4% -> 0.9% (+125%)"
    )


def test_a_healthy_verdict_names_the_metric_that_rose_most_and_the_confounders():
    steady = ERRORS | {"after": 0.00404, "change": 0.01, "status": "healthy"}
    verdict = {
        "status": "healthy",
        "at": T0,
        "metrics": [steady, LATENCY | {"status": "healthy"}],
        "confounders": [
            {"kind": "deploy", "id": 7, "title": "deploy api 7.0.0 to prod", "start_ns": T0},
            {"kind": "flag", "id": 8, "title": "new-search prod: 10% -> 25%", "start_ns": T0},
        ],
    }
    announcement = render_announcement(deploy(verdict), "verdict", "https://ship.example")
    assert announcement.text == (
        "[verdict] web 3f2c1a9: healthy: http.latency p99 180 -> 212.5 (+18%)"
        " · confounders: deploy api 7.0.0 to prod; flag new-search prod: 10% -> 25% "
        + announcement.link
    )
    assert announcement.link.startswith("https://ship.example/")
    assert announcement.event == "verdict"
    assert announcement.annotation["extra"]["verdict"]["status"] == "healthy"


def test_no_data_and_a_missing_verdict_say_so():
    empty = {"status": "no_data", "at": T0, "metrics": [], "confounders": []}
    assert announcement_text(deploy(empty), "verdict") == "[verdict] web 3f2c1a9: no_data"
    blank = ERRORS | {"before": None, "after": None, "change": None, "status": "no_data"}
    verdict = empty | {"metrics": [blank]}
    assert announcement_text(deploy(verdict), "verdict") == (
        "[verdict] web 3f2c1a9: no_data: http.errors/http.requests no data"
    )
    assert announcement_text(deploy(None), "verdict") == (
        "[verdict] web 3f2c1a9: nothing to verify"
    )


@given(st.text(), st.text())
def test_a_verdict_line_is_one_line_whatever_the_names_hold(metric: str, title: str):
    verdict = {
        "status": "regressed",
        "metrics": [ERRORS | {"metric": metric}],
        "confounders": [{"kind": "note", "title": title}],
    }
    line = announcement_text(deploy(verdict), "verdict")
    assert line.startswith("[verdict] web 3f2c1a9: regressed: ")
    assert not any(ch in line for ch in "\r\n\x00")


def test_a_verdict_queued_with_the_deploy_it_judges_is_one_row_per_target(tmp_path: Path):
    db = ControlDB.open("", tmp_path)
    try:
        outbox = Outbox(("irc", "webhook"), partial(render_announcement, public_url=""))
        ref = start_deploy(
            db, DeployStart("web", "prod", "3f2c1a9"), who="alice", start_ns=T0, outbox=None
        )
        finished = finish_deploy(db, str(ref), status="succeeded", end_ns=T0 + 90 * S)
        verdict = {"status": "regressed", "at": T0, "metrics": [ERRORS], "confounders": []}
        with db.transaction():
            update_annotation(
                db, ref, end_ns=finished.end_ns, extra=finished.extra | {"verdict": verdict}
            )
            outbox.append(db, get_annotation(db, ref), "verdict")
        rows = db.query("SELECT target, payload FROM announcements ORDER BY id")
    finally:
        db.close()
    assert [row["target"] for row in rows] == ["irc", "webhook"]
    payload = orjson.loads(rows[0]["payload"])
    assert payload["text"] == (
        "[verdict] web 3f2c1a9: regressed: http.errors/http.requests 0.4% -> 0.9% (+125%)"
    )
    assert payload["event"] == "verdict"
