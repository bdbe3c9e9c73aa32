"""Guarded rollouts in process, on a real embedded store and control DB with a set clock: the
plan steps up while its guard holds, halts back on a regression, holds then asks when it cannot
tell, and pauses when a person sets the percentage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from annotations.control.db import ControlDB
from annotations.control.errors import ConflictError, NotFoundError
from annotations.control.notes import Annotation, list_annotations
from annotations.control.outbox import Announcement, Outbox
from annotations.flags.store import create_flag, get_flag, patch_flag
from annotations.rollouts.actions import RolloutActions
from annotations.rollouts.state import Rollout, load_rollout
from annotations.rollouts.stepping import MAX_HOLDS, Stepper
from storage.base import Store
from storage.records import Samples, Series
from tests.aggregator.conftest import MIN, NOW, TIERS, S

T0 = NOW - 30 * MIN  # the plan starts here; its interval is a minute
TAG = "flag_new-search"


def render(annotation: Annotation, event: str) -> Announcement:
    return Announcement(annotation.title, event, "", {})


def write_arms(
    store: Store, requests: int, off_rate: float, on_rate: float, *, on_from: int = T0, seed=1
):
    """Every 10 s from T0 - 10m to NOW, `requests` requests in each arm (`flag_new-search` on
    and off), errors at `off_rate` in the control and, from `on_from`, `on_rate` in the
    treatment (`off_rate` before)."""
    rng = np.random.default_rng(seed)
    flushes = np.arange(T0 - 10 * MIN, NOW, 10 * S, dtype=np.int64)
    n = len(flushes)
    series: list[Series] = []
    ids, ts, values = [], [], []
    for arm, rates in (
        ("off", np.full(n, off_rate)),
        ("on", np.where(flushes >= on_from, on_rate, off_rate)),
    ):
        tags = {"service": "web", TAG: arm}
        for name, counts in (
            ("http.requests.count", np.full(n, float(requests))),
            ("http.errors.count", rng.binomial(requests, rates).astype(np.float64)),
        ):
            ids.append(np.full(n, len(series), np.int32))
            series.append(Series.of(name, tags))
            ts.append(flushes)
            values.append(counts)
    store.write(
        Samples(tuple(series), np.concatenate(ids), np.concatenate(ts), np.concatenate(values))
    )


def plan(**changes: Any) -> dict[str, Any]:
    return {
        "steps": [10, 50, 100],
        "interval": "1m",
        "guards": [
            {
                "metric": "http.errors.count",
                "ratio_of": "http.requests.count",
                "max_increase": "20%",
            }
        ],
        "min_samples": 1000,
        "on_regression": "rollback",
    } | changes


def make_flag(db: ControlDB, rollout: dict[str, Any], percentage: float = 0.0) -> None:
    doc = {
        "key": "new-search",
        "environments": {"prod": {"percentage": percentage, "rollout": rollout}},
    }
    create_flag(db, doc, who="alice", now_ns=T0 - MIN)


def percentage(db: ControlDB) -> float:
    return get_flag(db, "new-search").flag.environments["prod"].percentage


def titles(db: ControlDB, who: str = "rollout") -> list[str]:
    found = list_annotations(db, T0 - 10 * MIN, NOW + 10 * MIN, kinds=("flag",))
    return [a.title for a in found if a.who == who]


def state_of(db: ControlDB) -> Rollout:
    state = load_rollout(db, "new-search", "prod")
    assert state is not None
    return state


def announced(db: ControlDB) -> list[str]:
    return [str(r["payload"]) for r in db.query("SELECT payload FROM announcements ORDER BY id")]


@pytest.fixture
def stepper(store: Store, control_db: ControlDB) -> Stepper:
    return Stepper(RolloutActions(control_db, Outbox(("hook",), render)), store, TIERS)


def test_a_plan_steps_up_while_its_guard_holds(stepper, store, control_db):
    write_arms(store, 5000, 0.05, 0.05)
    make_flag(control_db, plan())
    stepper.tick(T0)
    assert percentage(control_db) == 10
    stepper.tick(T0 + 30 * S)  # not due yet
    assert percentage(control_db) == 10
    stepper.tick(T0 + MIN)
    assert percentage(control_db) == 50
    state = state_of(control_db)
    assert state.status == "running"
    assert state.step == 1
    assert state.evaluation is not None
    [guard] = state.evaluation["metrics"]
    assert guard["mode"] == "arms"
    assert guard["status"] == "healthy"
    assert guard["samples"] == [6 * 5000, 6 * 5000]  # one minute of each arm
    stepper.tick(T0 + 2 * MIN)
    assert percentage(control_db) == 100
    done = state_of(control_db)
    assert done.status == "done"
    assert done.next_ns is None
    stepper.tick(T0 + 5 * MIN)  # done: nothing more
    said = titles(control_db)
    assert said[0] == "new-search prod: 0% -> 10% (rollout started: step 1 of 3)"
    assert said[1].startswith("new-search prod: 10% -> 50% (rollout step 2 of 3: healthy: ")
    assert said[2].startswith("new-search prod: 50% -> 100% (rollout step 3 of 3, done: healthy")
    assert len(said) == 3
    assert [a.count("rollout") for a in announced(control_db)] == [1, 1, 1]  # each step


def test_a_regression_halts_back_to_the_step_that_held(stepper, store, control_db):
    # The treatment's errors triple once the flag is at 50% (from T0 + 1m).
    write_arms(store, 5000, 0.05, 0.15, on_from=T0 + MIN)
    make_flag(control_db, plan())
    stepper.tick(T0)
    stepper.tick(T0 + MIN)
    assert percentage(control_db) == 50
    stepper.tick(T0 + 2 * MIN)
    assert percentage(control_db) == 10
    state = state_of(control_db)
    assert state.status == "halted"
    assert state.step == 0
    assert state.evaluation is not None
    assert state.evaluation["status"] == "regressed"
    [guard] = state.evaluation["metrics"]
    assert guard["before"] == pytest.approx(0.05, rel=0.05)
    assert guard["after"] == pytest.approx(0.15, rel=0.05)
    halt = titles(control_db)[-1]
    assert halt.startswith("new-search prod: 50% -> 10% (rollout halted: regressed: ")
    assert halt.endswith("; rollback)")
    stepper.tick(T0 + 5 * MIN)  # halted: it stays
    assert percentage(control_db) == 10


def test_on_regression_kill_sets_zero(stepper, store, control_db):
    write_arms(store, 5000, 0.05, 0.15, on_from=T0 + MIN)
    make_flag(control_db, plan(on_regression="kill"))
    for t in (T0, T0 + MIN, T0 + 2 * MIN):
        stepper.tick(t)
    assert percentage(control_db) == 0
    state = state_of(control_db)
    assert state.status == "halted"
    assert state.step == -1


def test_too_few_samples_hold_the_step_then_ask(stepper, store, control_db):
    write_arms(store, 50, 0.05, 0.05)  # 300 requests a minute in each arm, 1000 asked for
    make_flag(control_db, plan())
    stepper.tick(T0)
    for i in range(1, MAX_HOLDS + 1):
        stepper.tick(T0 + i * MIN)
        assert percentage(control_db) == 10
    state = state_of(control_db)
    assert state.status == "paused"
    assert state.holds == MAX_HOLDS
    # Each hold judged a longer window: the step's whole time so far.
    assert state.evaluation is not None
    assert state.evaluation["metrics"][0]["samples"] == [MAX_HOLDS * 300] * 2
    said = titles(control_db)
    assert said[1].startswith("new-search prod: rollout holds at 10% (1 of 3): inconclusive: ")
    assert said[-1].startswith("new-search prod: rollout paused at 10%: inconclusive: ")
    assert said[-1].endswith("for 3 intervals; resume it to go on, or set the percentage")


def test_a_percentage_set_by_hand_pauses_and_resume_goes_on_from_it(stepper, store, control_db):
    write_arms(store, 5000, 0.05, 0.05)
    make_flag(control_db, plan())
    stepper.tick(T0)
    patch = {"environments": {"prod": {"percentage": 60}}}
    patch_flag(control_db, "new-search", patch, who="bob", now_ns=T0 + 10 * S)
    stepper.tick(T0 + 20 * S)
    state = state_of(control_db)
    assert state.status == "paused"
    assert state.reason == "the percentage was set by hand to 60%"
    stepper.tick(T0 + 5 * MIN)
    assert percentage(control_db) == 60
    resumed = stepper.actions.resume_by("new-search", "prod", "carol", T0 + 5 * MIN)
    assert (resumed.status, resumed.step, resumed.percentage) == ("running", 1, 60)
    assert titles(control_db)[-1] == (
        "new-search prod: rollout resumed by carol: step 2 of 3 at 60%"
    )
    stepper.tick(T0 + 6 * MIN)
    assert percentage(control_db) == 100


def test_pause_and_resume_by_a_person(stepper, store, control_db):
    write_arms(store, 5000, 0.05, 0.05)
    make_flag(control_db, plan())
    with pytest.raises(NotFoundError):
        stepper.actions.pause_by("new-search", "prod", "dave", T0)  # not started yet
    stepper.tick(T0)
    paused = stepper.actions.pause_by("new-search", "prod", "dave", T0 + 10 * S)
    assert (paused.status, paused.reason) == ("paused", "paused by dave")
    stepper.tick(T0 + 2 * MIN)
    assert percentage(control_db) == 10
    stepper.actions.resume_by("new-search", "prod", "dave", T0 + 2 * MIN)
    stepper.tick(T0 + 3 * MIN)
    assert percentage(control_db) == 50
    for t in (T0 + 4 * MIN, T0 + 5 * MIN):
        stepper.tick(t)
    with pytest.raises(ConflictError):
        stepper.actions.resume_by("new-search", "prod", "dave", T0 + 6 * MIN)


def test_metrics_without_the_arm_tag_compare_the_step_with_the_window_before(
    stepper, store, control_db
):
    # One series per metric, no flag tag: errors jump from 5% to 15% at T0 + 1m.
    flushes = np.arange(T0 - 10 * MIN, NOW, 10 * S, dtype=np.int64)
    errors = np.where(flushes >= T0 + MIN, 750.0, 250.0)
    tags = {"service": "web"}
    series = (Series.of("http.requests.count", tags), Series.of("http.errors.count", tags))
    n = len(flushes)
    store.write(
        Samples(
            series,
            np.repeat(np.arange(2, dtype=np.int32), n),
            np.concatenate([flushes, flushes]),
            np.concatenate([np.full(n, 5000.0), errors]),
        )
    )
    make_flag(control_db, plan())
    stepper.tick(T0)
    stepper.tick(T0 + MIN)  # [T0, T0+1m] against [T0-1m, T0]: the same
    assert percentage(control_db) == 50
    stepper.tick(T0 + 2 * MIN)  # [T0+1m, T0+2m] against [T0, T0+1m]: tripled
    assert percentage(control_db) == 10
    state = state_of(control_db)
    assert state.evaluation is not None
    assert state.evaluation["metrics"][0]["mode"] == "windows"


def test_a_changed_plan_starts_again_and_a_removed_one_is_forgotten(stepper, store, control_db):
    write_arms(store, 5000, 0.05, 0.05)
    make_flag(control_db, plan(), percentage=30)
    stepper.tick(T0)
    state = state_of(control_db)
    assert (state.step, state.percentage) == (0, 30)  # above 10: kept
    assert titles(control_db) == ["new-search prod: rollout started: step 1 of 3 at 30%"]
    patch: dict[str, Any] = {"environments": {"prod": {"rollout": plan(steps=[20, 40])}}}
    patch_flag(control_db, "new-search", patch, who="bob", now_ns=T0 + 10 * S)
    stepper.tick(T0 + 20 * S)
    state = state_of(control_db)
    assert (state.step, state.percentage) == (0, 30)
    assert titles(control_db)[-1].startswith("new-search prod: rollout plan changed")
    patch = {"environments": {"prod": {"rollout": None}}}
    patch_flag(control_db, "new-search", patch, who="bob", now_ns=T0 + 30 * S)
    stepper.tick(T0 + 40 * S)
    assert load_rollout(control_db, "new-search", "prod") is None
