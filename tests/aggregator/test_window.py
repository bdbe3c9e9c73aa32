"""One value per group over a whole window, on known data in a real store (both backends)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.errors import QueryError
from aggregator.query import TagFilter
from aggregator.window import GroupKey, WindowCache, group_key, window_tier, window_values
from storage.records import Samples
from tests.aggregator.conftest import DAY, HOST_A, HOST_C, HOUR, MIN, NOW, TIERS, S
from tests.aggregator.test_query_engine import roll_up_everything

WEB = (("service", "web"),)
DB = (("service", "db"),)
NONE = (("service", ""),)
AGGS = ("mean", "sum", "count", "min", "max", "last")


def values(store, agg="mean", group_by=("service",), tags="", metric="cpu", **window):
    start_ns = window.pop("start_ns", NOW - 5 * MIN)
    end_ns = window.pop("end_ns", NOW)
    filters = TagFilter.parse_list(tags)
    return window_values(store, TIERS, metric, filters, agg, group_by, start_ns, end_ns, **window)


@pytest.mark.parametrize(
    ("agg", "expected"),
    [
        # web: a (1) and b (3), 30 points each in 5 minutes; db: c, 0..5 each minute; d: 10.
        ("mean", {WEB: 2.0, DB: 2.5, NONE: 10.0}),
        ("sum", {WEB: 120.0, DB: 75.0, NONE: 300.0}),
        ("count", {WEB: 60.0, DB: 30.0, NONE: 30.0}),
        ("min", {WEB: 1.0, DB: 0.0, NONE: 10.0}),
        ("max", {WEB: 3.0, DB: 5.0, NONE: 10.0}),
        # b's points come 5 s after a's; c's last point (NOW - 10 s) is 5.
        ("last", {WEB: 3.0, DB: 5.0, NONE: 10.0}),
    ],
)
def test_each_aggregate_over_the_last_five_minutes_by_service(store, agg, expected):
    assert values(store, agg) == expected


def test_without_group_by_every_series_adds_into_one_group(store):
    # (30 * 1 + 30 * 3 + 30 * 2.5 + 30 * 10) / 120 points
    assert values(store, group_by=()) == {(): 495 / 120}
    assert values(store, "count", group_by=()) == {(): 120.0}


def test_a_window_off_the_bucket_boundaries_holds_exactly_its_points(store):
    # c at NOW - 90 s ... NOW - 30 s: 3, 4, 5, 0, 1, 2, 3 (NOW - 20 s is past the end).
    window = {"start_ns": NOW - 95 * S, "end_ns": NOW - 25 * S}
    got = {
        agg: values(store, agg, group_by=("host",), tags="host:c", **window)
        for agg in ("sum", "count", "min", "max", "last", "mean")
    }
    host_c = (("host", "c"),)
    assert got == {
        "sum": {host_c: 18.0},
        "count": {host_c: 7.0},
        "min": {host_c: 0.0},
        "max": {host_c: 5.0},
        "last": {host_c: 3.0},
        "mean": {host_c: 18 / 7},
    }


def test_last_is_the_latest_point_of_the_group_whichever_series_has_it(store):
    store.write(Samples.from_points([(HOST_A, NOW - 1 * S, 42.0)]))
    assert values(store, "last")[WEB] == 42.0
    # And a's earlier last loses to b's later one when a has nothing newer.
    assert values(store, "last", end_ns=NOW - 2 * S, start_ns=NOW - MIN)[WEB] == 3.0


def test_groups_by_several_tags_with_missing_ones_empty(store):
    got = values(store, "max", group_by=("service", "host", "service"))
    assert got == {
        (("host", "a"), ("service", "web")): 1.0,
        (("host", "b"), ("service", "web")): 3.0,
        (("host", "c"), ("service", "db")): 5.0,
        (("host", "d"), ("service", "")): 10.0,
    }


@pytest.mark.parametrize(
    ("metric", "tags", "expected"),
    [
        ("cpu", "service:!web", {DB: 30.0, NONE: 30.0}),
        ("cpu", "host:[ab]", {WEB: 60.0}),
        ("c?u", "host:a", {WEB: 30.0}),
        ("*", "host:a", {WEB: 30.0, NONE: 30.0}),  # cpu{a} and mem{a}: metrics add up
        ("cpu", "host:zzz", {}),
        ("disk", "", {}),
    ],
)
def test_metric_globs_and_tag_filters(store, metric, tags, expected):
    assert values(store, "count", metric=metric, tags=tags) == expected


def test_a_window_without_points_has_no_groups(store):
    assert values(store, start_ns=NOW + HOUR, end_ns=NOW + 2 * HOUR) == {}


def test_older_than_raw_retention_reads_the_finest_rollup_tier_holding_it(store):
    roll_up_everything(store)
    later = NOW + 2 * DAY  # raw (kept 2 days) no longer covers the last hour before NOW
    assert window_tier(TIERS, NOW - HOUR, later).name == "1m"
    assert window_tier(TIERS, NOW - HOUR, NOW).name == "raw"
    assert window_tier(TIERS, NOW - 800 * DAY, NOW).name == "1h"  # none holds it: the coarsest
    # From the 1m tier the window starts on a whole minute: 30 s earlier, 3 more points of c.
    got = values(
        store,
        "count",
        group_by=(),
        tags="host:c",
        start_ns=NOW - HOUR + 30 * S,
        end_ns=NOW,
        now_ns=later,
    )
    assert got == {(): 360.0}
    raw = values(store, "count", group_by=(), tags="host:c", start_ns=NOW - HOUR + 30 * S)
    assert raw == {(): 357.0}


def test_the_rollup_tier_gives_the_same_aggregates_as_raw(store):
    roll_up_everything(store)
    window = {"start_ns": NOW - HOUR, "end_ns": NOW}
    for agg in ("mean", "sum", "count", "min", "max", "last"):
        raw = values(store, agg, **window)
        rolled = values(store, agg, now_ns=NOW + 2 * DAY, **window)
        assert rolled == raw, agg
    assert values(store, "sum", tags="host:c", **window) == {DB: 60 * 15.0}


def test_a_bad_aggregate_or_an_empty_window_is_a_query_error(store):
    with pytest.raises(QueryError, match="agg: 'median' is not one of"):
        values(store, "median")
    with pytest.raises(QueryError, match="window: must be longer than 0"):
        values(store, start_ns=NOW, end_ns=NOW)


def test_series_of_one_group_from_late_points_count_once(store):
    store.write(Samples.from_points([(HOST_C, NOW - 2 * MIN + 5 * S, 100.0)]))
    assert values(store, "count", tags="host:c") == {DB: 31.0}
    assert values(store, "max", tags="host:c") == {DB: 100.0}


@pytest.mark.slow  # a hundred windows read from the store
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(0, 2 * HOUR // S - 1).map(lambda s: NOW - 2 * HOUR + s * S),
    st.integers(1, 30 * MIN // S).map(lambda s: s * S),
    st.sampled_from([(), ("service",), ("host",), ("service", "host")]),
)
def test_each_group_summarises_exactly_the_raw_points_of_its_window(
    store, start_ns, length_ns, group_by
):
    """Against the raw points read back: counts, sums, extremes and the latest point."""
    end_ns = start_ns + length_ns
    points = store.read(store.series("cpu"), start_ns, end_ns)
    expected: dict[GroupKey, list[tuple[int, float]]] = {}
    for i, ts, value in zip(
        points.index.tolist(), points.ts_ns.tolist(), points.values.tolist(), strict=True
    ):
        key = group_key(points.series[i], group_by)
        expected.setdefault(key, []).append((ts, value))
    got = {agg: values(store, agg, group_by, start_ns=start_ns, end_ns=end_ns) for agg in AGGS}
    assert set(got["count"]) == set(expected)
    for key, timed in expected.items():
        vs = [v for _, v in timed]
        assert got["count"][key] == len(vs)
        assert got["sum"][key] == pytest.approx(sum(vs))
        assert (got["min"][key], got["max"][key]) == (min(vs), max(vs))
        assert got["min"][key] <= got["mean"][key] <= got["max"][key]
        latest_ns = max(t for t, _ in timed)
        assert got["last"][key] in {v for t, v in timed if t == latest_ns}  # ties: any of them


@pytest.mark.slow  # a hundred rounds of windows read from the store
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(0, 2 * HOUR // S - 1).map(lambda s: NOW - 2 * HOUR + s * S),
    st.lists(
        st.tuples(
            st.sampled_from(["cpu", "c?u", "*", "mem", "disk"]),
            st.sampled_from(["", "host:a", "host:[ab]", "service:!web", "service:db,host:c"]),
            st.sampled_from(AGGS),
            st.sampled_from([(), ("service",), ("host",), ("service", "host")]),
            st.sampled_from([MIN, 5 * MIN, 15 * MIN]),
        ),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_a_round_sharing_a_window_cache_gets_what_each_query_alone_gets(
    store, end_ns, queries, rolled_up
):
    """Rows taken from a cached window of all the metric's series, then filtered, equal the
    rows read for the matching series alone, to the last bit; also from a rollup tier."""
    if rolled_up:
        roll_up_everything(store)
    now_ns = NOW + 2 * DAY if rolled_up else None  # past the raw retention: rollup tiers
    cache = WindowCache()
    for metric, tags, agg, group_by, length_ns in queries:
        window = {"start_ns": end_ns - length_ns, "end_ns": end_ns, "now_ns": now_ns}
        alone = values(store, agg, group_by, tags, metric, **window)
        assert values(store, agg, group_by, tags, metric, cache=cache, **window) == alone
