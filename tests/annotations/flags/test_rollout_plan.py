"""A flag environment's rollout plan: defaults, round trip, errors naming the field, summaries."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.flags.model import Flag, FlagChange, FlagError, describe_change, merge_patch
from annotations.flags.rollout_plan import Increase, RolloutDoc

PLAN = {
    "steps": [5.0, 25.0, 100.0],
    "interval": "10m",
    "guards": [
        {"metric": "http.errors.count", "ratio_of": "http.requests.count", "max_increase": "20%"},
        {"metric": "http.latency", "agg": "p99", "max_increase": 50.0},
    ],
    "min_samples": 200,
    "on_regression": "kill",
}


def with_plan(plan: Any) -> dict[str, Any]:
    return {"key": "f", "environments": {"prod": {"percentage": 5, "rollout": plan}}}


def test_plan_round_trips_and_is_carried_by_the_rules() -> None:
    flag = Flag.from_doc(with_plan(PLAN))
    assert flag.to_doc()["environments"]["prod"]["rollout"] == PLAN
    rollout = flag.environments["prod"].rollout
    assert rollout is not None
    assert rollout.interval_ns() == 600 * 10**9
    assert [g.increase() for g in rollout.guards] == [Increase(0.2, True), Increase(50.0, False)]


def test_plan_defaults_and_no_plan_no_key() -> None:
    doc = Flag.from_doc(with_plan({"steps": [10, 100], "interval": "2s"})).to_doc()
    assert doc["environments"]["prod"]["rollout"] == {
        "steps": [10.0, 100.0],
        "interval": "2s",
        "guards": [],
        "min_samples": 100,
        "on_regression": "rollback",
    }
    assert (
        "rollout"
        not in Flag.from_doc({"key": "f", "environments": {"p": {}}}).to_doc()["environments"]["p"]
    )


def test_merge_patch_null_removes_the_plan() -> None:
    doc = Flag.from_doc(with_plan(PLAN)).to_doc()
    patched = Flag.from_doc(merge_patch(doc, {"environments": {"prod": {"rollout": None}}}))
    assert patched.environments["prod"].rollout is None


@pytest.mark.parametrize(
    ("plan", "path"),
    [
        ({"interval": "1m"}, "steps"),
        ({"steps": [], "interval": "1m"}, "steps"),
        ({"steps": [0, 50], "interval": "1m"}, "steps[0]"),
        ({"steps": [5, 100.5], "interval": "1m"}, "steps[1]"),
        ({"steps": [5, 5.05], "interval": "1m"}, "steps[1]"),
        ({"steps": [5, 25, 20], "interval": "1m"}, "steps[2]"),
        ({"steps": [5, 5], "interval": "1m"}, "steps[1]"),
        ({"steps": ["5"], "interval": "1m"}, "steps[0]"),
        ({"steps": [5]}, "interval"),
        ({"steps": [5], "interval": "soon"}, "interval"),
        ({"steps": [5], "interval": "0s"}, "interval"),
        ({"steps": [5], "interval": 60}, "interval"),
        ({"steps": [5], "interval": "1m", "guards": [{}]}, "guards[0].metric"),
        ({"steps": [5], "interval": "1m", "guards": [{"metric": "a b"}]}, "guards[0].metric"),
        (
            {"steps": [5], "interval": "1m", "guards": [{"metric": "a", "max_increase": "x"}]},
            "guards[0].max_increase",
        ),
        (
            {"steps": [5], "interval": "1m", "guards": [{"metric": "a", "max_increase": -1}]},
            "guards[0].max_increase",
        ),
        (
            {"steps": [5], "interval": "1m", "guards": [{"metric": "a", "agg": "p999x"}]},
            "guards[0].agg",
        ),
        ({"steps": [5], "interval": "1m", "min_samples": 0}, "min_samples"),
        ({"steps": [5], "interval": "1m", "on_regression": "panic"}, "on_regression"),
        ({"steps": [5], "interval": "1m", "extra": 1}, "extra"),
    ],
)
def test_bad_plans_name_the_field(plan: Any, path: str) -> None:
    with pytest.raises(FlagError) as caught:
        Flag.from_doc(with_plan(plan))
    assert caught.value.path.startswith(f"environments.prod.rollout.{path}")


@given(st.lists(st.integers(1, 1000), min_size=1, max_size=8))
def test_steps_are_accepted_exactly_when_they_rise(tenths: list[int]) -> None:
    plan = {"steps": [t / 10 for t in tenths], "interval": "1m"}
    rising = all(a < b for a, b in itertools.pairwise(tenths))
    if not rising:
        with pytest.raises(FlagError, match=r"^environments\.prod\.rollout\.steps\["):
            Flag.from_doc(with_plan(plan))
        return
    rollout = Flag.from_doc(with_plan(plan)).environments["prod"].rollout
    assert rollout is not None
    assert rollout.steps == [t / 10 for t in tenths]


def test_describe_change_mentions_the_plan() -> None:
    before = Flag.from_doc({"key": "f", "environments": {"prod": {"percentage": 5}}})
    after = Flag.from_doc(with_plan(PLAN))
    assert describe_change(before, after) == [
        FlagChange("prod", "f prod: rollout plan 5/25/100% every 10m, 2 guards, kill")
    ]
    assert describe_change(after, before) == [FlagChange("prod", "f prod: rollout plan removed")]


def test_rollout_doc_checks_steps_itself() -> None:
    plan = RolloutDoc.model_validate({"steps": [50, 10], "interval": "1m"})
    assert plan.step_problem() == (1, "steps must rise: 10 after 50")
