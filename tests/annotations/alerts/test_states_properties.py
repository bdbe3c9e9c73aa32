"""Invariants of the alert state machine over arbitrary runs of evaluations (Hypothesis)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.alerts.evaluate import Evaluation, instance_labels, label_key
from annotations.alerts.model import ALERTNAME, STATES, Rule, fingerprint
from annotations.alerts.states import RESOLVED_KEPT_NS, is_firing
from tests.annotations.alerts.steps import T0, Run, S, make_rule

HOSTS = ("a", "b")
# A host's outcome at one evaluation: a value (80 is the threshold), or missing.
outcomes = st.one_of(st.none(), st.sampled_from([10.0, 80.0, 80.5, 95.0]))
rounds = st.tuples(
    st.sampled_from([15 * S, 30 * S, 60 * S, 240 * S, 1200 * S]),  # time since the last one
    st.booleans(),  # the query fails
    st.fixed_dictionaries({h: outcomes for h in HOSTS}),
)
rules = st.builds(
    lambda for_, keep, no_data: make_rule(
        **{"for": for_, "keep_firing_for": keep, "no_data": no_data}
    ),
    st.sampled_from(["0s", "30s", "1m", "5m"]),
    st.sampled_from(["0s", "1m", "3m"]),
    st.sampled_from(["ok", "alerting", "nodata", "keep_last"]),
)


def evaluation_of(rule: Rule, fails: bool, by_host: dict[str, float | None]) -> Evaluation:
    if fails:
        return Evaluation(error="metric: broken")
    return Evaluation(
        {
            label_key(instance_labels(rule, {"host": h})): v
            for h, v in by_host.items()
            if v is not None
        }
    )


@pytest.mark.slow  # hundreds of examples: about a second or more
@settings(max_examples=300, deadline=None)
@given(rules, st.lists(rounds, min_size=1, max_size=30))
def test_states_keep_their_invariants(rule, plan):
    run = Run(rule)
    now = T0
    held_at: dict[str, list[tuple[int, bool | None]]] = defaultdict(list)
    episodes: dict[str, list[str]] = defaultdict(list)
    for gap, fails, by_host in plan:
        now += gap
        before = dict(run.instances)
        seen = len(run.transitions)
        run.at(now, evaluation_of(rule, fails, by_host))
        if not fails:
            for host, value in by_host.items():
                fp = fingerprint(instance_labels(rule, {"host": host}))
                held_at[fp].append((now, None if value is None else rule.holds(value)))
        for fp, instance in run.instances.items():
            assert fp == instance.fingerprint == fingerprint(instance.labels)
            assert instance.labels[ALERTNAME] == instance.rule == rule.name
            assert instance.state in STATES
            assert instance.evaluated_ns <= now
            if instance.state == "firing":
                assert instance.active_ns is not None
                assert instance.fired_ns is not None
                assert instance.active_ns <= instance.fired_ns <= now
                assert instance.resolved_ns is None
            if instance.state == "pending":
                assert instance.fired_ns is None
                assert instance.active_ns is not None
                # Pending past `for` only when it could not be evaluated: a failed query, or
                # a missing group left as it was (keep_last).
                assert (
                    now - instance.active_ns < rule.for_ns or fails or rule.no_data == "keep_last"
                )
            if instance.state == "resolved":
                assert instance.resolved_ns is not None
                assert now - instance.resolved_ns < RESOLVED_KEPT_NS
            assert (instance.state == "error") == bool(fails and instance.state == "error")
        for _, transition in run.transitions[seen:]:
            instance = transition.instance
            assert run.instances[instance.fingerprint] == instance
            if transition.kind == "firing":
                previous = before.get(instance.fingerprint)
                assert previous is None or not is_firing(previous)  # no second page
                assert instance.fired_ns == now
                assert instance.active_ns is not None
                assert now - instance.active_ns >= rule.for_ns
                if rule.no_data == "ok":
                    # Firing only after holding at every evaluation since it went pending.
                    since = [h for t, h in held_at[instance.fingerprint] if t >= instance.active_ns]
                    assert all(since)
            if transition.kind == "resolved":
                assert instance.resolved_ns == now
                assert instance.last_held_ns is not None
                assert now - instance.last_held_ns >= rule.keep_firing_for_ns
            if transition.kind in ("firing", "resolved"):
                episodes[instance.fingerprint].append(transition.kind)
    for kinds in episodes.values():
        # One firing and one resolved transition per episode, in that order.
        assert kinds[::2] == ["firing"] * len(kinds[::2])
        assert kinds[1::2] == ["resolved"] * len(kinds[1::2])


@settings(max_examples=100, deadline=None)
@given(rules, st.lists(rounds, min_size=1, max_size=20))
def test_a_rule_that_never_holds_never_fires(rule, plan):
    rule = rule.model_copy(update={"threshold": 1000.0, "no_data": "ok"})
    run = Run(rule)
    now = T0
    for gap, fails, by_host in plan:
        now += gap
        run.at(now, evaluation_of(rule, fails, by_host))
        assert {i.state for i in run.instances.values()} <= {"error"}
    assert {t.kind for _, t in run.transitions} <= {"error"}
