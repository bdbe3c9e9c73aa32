"""A rule's `on_firing` through the real alert engine, embedded store and control DB (SQLite and
PostgreSQL), its clock set by hand: the knob is set once when the rule fires, kept while it fires
again or has been resolved for less than `revert_after`, set back once; a person's change is not
overwritten; two rules wanting one knob get one action; an engine started anew goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from annotations.alerts.engine import AlertEngine
from annotations.alerts.knob_actions import _duration_text
from annotations.alerts.knobs import KnobAction, list_knob_actions
from annotations.chat.messages import render_announcement
from annotations.control.db import ControlDB
from annotations.control.notes import Annotation, list_annotations
from annotations.control.outbox import Outbox
from annotations.flags.store import create_flag, get_flag, patch_flag
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Samples, Series
from tests.clock import Clock

S = NS_PER_S
T0 = 1_800_000_000 * S
TIERS = Settings().tiers()
KEY = "search.max_results"

SLOW_SEARCH = """\
- name: SlowSearch
  query: {metric: search.p99, agg: max}
  window: 1m
  op: ">"
  threshold: 0.5
  interval: 15s
  on_firing: {flag: search.max_results, environment: prod, set: 20, revert_after: 10m}
"""
SLOW_CHECKOUT = """\
- name: SlowCheckout
  query: {metric: checkout.p99, agg: max}
  window: 1m
  op: ">"
  threshold: 0.5
  interval: 15s
  on_firing: {flag: search.max_results, environment: prod, set: 10, revert_after: 1m}
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "metrics", TIERS) as opened:
        yield opened


def rules_dir(tmp_path: Path, *texts: str) -> Path:
    path = tmp_path / "rules"
    path.mkdir(exist_ok=True)
    (path / "knobs.yaml").write_text("".join(texts))
    return path


def engine_on(db: ControlDB, store: EmbeddedStore, rules: Path, clock: Clock) -> AlertEngine:
    render = partial(render_announcement, public_url="https://ship.example")
    outbox = Outbox(("chat",), render, clock=clock)
    return AlertEngine(db, store, TIERS, [rules], 15, outbox, clock=clock)


def make_flag(db: ControlDB, prod: dict[str, Any]) -> None:
    doc = {"key": KEY, "environments": {"prod": prod, "staging": {"value": 100}}}
    create_flag(db, doc, who="alice", now_ns=T0 - 3600 * S)


class Run:
    """An engine and the clock it reads; `at` writes each metric's last second and ticks."""

    def __init__(self, db: ControlDB, store: EmbeddedStore, rules: Path) -> None:
        self.db, self.store, self.rules = db, store, rules
        self.clock = Clock(T0)
        self.engine = engine_on(db, store, rules, self.clock)

    async def at(self, t_s: int, **p99: float) -> None:
        self.clock.now_ns = T0 + t_s * S
        for metric, value in p99.items():
            series = Series.of(f"{metric}.p99", {"service": metric})
            points = Samples.from_points([(series, self.clock.now_ns - S, value)])
            await asyncio.to_thread(self.store.write, points)
        await self.engine.tick()

    async def prod(self) -> dict[str, Any]:
        stored = await asyncio.to_thread(get_flag, self.db, KEY)
        prod: dict[str, Any] = stored.flag.to_doc()["environments"]["prod"]
        return prod

    async def version(self) -> int:
        return (await asyncio.to_thread(get_flag, self.db, KEY)).version

    async def actions(self) -> list[KnobAction]:
        return await asyncio.to_thread(list_knob_actions, self.db)

    async def flag_notes(self) -> list[tuple[str, str]]:
        """The flag's annotations in prod after its creation: (who, title)."""
        notes = await asyncio.to_thread(list_annotations, self.db, T0, 2**62, kinds=("flag",))
        return [(n.who, n.title) for n in notes if n.tags.get("environment") == "prod"]

    async def alert_notes(self) -> list[Annotation]:
        return await asyncio.to_thread(list_annotations, self.db, 0, 2**62, kinds=("alert",))

    async def announced(self) -> list[str]:
        rows = await asyncio.to_thread(self.db.query, "SELECT payload FROM announcements")
        return [orjson.loads(row["payload"])["text"] for row in rows]


async def test_fires_sets_once_keeps_while_refiring_and_resolved_briefly_then_sets_back_once(
    control_db: ControlDB, store: EmbeddedStore, tmp_path: Path
):
    await asyncio.to_thread(make_flag, control_db, {"percentage": 10, "value": 50})
    run = Run(control_db, store, await asyncio.to_thread(rules_dir, tmp_path, SLOW_SEARCH))
    before = await run.version()

    await run.at(0, search=0.9)
    assert (await run.prod())["value"] == 20
    assert (await run.prod())["percentage"] == 10  # only the value moved
    assert await run.version() == before + 1
    fired = [("alert SlowSearch", f"{KEY} prod: 50 -> 20 (alert SlowSearch firing)")]
    assert await run.flag_notes() == fired
    [action] = await run.actions()
    assert (action.rule, action.set_value, action.previous) == ("SlowSearch", 20, 50)
    assert (action.started_ns, action.resolved_ns) == (T0, None)
    [alert] = await run.alert_notes()
    assert alert.extra["on_firing"] == {
        "flag": KEY,
        "environment": "prod",
        "set": 20,
        "status": "set 50 -> 20",
    }

    await run.at(15, search=0.9)  # still firing: nothing more
    await run.at(30, search=0.9)
    assert await run.version() == before + 1
    await run.at(90, search=0.1)  # the high points are out of the window: resolved
    assert [a.resolved_ns for a in await run.actions()] == [T0 + 90 * S]
    await run.at(300, search=0.1)  # resolved 3.5 min of 10
    assert (await run.prod())["value"] == 20

    await run.at(400, search=0.9)  # fires again: the action stays, its resolve forgotten
    assert [(a.started_ns, a.resolved_ns) for a in await run.actions()] == [(T0, None)]
    assert await run.version() == before + 1
    await run.at(480, search=0.1)
    assert [a.resolved_ns for a in await run.actions()] == [T0 + 480 * S]
    await run.at(1079, search=0.1)  # one second short of 10 minutes resolved
    assert (await run.prod())["value"] == 20

    await run.at(1080, search=0.1)
    assert (await run.prod())["value"] == 50
    assert await run.actions() == []
    reverted = ("alert SlowSearch", f"{KEY} prod: 20 -> 50 (alert SlowSearch resolved for 10m)")
    assert await run.flag_notes() == [*fired, reverted]
    await run.at(1200, search=0.1)
    assert await run.version() == before + 2
    announced = [t for t in await run.announced() if t.startswith("[flag]")]
    assert len(announced) == 2, announced
    assert all("alert SlowSearch" in text for text in announced), announced


async def test_a_knob_that_had_no_value_loses_the_one_set_when_set_back(
    control_db: ControlDB, store: EmbeddedStore, tmp_path: Path
):
    await asyncio.to_thread(make_flag, control_db, {"percentage": 10})
    run = Run(control_db, store, await asyncio.to_thread(rules_dir, tmp_path, SLOW_CHECKOUT))
    await run.at(0, checkout=0.9)
    assert (await run.prod())["value"] == 10
    assert [a.previous for a in await run.actions()] == [None]
    await run.at(90, checkout=0.1)
    await run.at(150, checkout=0.1)  # resolved for the rule's 1m
    assert "value" not in await run.prod()
    assert (await run.prod())["percentage"] == 10
    assert await run.actions() == []
    assert [title for _, title in await run.flag_notes()] == [
        f"{KEY} prod: (none) -> 10 (alert SlowCheckout firing)",
        f"{KEY} prod: 10 -> (none) (alert SlowCheckout resolved for 1m)",
    ]


async def test_a_value_a_person_set_meanwhile_is_left_and_said_so(
    control_db: ControlDB, store: EmbeddedStore, tmp_path: Path
):
    db = control_db
    await asyncio.to_thread(make_flag, db, {"value": 50})
    run = Run(db, store, await asyncio.to_thread(rules_dir, tmp_path, SLOW_SEARCH))
    await run.at(0, search=0.9)
    assert (await run.prod())["value"] == 20
    patch = {"environments": {"prod": {"value": 30}}}
    await asyncio.to_thread(patch_flag, db, KEY, patch, who="bob", now_ns=T0 + 10 * S)
    await run.at(90, search=0.1)
    await run.at(700, search=0.1)
    assert (await run.prod())["value"] == 30
    assert await run.actions() == []
    left = (
        f"{KEY} prod: left at 30, changed since alert SlowSearch set it to 20 (not set back to 50)"
    )
    assert await run.flag_notes() == [
        ("alert SlowSearch", f"{KEY} prod: 50 -> 20 (alert SlowSearch firing)"),
        ("bob", f"{KEY} prod: 20 -> 30"),
        ("alert SlowSearch", left),
    ]
    await run.at(800, search=0.1)
    assert (await run.prod())["value"] == 30
    assert len(await run.flag_notes()) == 3


async def test_of_two_rules_wanting_one_knob_the_second_waits_until_it_is_free(
    control_db: ControlDB, store: EmbeddedStore, tmp_path: Path
):
    await asyncio.to_thread(make_flag, control_db, {"value": 50})
    run = Run(
        control_db, store, await asyncio.to_thread(rules_dir, tmp_path, SLOW_SEARCH, SLOW_CHECKOUT)
    )
    await run.at(0, search=0.9)
    await run.at(15, search=0.9, checkout=0.9)
    await run.at(30, search=0.9, checkout=0.9)
    assert (await run.prod())["value"] == 20
    assert [(a.rule, a.set_value) for a in await run.actions()] == [("SlowSearch", 20)]
    notes = {a.title: a.extra["on_firing"]["status"] for a in await run.alert_notes()}
    assert notes == {
        "SlowSearch": "set 50 -> 20",
        "SlowCheckout": f"not set: {KEY} prod is held by alert SlowSearch",
    }
    assert len(await run.flag_notes()) == 1

    # SlowSearch resolves and is set back while SlowCheckout still fires: the knob is free, and
    # the rule still firing takes it.
    await run.at(90, search=0.1, checkout=0.9)
    await run.at(690, search=0.1, checkout=0.9)
    assert (await run.prod())["value"] == 50
    await run.at(691, search=0.1, checkout=0.9)
    assert (await run.prod())["value"] == 10
    assert [(a.rule, a.previous) for a in await run.actions()] == [("SlowCheckout", 50)]
    assert [title for _, title in await run.flag_notes()][1:] == [
        f"{KEY} prod: 20 -> 50 (alert SlowSearch resolved for 10m)",
        f"{KEY} prod: 50 -> 10 (alert SlowCheckout firing)",
    ]


async def test_an_engine_started_anew_neither_sets_again_nor_forgets_to_set_back(
    control_db: ControlDB, store: EmbeddedStore, tmp_path: Path
):
    await asyncio.to_thread(make_flag, control_db, {"value": 50})
    rules = await asyncio.to_thread(rules_dir, tmp_path, SLOW_SEARCH)
    first = Run(control_db, store, rules)
    await first.at(0, search=0.9)
    await first.at(15, search=0.9)
    version = await first.version()

    second = Run(control_db, store, rules)  # a restart, or another node taking the lock
    await second.at(30, search=0.9)
    await second.at(45, search=0.9)
    assert await second.version() == version
    await second.at(120, search=0.1)
    await second.at(720, search=0.1)
    assert (await second.prod())["value"] == 50
    assert [title for _, title in await second.flag_notes()] == [
        f"{KEY} prod: 50 -> 20 (alert SlowSearch firing)",
        f"{KEY} prod: 20 -> 50 (alert SlowSearch resolved for 10m)",
    ]


async def test_a_knob_that_cannot_be_set_is_said_once_and_set_when_it_can_be(
    control_db: ControlDB, store: EmbeddedStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    run = Run(control_db, store, await asyncio.to_thread(rules_dir, tmp_path, SLOW_SEARCH))
    await run.at(0, search=0.9)
    await run.at(15, search=0.9)
    assert await run.actions() == []
    [alert] = await run.alert_notes()
    assert alert.extra["on_firing"]["status"] == f"not set: no flag {KEY!r}"
    said = [r.getMessage() for r in caplog.records if "not set" in r.getMessage()]
    assert said == [f"alert SlowSearch: {KEY} prod not set: no flag {KEY!r}"]

    # A schema the value breaks: refused by the flag, with the bound.
    await asyncio.to_thread(make_flag, control_db, {"value": 5, "schema": {"min": 1, "max": 10}})
    await run.at(30, search=0.9)
    [alert] = await run.alert_notes()
    status = alert.extra["on_firing"]["status"]
    assert status.startswith("not set: environments.prod.value: ")
    assert "10" in status
    assert (await run.prod())["value"] == 5

    patch = {"environments": {"prod": {"schema": {"min": 1, "max": 50}}}}
    await asyncio.to_thread(patch_flag, control_db, KEY, patch, who="bob", now_ns=T0 + 40 * S)
    await run.at(45, search=0.9)
    assert (await run.prod())["value"] == 20
    [alert] = await run.alert_notes()
    assert alert.extra["on_firing"]["status"] == "set 5 -> 20"


async def test_a_removed_rule_sets_its_knob_back(
    control_db: ControlDB, store: EmbeddedStore, tmp_path: Path
):
    await asyncio.to_thread(make_flag, control_db, {"value": 50})
    rules = await asyncio.to_thread(rules_dir, tmp_path, SLOW_SEARCH)
    run = Run(control_db, store, rules)
    await run.at(0, search=0.9)
    assert (await run.prod())["value"] == 20
    await asyncio.to_thread((rules / "knobs.yaml").write_text, "[]\n")
    await run.at(15, search=0.9)
    assert [a.resolved_ns for a in await run.actions()] == [T0 + 15 * S]
    await run.at(615, search=0.9)
    assert (await run.prod())["value"] == 50
    assert await run.actions() == []


@pytest.mark.parametrize(
    ("ns", "text"),
    [(0, "0s"), (1_500_000_000, "1.5s"), (90 * S, "90s"), (600 * S, "10m"), (7200 * S, "2h")],
)
def test_the_set_back_says_how_long_the_rule_was_resolved_in_its_unit(ns: int, text: str):
    assert _duration_text(ns) == text
