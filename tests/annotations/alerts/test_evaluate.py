"""A rule's evaluation on a real embedded store: its instances' labels, ratios, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.scheduler import RollupScheduler
from annotations.alerts.evaluate import (
    Evaluation,
    denominator,
    evaluate,
    instance_labels,
    label_key,
)
from annotations.alerts.model import Rule
from annotations.alerts.rules import load_rules_file
from storage.embedded import EmbeddedStore
from storage.records import Samples, Series
from tests.aggregator.conftest import DAY, MIN, NOW, TIERS, S, known_points

WEB_A = Series.of("http.requests.count", {"service": "web", "host": "a"})
WEB_B = Series.of("http.requests.count", {"service": "web", "host": "b"})
API_A = Series.of("http.requests.count", {"service": "api", "host": "a"})
ERR_WEB_A = Series.of("http.errors.count", {"service": "web", "host": "a"})
ERR_API_A = Series.of("http.errors.count", {"service": "api", "host": "a"})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    """The aggregator tests' known cpu data for the last hour, plus HTTP counters per 10 s
    for the last 5 minutes: web{a} 10 and web{b} 30 requests, api{a} 20 (and 0 for 5 m
    before); errors: web{a} 1, api{a} 0."""
    with EmbeddedStore(tmp_path / "data", TIERS) as store:
        store.write(known_points(NOW - 60 * MIN, NOW))
        points = []
        for t in range(NOW - 10 * MIN, NOW, 10 * S):
            recent = t >= NOW - 5 * MIN
            points += [
                (WEB_A, t, 10.0),
                (WEB_B, t, 30.0),
                (API_A, t, 20.0 if recent else 0.0),
                (ERR_WEB_A, t, 1.0),
                (ERR_API_A, t, 0.0),
            ]
        store.write(Samples.from_points(points))
        yield store


def rule(**fields) -> Rule:
    base = {"name": "HighCpu", "query": {"metric": "cpu", "group_by": ["host"]}}
    return Rule.model_validate(base | {"op": ">", "threshold": 2} | fields)


def by(evaluation: Evaluation, label: str) -> dict[str, float]:
    return {dict(key).get(label, ""): value for key, value in evaluation.values.items()}


def test_labels_are_alertname_then_the_rules_then_the_groups(store):
    got = evaluate(store, TIERS, rule(labels={"severity": "page", "host": "x"}), NOW)
    assert got.error == ""
    assert got.values == {
        (("alertname", "HighCpu"), ("host", h), ("severity", "page")): v
        for h, v in {"a": 1.0, "b": 3.0, "c": 2.5, "d": 10.0}.items()
    }


def test_a_group_tag_cannot_rename_the_alert():
    labels = instance_labels(rule(), {"alertname": "Other", "host": "a"})
    assert labels == {"alertname": "HighCpu", "host": "a"}
    assert label_key(labels) == (("alertname", "HighCpu"), ("host", "a"))


def test_the_window_ends_now_and_reaches_back_its_length(store):
    # c over [NOW - 90 s, NOW - 30 s): 3, 4, 5, 0, 1, 2 (the window is 60 s, ending 30 s ago).
    one = rule(query={"metric": "cpu", "tags": {"host": "c"}, "agg": "sum"}, window="60s")
    assert evaluate(store, TIERS, one, NOW - 30 * S).values == {(("alertname", "HighCpu"),): 15}


def test_ratio_of_divides_group_by_group(store):
    errors = rule(
        query={"metric": "http.errors.count", "agg": "sum", "group_by": ["service"]},
        ratio_of={"metric": "http.requests.count"},
    )
    # web: 30 * 1 errors over 30 * (10 + 30) requests; api: 0 over 30 * 20.
    assert by(evaluate(store, TIERS, errors, NOW), "service") == {"web": 1 / 40, "api": 0.0}


def test_ratio_of_takes_tags_agg_and_group_by_from_the_query_unless_it_names_them(store):
    errors = rule(
        query={"metric": "http.errors.count", "tags": {"service": "web"}, "agg": "sum"},
        ratio_of={"metric": "http.requests.count", "tags": {"host": "a"}},
    )
    ratio = denominator(errors)
    assert ratio is not None
    assert (ratio.tags, ratio.agg, ratio.group_by) == ({"host": "a"}, "sum", ())
    # Errors of web over requests of host a (web 10 and api 20 per 10 s).
    assert by(evaluate(store, TIERS, errors, NOW), "") == {"": 30 / (30 * 30)}


def test_ratio_of_by_a_coarser_group_divides_each_group_by_its_total(store):
    requests = rule(
        query={"metric": "http.requests.count", "agg": "sum", "group_by": ["service", "host"]},
        ratio_of={"metric": "http.requests.count", "group_by": ["service"]},
    )
    got = {
        (dict(k)["service"], dict(k)["host"]): v
        for k, v in evaluate(store, TIERS, requests, NOW).values.items()
    }
    assert got == {("web", "a"): 0.25, ("web", "b"): 0.75, ("api", "a"): 1.0}


def test_a_zero_or_missing_denominator_gives_that_group_no_value(store):
    over_api = rule(
        query={"metric": "http.errors.count", "agg": "sum", "group_by": ["service"]},
        ratio_of={"metric": "http.requests.count", "tags": {"service": "api"}},
    )
    assert by(evaluate(store, TIERS, over_api, NOW), "service") == {"api": 0.0}
    # Five to ten minutes ago api had 0 requests: no value rather than a division by zero.
    then = evaluate(store, TIERS, over_api, NOW - 5 * MIN)
    assert then == Evaluation({})


def test_a_bad_tag_filter_is_the_evaluations_error(store):
    broken = rule(query={"metric": "cpu", "tags": {"host": "!"}})
    got = evaluate(store, TIERS, broken, NOW)
    assert got == Evaluation(error="tags: host:! is not key:value (e.g. host:web-*)")


def test_a_failing_store_is_the_evaluations_error_saying_why(tmp_path):
    store = EmbeddedStore(tmp_path / "data", TIERS)
    store.close()
    got = evaluate(store, TIERS, rule(), NOW)
    assert got == Evaluation(error=f"StoreClosedError: store {tmp_path / 'data'} is closed")


def test_the_example_error_rate_rule_holds_for_web_only(store):
    example = Path(__file__).resolve().parents[3] / "shipboard" / "rules.example.yaml"
    (error_rate,) = [r for r in load_rules_file(example).rules if r.name == "HighErrorRate"]
    got = evaluate(store, TIERS, error_rate, NOW)
    # web: 30 errors in 1200 requests; api: none in 600.
    assert by(got, "service") == {"web": 0.025, "api": 0.0}
    assert {s: error_rate.holds(v) for s, v in by(got, "service").items()} == {
        "web": True,
        "api": False,
    }


def test_nothing_matching_is_an_empty_evaluation(store):
    assert evaluate(store, TIERS, rule(query={"metric": "disk"}), NOW) == Evaluation({})


def test_a_replay_of_the_past_reads_the_rollups_of_windows_raw_no_longer_keeps(store):
    scheduler = RollupScheduler(store, TIERS, grace_ns=0)
    for _ in range(20):
        scheduler.run_once(NOW)
    store.checkpoint()
    later = NOW + 3 * DAY
    store.apply_retention(later)  # raw points are kept 2 days
    busy = rule(query={"metric": "cpu", "tags": {"host": "c"}, "agg": "count"}, window="10m")
    assert evaluate(store, TIERS, busy, NOW).values == {}
    replayed = evaluate(store, TIERS, busy, NOW, present_ns=later)
    assert replayed.values == {(("alertname", "HighCpu"),): 60.0}
