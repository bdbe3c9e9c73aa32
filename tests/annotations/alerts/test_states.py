"""The alert state machine by hand: pending, firing, flap damping, no data, errors, ageing."""

from __future__ import annotations

import copy
from dataclasses import replace

from annotations.alerts.evaluate import Evaluation
from annotations.alerts.model import fingerprint
from annotations.alerts.states import RESOLVED_KEPT_NS, step
from tests.annotations.alerts.steps import MIN, T0, Run, S, failed, make_rule, values


def minutes(*numbers: float) -> list[int]:
    return [T0 + round(n * MIN) for n in numbers]


def test_for_0s_fires_at_the_first_evaluation_that_holds():
    run = Run(make_rule())
    run.at(T0, values(run.rule, {"a": 50.0}))
    assert run.instances == {}
    run.at(T0 + MIN, values(run.rule, {"a": 90.0}))
    alert = run.only()
    assert (alert.state, alert.value) == ("firing", 90.0)
    assert alert.active_ns == alert.fired_ns == alert.last_held_ns == T0 + MIN
    assert alert.labels == {"alertname": "HighCpu", "host": "a"}
    assert alert.fingerprint == fingerprint(alert.labels)
    assert run.kinds() == [(60, "firing", "a")]


def test_for_5m_fires_after_five_minutes_of_holding():
    run = Run(make_rule(**{"for": "5m"}))
    run.each(minutes(0, 1, 2, 3, 4, 4.75), values(run.rule, {"a": 95.0}))
    assert (run.only().state, run.only().active_ns) == ("pending", T0)
    run.at(T0 + 5 * MIN, values(run.rule, {"a": 96.0}))
    assert (run.only().state, run.only().fired_ns, run.only().value) == ("firing", T0 + 5 * MIN, 96)
    assert run.kinds() == [(0, "pending", "a"), (300, "firing", "a")]


def test_pending_that_stops_holding_is_dropped_and_starts_again_later():
    run = Run(make_rule(**{"for": "2m"}))
    run.each(minutes(0, 1), values(run.rule, {"a": 95.0}))
    run.at(T0 + 2 * MIN, values(run.rule, {"a": 10.0}))
    assert run.instances == {}
    run.each(minutes(3, 4), values(run.rule, {"a": 95.0}))
    assert (run.only().state, run.only().active_ns) == ("pending", T0 + 3 * MIN)
    run.at(T0 + 5 * MIN, values(run.rule, {"a": 95.0}))
    assert run.kinds() == [(0, "pending", "a"), (180, "pending", "a"), (300, "firing", "a")]


def test_keep_firing_for_damps_a_flap_into_one_episode():
    run = Run(make_rule(keep_firing_for="3m"))
    pattern = {0: 90.0, 1: 10.0, 2: 90.0, 3: 10.0, 4: 10.0, 5: 10.0, 6: 10.0}
    for minute, value in pattern.items():
        run.at(T0 + minute * MIN, values(run.rule, {"a": value}))
        if minute < 5:
            assert run.only().state == "firing", minute
    # Last held at minute 2; three minutes later it resolves, and only then.
    assert run.kinds() == [(0, "firing", "a"), (300, "resolved", "a")]
    resolved = run.only()
    assert (resolved.resolved_ns, resolved.last_held_ns, resolved.fired_ns) == (
        T0 + 5 * MIN,
        T0 + 2 * MIN,
        T0,
    )


def test_without_keep_firing_for_it_resolves_at_once_and_is_dropped_after_15_minutes():
    run = Run(make_rule())
    run.at(T0, values(run.rule, {"a": 90.0}))
    run.at(T0 + MIN, values(run.rule, {"a": 20.0}))
    assert (run.only().state, run.only().resolved_ns, run.only().value) == (
        "resolved",
        T0 + MIN,
        20,
    )
    run.at(T0 + MIN + RESOLVED_KEPT_NS - S, values(run.rule, {"a": 20.0}))
    assert run.only().state == "resolved"
    run.at(T0 + MIN + RESOLVED_KEPT_NS, values(run.rule, {"a": 20.0}))
    assert run.instances == {}
    assert run.kinds() == [(0, "firing", "a"), (60, "resolved", "a")]


def test_firing_again_after_resolved_is_a_new_episode():
    run = Run(make_rule())
    run.at(T0, values(run.rule, {"a": 90.0}))
    run.instances = {fp: replace(i, annotation_id=7) for fp, i in run.instances.items()}
    run.at(T0 + MIN, values(run.rule, {"a": 20.0}))
    assert run.only().annotation_id == 7  # the resolved one still names its annotation
    run.at(T0 + 2 * MIN, values(run.rule, {"a": 90.0}))
    again = run.only()
    assert (again.state, again.fired_ns, again.resolved_ns, again.annotation_id) == (
        "firing",
        T0 + 2 * MIN,
        None,
        None,
    )
    assert [k for _, k, _ in run.kinds()] == ["firing", "resolved", "firing"]


def test_each_group_is_its_own_instance():
    run = Run(make_rule())
    run.at(T0, values(run.rule, {"a": 90.0, "b": 50.0, "c": 99.0}))
    firing = sorted(i.labels["host"] for i in run.instances.values())
    assert firing == ["a", "c"]
    run.at(T0 + MIN, values(run.rule, {"a": 90.0, "b": 85.0, "c": 10.0}))
    states = {i.labels["host"]: i.state for i in run.instances.values()}
    assert states == {"a": "firing", "b": "firing", "c": "resolved"}


def test_annotations_are_rendered_with_the_labels_and_value():
    rule = make_rule(
        labels={"severity": "page"},
        annotations={"summary": "{host} at {value:.1f}% ({severity})", "bad": "{value:%Q}"},
    )
    run = Run(rule)
    run.at(T0, values(rule, {"a": 93.25}))
    alert = run.only()
    assert alert.annotations == {"summary": "a at 93.2% (page)", "bad": "{value:%Q}"}
    assert alert.labels == {"alertname": "HighCpu", "host": "a", "severity": "page"}


def test_no_data_ok_reads_a_missing_group_as_not_holding():
    run = Run(make_rule(no_data="ok"))
    run.at(T0, values(run.rule, {"a": 90.0, "b": 90.0}))
    run.at(T0 + MIN, values(run.rule, {"b": 90.0}))
    states = {i.labels["host"]: (i.state, i.value) for i in run.instances.values()}
    assert states == {"a": ("resolved", None), "b": ("firing", 90.0)}
    run.at(T0 + 2 * MIN, Evaluation())
    assert {i.state for i in run.instances.values()} == {"resolved"}


def test_no_data_alerting_fires_a_rule_wide_alert_when_the_query_returns_nothing():
    run = Run(make_rule(no_data="alerting", **{"for": "2m"}))
    run.each(minutes(0, 1, 2), Evaluation())
    alert = run.only()
    assert (alert.state, alert.value, alert.labels) == ("firing", None, {"alertname": "HighCpu"})
    # Data back, below the threshold: the rule-wide alert resolves; hosts are inactive.
    run.at(T0 + 3 * MIN, values(run.rule, {"a": 10.0}))
    assert (run.only().state, run.only().labels) == ("resolved", {"alertname": "HighCpu"})
    assert run.kinds() == [(0, "pending", ""), (120, "firing", ""), (180, "resolved", "")]


def test_no_data_alerting_keeps_a_missing_group_holding():
    run = Run(make_rule(no_data="alerting"))
    run.at(T0, values(run.rule, {"a": 90.0}))
    run.each(minutes(1, 2, 30), values(run.rule, {"b": 10.0}))
    assert (run.only().state, run.only().last_held_ns) == ("firing", T0 + 30 * MIN)


def test_no_data_nodata_pauses_a_firing_alert_without_paging_again():
    run = Run(make_rule(no_data="nodata"))
    run.at(T0, values(run.rule, {"a": 90.0}))
    run.each(minutes(1, 2), values(run.rule, {"b": 10.0}))
    paused = run.instances[fingerprint({"alertname": "HighCpu", "host": "a"})]
    assert (paused.state, paused.fired_ns, paused.value) == ("nodata", T0, None)
    run.at(T0 + 3 * MIN, values(run.rule, {"a": 91.0}))
    back = run.instances[paused.fingerprint]
    assert (back.state, back.fired_ns, back.value) == ("firing", T0, 91.0)
    assert run.kinds() == [(0, "firing", "a"), (60, "nodata", "a")]


def test_no_data_nodata_shows_the_rule_without_data_once():
    run = Run(make_rule(no_data="nodata"))
    run.each(minutes(0, 1, 2), Evaluation())
    alert = run.only()
    assert (alert.state, alert.labels, alert.active_ns) == (
        "nodata",
        {"alertname": "HighCpu"},
        None,
    )
    assert run.kinds() == [(0, "nodata", "")]
    run.at(T0 + 3 * MIN, values(run.rule, {"a": 90.0}))
    assert {i.labels.get("host"): i.state for i in run.instances.values()} == {"a": "firing"}


def test_no_data_keep_last_leaves_a_missing_group_as_it_was():
    run = Run(make_rule(no_data="keep_last", **{"for": "5m"}))
    run.at(T0, values(run.rule, {"a": 90.0}))
    before = run.only()
    run.each(minutes(1, 20), Evaluation())
    after = run.only()
    assert (after.state, after.value, after.active_ns) == ("pending", 90.0, T0)
    assert after.evaluated_ns == T0 + 20 * MIN
    assert replace(after, evaluated_ns=before.evaluated_ns) == before


def test_a_failed_query_shows_an_error_instance_saying_why():
    run = Run(make_rule())
    run.each(minutes(0, 1), failed("tags: host: is not key:value"))
    alert = run.only()
    assert (alert.state, alert.error, alert.labels) == (
        "error",
        "tags: host: is not key:value",
        {"alertname": "HighCpu"},
    )
    assert run.kinds() == [(0, "error", "")]
    run.at(T0 + 2 * MIN, values(run.rule, {"a": 10.0}))
    assert run.instances == {}


def test_a_failed_query_neither_resolves_nor_pages_a_firing_alert_again():
    run = Run(make_rule(**{"for": "1m"}))
    run.each(minutes(0, 1), values(run.rule, {"a": 90.0}))
    run.each(minutes(2, 3), failed("OSError: disk gone"))
    alert = run.only()
    assert (alert.state, alert.error, alert.fired_ns) == ("firing", "OSError: disk gone", T0 + MIN)
    run.at(T0 + 4 * MIN, values(run.rule, {"a": 90.0}))
    assert (run.only().state, run.only().error) == ("firing", "")
    assert run.kinds() == [(0, "pending", "a"), (60, "firing", "a")]


def test_step_leaves_its_input_as_it_was():
    rule = make_rule(keep_firing_for="1m")
    instances, _ = step(rule, {}, values(rule, {"a": 90.0, "b": 90.0}), T0)
    before = copy.deepcopy(instances)
    step(rule, instances, values(rule, {"a": 10.0}), T0 + 2 * MIN)
    step(rule, instances, failed(), T0 + 2 * MIN)
    assert instances == before
