"""The alert engine over a real embedded store and control DB (SQLite and PostgreSQL), its clock
injected: a rule goes pending, fires once, resolves once, survives a restart, a bad rule file
leaves the others running, and only the node holding the lock evaluates."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from annotations.alerts.engine import AlertEngine
from annotations.alerts.instances import rule_statuses
from annotations.alerts.silences import add_silence
from annotations.chat.messages import render_announcement
from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, start_deploy
from annotations.control.notes import Annotation, list_annotations
from annotations.control.outbox import Outbox
from shipboard.node_lock import NodeLock
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Samples, Series
from tests.clock import Clock
from tests.postgres import fresh_schema

S = NS_PER_S
T0 = 1_800_000_000 * S
TIERS = Settings().tiers()
PUBLIC_URL = "https://ship.example"
TARGETS = ("chat", "hook")

HIGH_ERROR_RATE = """\
- name: HighErrorRate
  query: {metric: http.errors, agg: mean, group_by: [service]}
  window: 1m
  op: ">"
  threshold: 0.02
  for: 2m
  interval: 15s
  labels: {severity: page}
  annotations: {summary: "{service} errors at {value:.1%}"}
"""
SLOW = """\
- name: SlowRequests
  query: {metric: http.p99, agg: max}
  window: 1m
  op: ">="
  threshold: 0.5
  notify: [hook]
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "metrics", TIERS) as opened:
        yield opened


@pytest.fixture
def pg_url(pg_database_url: str) -> Iterator[str]:
    with fresh_schema(pg_database_url, "alerts") as url:
        yield url


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    path = tmp_path / "rules"
    path.mkdir()
    (path / "web.yaml").write_text(HIGH_ERROR_RATE)
    return path


def outbox(clock: Clock) -> Outbox:
    return Outbox(TARGETS, partial(render_announcement, public_url=PUBLIC_URL), clock=clock)


def engine_on(
    db: ControlDB, store: EmbeddedStore, rules_dir: Path, clock: Clock, **kwargs: Any
) -> AlertEngine:
    return AlertEngine(db, store, TIERS, [rules_dir], 15, outbox(clock), clock=clock, **kwargs)


def write(store: EmbeddedStore, metric: str, ts_ns: int, value: float, **tags: str) -> None:
    store.write(
        Samples.from_points([(Series.of(metric, tags or {"service": "web"}), ts_ns, value)])
    )


async def at(engine: AlertEngine, clock: Clock, store: EmbeddedStore, t_s: int, errors: float):
    """At T0 + t_s: web's error rate was `errors` a second ago; the engine ticks."""
    clock.now_ns = T0 + t_s * S
    await asyncio.to_thread(write, store, "http.errors", clock.now_ns - S, errors)
    await engine.tick()


async def until_firing(engine: AlertEngine, clock: Clock, store: EmbeddedStore) -> None:
    """Web's error rate high from T0: pending then, firing at T0 + 2m (the rule's `for`)."""
    for t_s in (0, 60, 120):
        await at(engine, clock, store, t_s, 0.05)


def alerts(db: ControlDB) -> list[Annotation]:
    return list_annotations(db, 0, 2**62, kinds=("alert",))


def queued(db: ControlDB) -> list[tuple[str, dict[str, Any]]]:
    rows = db.query("SELECT target, payload FROM announcements ORDER BY id")
    return [(row["target"], orjson.loads(row["payload"])) for row in rows]


def deploy_before(db: ControlDB) -> None:
    start = DeployStart(
        "web",
        "production",
        "v42",
        watch=("http.errors",),
        risk="new cache",
        rollback="shipboard deploy web v41",
    )
    start_deploy(db, start, who="alice", start_ns=T0 - 4 * 60 * S)


def state_of(engine: AlertEngine) -> list[tuple[str, str]]:
    return sorted((i.rule, i.state) for i in engine.instances().values())


async def test_a_rule_goes_pending_fires_once_and_resolves_once(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    await asyncio.to_thread(deploy_before, db)
    engine = engine_on(db, store, rules_dir, clock)
    await at(engine, clock, store, 0, 0.05)
    assert state_of(engine) == [("HighErrorRate", "pending")]
    await at(engine, clock, store, 60, 0.05)
    assert await asyncio.to_thread(alerts, db) == []
    assert await asyncio.to_thread(queued, db) == []

    await at(engine, clock, store, 120, 0.05)  # pending for 2m: firing
    await at(engine, clock, store, 135, 0.05)  # still firing: nothing new
    assert state_of(engine) == [("HighErrorRate", "firing")]
    (alert,) = await asyncio.to_thread(alerts, db)
    assert (alert.title, alert.start_ns, alert.end_ns) == ("HighErrorRate", T0 + 120 * S, None)
    assert alert.tags == {"alertname": "HighErrorRate", "severity": "page", "service": "web"}
    assert alert.body == "web errors at 5.0%"
    assert (alert.extra["value"], alert.extra["op"], alert.extra["threshold"]) == (0.05, ">", 0.02)
    assert alert.extra["started_ns"] == T0
    (change,) = alert.extra["changes"]
    assert (change["who"], change["service"], change["version"]) == ("alice", "web", "v42")
    rows = await asyncio.to_thread(queued, db)
    assert [target for target, _ in rows] == ["chat", "hook"]
    text = rows[0][1]["text"]
    assert text.startswith(
        "[alert] FIRING HighErrorRate service=web: web errors at 5.0% (0.05 > 0.02) · changed"
        " before: deploy web v42 by alice 4m before (watch http.errors; risk: new cache;"
        " rollback: shipboard deploy web v41) · https://ship.example/d/services?from="
    )
    assert rows[1][1] == rows[0][1]

    await at(engine, clock, store, 150, 0.0)  # the last minute's mean is 0.033: still holds
    assert len(await asyncio.to_thread(queued, db)) == 2
    await at(engine, clock, store, 195, 0.0)  # the window holds zeros only: resolved
    await at(engine, clock, store, 210, 0.0)
    assert state_of(engine) == [("HighErrorRate", "resolved")]
    (alert,) = await asyncio.to_thread(alerts, db)
    assert (alert.end_ns, alert.extra["state"]) == (T0 + 195 * S, "resolved")
    rows = await asyncio.to_thread(queued, db)
    assert [target for target, _ in rows] == ["chat", "hook", "chat", "hook"]
    assert rows[2][1]["text"] == "[alert] RESOLVED HighErrorRate service=web after 1m15s"
    assert rows[2][1]["event"] == "updated"
    statuses = await asyncio.to_thread(rule_statuses, db)
    assert statuses["HighErrorRate"].evaluated_ns == T0 + 210 * S
    assert statuses["HighErrorRate"].source == f"{rules_dir / 'web.yaml'}:1"


async def test_a_rule_is_evaluated_at_its_interval(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    engine = engine_on(db, store, rules_dir, clock)
    await at(engine, clock, store, 0, 0.05)
    await at(engine, clock, store, 10, 0.05)  # 15 s interval: not due yet
    statuses = await asyncio.to_thread(rule_statuses, db)
    assert statuses["HighErrorRate"].evaluated_ns == T0
    await at(engine, clock, store, 15, 0.05)
    statuses = await asyncio.to_thread(rule_statuses, db)
    assert statuses["HighErrorRate"].evaluated_ns == T0 + 15 * S


async def test_a_restart_neither_pages_again_nor_forgets(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    first = engine_on(db, store, rules_dir, clock)
    await until_firing(first, clock, store)
    (fired,) = await asyncio.to_thread(alerts, db)
    assert len(await asyncio.to_thread(queued, db)) == 2

    second = engine_on(db, store, rules_dir, clock)  # the node restarted: a new engine
    await at(second, clock, store, 150, 0.05)
    assert state_of(second) == [("HighErrorRate", "firing")]
    assert [i.annotation_id for i in second.instances().values()] == [fired.id]
    assert await asyncio.to_thread(alerts, db) == [fired]
    assert len(await asyncio.to_thread(queued, db)) == 2

    await at(second, clock, store, 215, 0.0)
    (resolved,) = await asyncio.to_thread(alerts, db)
    assert (resolved.id, resolved.end_ns) == (fired.id, T0 + 215 * S)
    rows = await asyncio.to_thread(queued, db)
    assert [payload["text"] for _, payload in rows[2:]] == [
        "[alert] RESOLVED HighErrorRate service=web after 1m35s"
    ] * 2


async def test_after_a_restart_an_alert_resolves_only_on_a_whole_window_of_new_points(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    await until_firing(engine_on(db, store, rules_dir, clock), clock, store)
    second = engine_on(db, store, rules_dir, clock)  # down for 3 minutes: nothing collected
    clock.now_ns = T0 + 300 * S
    await second.tick()
    await at(second, clock, store, 345, 0.05)  # points again, the window not yet full of them
    assert state_of(second) == [("HighErrorRate", "firing")]
    await at(second, clock, store, 375, 0.0)  # the window's mean is 0.025: still holds
    await at(second, clock, store, 410, 0.0)  # only zeros since: resolved
    assert state_of(second) == [("HighErrorRate", "resolved")]
    (alert,) = await asyncio.to_thread(alerts, db)
    assert alert.end_ns == T0 + 410 * S
    assert len(await asyncio.to_thread(queued, db)) == 4


async def test_a_pending_rule_keeps_its_start_across_a_restart(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    await at(engine_on(db, store, rules_dir, clock), clock, store, 0, 0.05)
    second = engine_on(db, store, rules_dir, clock)
    await at(second, clock, store, 120, 0.05)  # 2m after the first node saw it pending
    assert state_of(second) == [("HighErrorRate", "firing")]
    (alert,) = await asyncio.to_thread(alerts, db)
    assert alert.extra["started_ns"] == T0


async def test_notify_names_the_targets_and_a_silenced_alert_is_quiet(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    await asyncio.to_thread((rules_dir / "slow.yaml").write_text, SLOW)
    await asyncio.to_thread(
        add_silence,
        db,
        {"alertname": "HighErrorRate"},
        T0 + 3600 * S,
        "deploying web",
        "alice",
        T0 - S,
    )
    engine = engine_on(db, store, rules_dir, clock)
    await asyncio.to_thread(write, store, "http.p99", T0 + 119 * S, 0.8, host="a")
    await until_firing(engine, clock, store)
    assert state_of(engine) == [("HighErrorRate", "firing"), ("SlowRequests", "firing")]
    assert {a.title for a in await asyncio.to_thread(alerts, db)} == {
        "HighErrorRate",
        "SlowRequests",
    }
    rows = await asyncio.to_thread(queued, db)
    assert [(target, payload["annotation"]["title"]) for target, payload in rows] == [
        ("hook", "SlowRequests")
    ]
    assert rows[0][1]["text"].startswith(
        "[alert] FIRING SlowRequests (0.8 >= 0.5) · no deploy or flag change in the 30 min before"
    )


async def test_a_failing_query_is_the_rules_error_and_a_firing_alert_stays_firing_quietly(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path, tmp_path: Path
):
    db, clock = control_db, Clock(T0)
    await asyncio.to_thread((rules_dir / "slow.yaml").write_text, SLOW)
    engine = engine_on(db, store, rules_dir, clock)
    await until_firing(engine, clock, store)
    await asyncio.to_thread(store.close)  # every query fails from now on
    clock.now_ns = T0 + 135 * S
    await engine.tick()
    states = {i.rule: (i.state, i.error) for i in engine.instances().values()}
    closed = f"StoreClosedError: store {tmp_path / 'metrics'} is closed"
    assert states == {"HighErrorRate": ("firing", closed), "SlowRequests": ("error", closed)}
    statuses = await asyncio.to_thread(rule_statuses, db)
    assert {name: status.error for name, status in statuses.items()} == {
        "HighErrorRate": closed,
        "SlowRequests": closed,
    }
    assert len(await asyncio.to_thread(queued, db)) == 2


async def test_a_bad_rule_file_leaves_the_other_rules_running(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    broken = "- name: Broken\n  query: {metric: x}\n  op: '=~'\n  threshold: 1\n"
    await asyncio.to_thread((rules_dir / "broken.yaml").write_text, broken)
    engine = engine_on(db, store, rules_dir, clock)
    await at(engine, clock, store, 0, 0.05)
    rules, errors = engine.rules_view()
    assert list(rules) == ["HighErrorRate"]
    assert [(e.file, e.line) for e in errors] == [(str(rules_dir / "broken.yaml"), 3)]
    assert state_of(engine) == [("HighErrorRate", "pending")]


async def test_an_edited_rule_file_is_read_again_and_a_removed_rule_forgotten(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    engine = engine_on(db, store, rules_dir, clock)
    await until_firing(engine, clock, store)
    assert state_of(engine) == [("HighErrorRate", "firing")]
    await asyncio.to_thread((rules_dir / "web.yaml").write_text, SLOW)
    await at(engine, clock, store, 135, 0.05)
    assert list(engine.rules_view()[0]) == ["SlowRequests"]
    (alert,) = await asyncio.to_thread(alerts, db)
    assert (alert.end_ns, alert.extra["state"]) == (T0 + 135 * S, "removed")
    assert "HighErrorRate" not in await asyncio.to_thread(rule_statuses, db)
    assert len(await asyncio.to_thread(queued, db)) == 2  # no resolve was announced


async def test_a_broken_edit_keeps_the_last_good_rules_of_that_file(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    engine = engine_on(db, store, rules_dir, clock)
    await at(engine, clock, store, 0, 0.05)
    await asyncio.to_thread((rules_dir / "web.yaml").write_text, HIGH_ERROR_RATE + "  : [\n")
    await at(engine, clock, store, 120, 0.05)
    rules, errors = engine.rules_view()
    assert list(rules) == ["HighErrorRate"]
    assert [e.file for e in errors] == [str(rules_dir / "web.yaml")]
    assert state_of(engine) == [("HighErrorRate", "firing")]


async def test_a_restart_with_a_broken_rule_file_forgets_none_of_its_alerts(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    await until_firing(engine_on(db, store, rules_dir, clock), clock, store)
    (fired,) = await asyncio.to_thread(alerts, db)
    await asyncio.to_thread((rules_dir / "web.yaml").write_text, HIGH_ERROR_RATE + "  : [\n")
    second = engine_on(db, store, rules_dir, clock)  # restarted with the file broken
    await at(second, clock, store, 135, 0.05)
    assert list(second.rules_view()[0]) == []
    assert await asyncio.to_thread(alerts, db) == [fired]  # still open
    await asyncio.to_thread((rules_dir / "web.yaml").write_text, HIGH_ERROR_RATE)
    await at(second, clock, store, 150, 0.05)
    assert state_of(second) == [("HighErrorRate", "firing")]
    assert await asyncio.to_thread(alerts, db) == [fired]
    assert len(await asyncio.to_thread(queued, db)) == 2  # nobody paged again


async def test_the_engine_runs_its_rounds_while_entered_and_stops_between_them(
    control_db: ControlDB, store: EmbeddedStore, rules_dir: Path
):
    db, clock = control_db, Clock(T0)
    await asyncio.to_thread(write, store, "http.errors", T0 - S, 0.05)
    loop = asyncio.get_running_loop()
    async with engine_on(db, store, rules_dir, clock, tick_s=30) as engine:  # a round at once
        async with asyncio.timeout(10):
            while not engine.instances():  # noqa: ASYNC110 (no event to wait on: a poll)
                await asyncio.sleep(0.01)
        assert state_of(engine) == [("HighErrorRate", "pending")]
        scraped = {
            (sample.name, sample.labels.get("state")): sample.value
            for metric in engine.collector().collect()
            for sample in metric.samples
        }
        leaving = loop.time()
    assert loop.time() - leaving < 1  # it stops between rounds, not after its 30 s wait
    assert scraped[("shipboard_alerts", "pending")] == 1
    assert scraped[("shipboard_alerts", "firing")] == 0
    assert scraped[("shipboard_rule_evaluation_seconds_count", None)] >= 1


@pytest.mark.slow
async def test_only_the_node_holding_the_lock_evaluates(
    pg_url: str, store: EmbeddedStore, rules_dir: Path, tmp_path: Path
):
    db = await asyncio.to_thread(ControlDB.open, pg_url, tmp_path)
    locks = [NodeLock("alerts", pg_url, tmp_path) for _ in range(2)]
    clock = Clock(T0)
    try:
        first, second = (engine_on(db, store, rules_dir, clock, lease=lock) for lock in locks)
        await at(first, clock, store, 0, 0.05)
        await at(second, clock, store, 0, 0.05)
        assert (first.held, second.held) == (True, False)
        assert state_of(second) == []
        for t_s in (60, 120):
            await at(first, clock, store, t_s, 0.05)
            await at(second, clock, store, t_s, 0.05)
        assert len(await asyncio.to_thread(alerts, db)) == 1
        assert len(await asyncio.to_thread(queued, db)) == 2

        await asyncio.to_thread(locks[0].release)  # the first node dies: the second takes over
        await at(second, clock, store, 135, 0.05)
        assert second.held
        assert state_of(second) == [("HighErrorRate", "firing")]
        assert len(await asyncio.to_thread(alerts, db)) == 1
        assert len(await asyncio.to_thread(queued, db)) == 2
    finally:
        for lock in locks:
            await asyncio.to_thread(lock.release)
        await asyncio.to_thread(db.close)
