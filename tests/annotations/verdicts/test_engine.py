"""The verdict engine in process, on a real embedded store and control DB with a set clock: a
due time first, then the verdict stored and announced once, even by an engine started again."""

from __future__ import annotations

import asyncio
from typing import Any

from annotations.control.db import ControlDB
from annotations.control.deploys import (
    DeployStart,
    deploy_json,
    finish_deploy,
    get_deploy,
    start_deploy,
)
from annotations.control.notes import Annotation
from annotations.control.outbox import Announcement, Outbox
from annotations.verdicts.engine import VerdictEngine
from tests.aggregator.conftest import MIN, NOW, TIERS, S
from tests.aggregator.test_compare import write_counts


def render(annotation: Annotation, event: str) -> Announcement:
    return Announcement(f"{event} {annotation.extra['verdict']['status']}", event, "", {})


def announced(db: ControlDB) -> list[str]:
    return [
        str(row["payload"]) for row in db.query("SELECT payload FROM announcements ORDER BY id")
    ]


def test_a_due_deploy_is_judged_stored_and_announced_once(store, control_db):
    # Errors double at NOW - 10m (test_compare's data); the deploy is there, judged 9 m after:
    # before NOW - 18m .. NOW - 10m, after NOW - 9m .. NOW - 1m.
    write_counts(store, "web", 5000, (0.01, 0.02), seed=1)
    start = DeployStart("web", "prod", "3f2c1a9", verify_after_ns=9 * MIN)
    deploy_id = start_deploy(control_db, start, who="ci", start_ns=NOW - 10 * MIN)
    finish_deploy(control_db, str(deploy_id), status="succeeded", end_ns=NOW - 10 * MIN)
    now = [NOW - 2 * MIN]
    outbox = Outbox(("hook",), render)

    def engine() -> VerdictEngine:
        return VerdictEngine(control_db, store, TIERS, outbox, 15 * MIN, clock=lambda: now[0])

    def verdict() -> dict[str, Any]:
        found: dict[str, Any] = deploy_json(get_deploy(control_db, str(deploy_id)))["verdict"]
        return found

    first = engine()
    asyncio.run(first.tick())
    assert verdict() == {"status": "pending", "due_ns": NOW - 1 * MIN}
    assert announced(control_db) == []
    now[0] = NOW
    asyncio.run(first.tick())
    judged = verdict()
    assert judged["status"] == "regressed"
    assert judged["at"] == NOW
    [metric] = judged["metrics"]
    assert metric["metric"] == "http.errors/http.requests"
    assert metric["samples"] == [48 * 5000, 48 * 5000]
    assert metric["baseline"] is None
    assert len(announced(control_db)) == 1
    assert '"event":"verdict"' in announced(control_db)[0]
    # Started again (a restart, another node): nothing is judged or announced twice.
    now[0] = NOW + 10 * S
    asyncio.run(engine().tick())
    assert verdict() == judged
    assert len(announced(control_db)) == 1


def test_a_deploy_with_nothing_to_judge_gets_no_verdict(store, control_db):
    start = DeployStart("db", "prod", "1", watch=("the checkout page",), verify_after_ns=MIN)
    deploy_id = start_deploy(control_db, start, who="ci", start_ns=NOW - 5 * MIN)
    finish_deploy(control_db, str(deploy_id), status="succeeded", end_ns=NOW - 5 * MIN)
    outbox = Outbox(("hook",), render)
    asyncio.run(VerdictEngine(control_db, store, TIERS, outbox, MIN, clock=lambda: NOW).tick())
    assert deploy_json(get_deploy(control_db, str(deploy_id)))["verdict"] is None
    assert announced(control_db) == []
