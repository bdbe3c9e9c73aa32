"""Query parameters: what is accepted, what is refused (and how it says so), tier choice, output."""

from __future__ import annotations

import csv
import io

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.errors import QueryError
from aggregator.query import (
    QueryRequest,
    QueryResult,
    ResultSeries,
    TagFilter,
    choose_tier,
    result_csv,
    result_json,
)
from storage.records import NS_PER_S, Series, Tier

NOW = 1_700_000_000 * NS_PER_S
MIN = 60 * NS_PER_S
DAY = 86400 * NS_PER_S
TIERS = (
    Tier("raw", 0, 2 * DAY),
    Tier("1m", MIN, 14 * DAY),
    Tier("10m", 10 * MIN, 90 * DAY),
    Tier("1h", 60 * MIN, 730 * DAY),
)


def request(**params: str) -> QueryRequest:
    return QueryRequest.from_params({"metric": "cpu", **params}, NOW, 1500)


def test_defaults_are_the_last_hour_mean_auto_step():
    q = request()
    assert (q.metric, q.start_ns, q.end_ns, q.step_ns, q.agg) == (
        "cpu",
        NOW - 60 * MIN,
        NOW,
        None,
        "mean",
    )
    assert (q.tag_filters, q.group_by, q.max_points, q.now_ns) == ((), (), 1500, NOW)


def test_every_parameter_is_read():
    q = request(
        tags="host:web-*,env:!dev, dc:eu",
        **{"from": "-6h", "to": "-1h"},
        step="5m",
        agg="max",
        group_by="dc,host",
        max_points="100",
    )
    assert q.tag_filters == (
        TagFilter("host", "web-*"),
        TagFilter("env", "dev", negate=True),
        TagFilter("dc", "eu"),
    )
    assert (q.start_ns, q.end_ns, q.step_ns) == (NOW - 360 * MIN, NOW - 60 * MIN, 5 * MIN)
    assert (q.agg, q.group_by, q.max_points) == ("max", ("dc", "host"), 100)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"metric": ""}, "metric: required, e.g. metric=cpu.usage_user"),
        ({"from": "yesterday"}, "from: 'yesterday' is not a time (use now, -15m"),
        ({"to": "soon"}, "to: 'soon' is not a time"),
        ({"from": "-1h", "to": "-2h"}, "from: must be before to"),
        ({"from": "9999999999999999999"}, "from: '9999999999999999999' is out of range"),
        ({"from": "5000000000"}, "from: must be between 1970 and 2116"),
        ({"agg": "avg"}, "agg: 'avg' is not one of mean, min, max, sum, count, last"),
        (
            {"step": "fast"},
            "step: 'fast' is not a duration (write e.g. 30s, 5m, 6h, 7d, 1y), or auto",
        ),
        ({"step": "0"}, "step: '0' is below the 1 ms resolution"),
        ({"max_points": "0"}, "max_points: must be a whole number from 1 to 1500"),
        ({"max_points": "5000"}, "max_points: must be a whole number from 1 to 1500"),
        ({"max_points": "²"}, "max_points: must be a whole number from 1 to 1500"),
        ({"step": "99999999w"}, "step: '99999999w' is longer than a graph can be"),
        ({"tags": "host"}, "tags: 'host' is not key:value (e.g. host:web-*,env:!dev)"),
        ({"tags": "host:"}, "tags: 'host:' is not key:value"),
    ],
)
def test_bad_parameters_say_what_to_fix(params, message):
    with pytest.raises(QueryError) as caught:
        request(**params)
    assert str(caught.value).startswith(message)
    assert caught.value.parameter == message.split(":")[0]
    assert caught.value.status == 400
    assert isinstance(caught.value, ValueError)


def test_tag_filters_match_exact_glob_and_negation():
    web = Series.of("cpu", {"host": "web-1", "env": "prod"})
    db = Series.of("cpu", {"host": "db-1"})
    assert TagFilter("host", "web-*").matches(web)
    assert not TagFilter("host", "web-*").matches(db)
    assert TagFilter("env", "prod").matches(web)
    assert not TagFilter("env", "prod").matches(db)
    assert TagFilter("env", "dev", negate=True).matches(db)  # no env tag is not env=dev
    assert not TagFilter("env", "prod", negate=True).matches(web)


@pytest.mark.parametrize(
    ("span", "step", "tier", "step_ns"),
    [
        ("-1h", "auto", "raw", 5 * NS_PER_S),
        ("-6h", "auto", "raw", 15 * NS_PER_S),
        ("-24h", "auto", "1m", MIN),
        ("-24h", "5m", "1m", 5 * MIN),
        ("-7d", "auto", "10m", 10 * MIN),
        ("-7d", "1h", "1h", 60 * MIN),
        ("-30d", "auto", "10m", 30 * MIN),
        ("-30d", "2h", "1h", 120 * MIN),
        ("-365d", "auto", "1h", 6 * 60 * MIN),
        # 1 m over 30 d would be 43,200 points: the step grows to stay under max_points.
        ("-30d", "1m", "10m", 30 * MIN),
        # 10 s over 3 d: raw no longer covers it, and 1,500 points need 5 m.
        ("-3d", "10s", "1m", 5 * MIN),
        # Beyond every retention, the coarsest tier still answers.
        ("-1000d", "auto", "1h", DAY),
    ],
)
def test_tier_choice(span, step, tier, step_ns):
    chosen, got_step = choose_tier(TIERS, request(**{"from": span}, step=step))
    assert (chosen.name, got_step) == (tier, step_ns)


def test_step_falls_back_to_a_multiple_of_the_only_covering_tier():
    # Over 60 days only 10m and 1h cover; 65 m is a multiple of neither, so it becomes 70 m.
    chosen, step = choose_tier(TIERS, request(**{"from": "-60d"}, step="65m"))
    assert (chosen.name, step) == ("10m", 70 * MIN)


RESULT = QueryResult(
    (
        ResultSeries(
            "cpu",
            {"host": "a", "dc": "eu"},
            np.array([1_700_000_000_000, 1_700_000_060_000], np.int64),
            np.array([1.5, 2.0]),
        ),
    ),
    60_000,
    "1m",
)


def test_result_json_shape():
    assert orjson.loads(result_json(RESULT)) == {
        "series": [
            {
                "metric": "cpu",
                "tags": {"host": "a", "dc": "eu"},
                "points": [[1_700_000_000_000, 1.5], [1_700_000_060_000, 2.0]],
            }
        ],
        "step_ms": 60_000,
        "tier": "1m",
    }


def test_result_csv_has_one_row_per_point():
    rows = list(csv.reader(io.StringIO(result_csv(RESULT))))
    assert rows == [
        ["metric", "tags", "time_ms", "time_iso", "value"],
        ["cpu", "dc=eu;host=a", "1700000000000", "2023-11-14T22:13:20.000Z", "1.5"],
        ["cpu", "dc=eu;host=a", "1700000060000", "2023-11-14T22:14:20.000Z", "2.0"],
    ]


KEYS = ("metric", "tags", "from", "to", "step", "agg", "group_by", "max_points")
param_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["-1h", "now", "5m", "auto", "mean", "host:a*", "0", "1500", "x:!y,z:w"]),
)


@pytest.mark.slow
@given(st.dictionaries(st.sampled_from(KEYS), param_values))
def test_any_parameters_give_a_request_or_a_query_error(params):
    try:
        q = QueryRequest.from_params(params, NOW, 1500)
    except QueryError as error:
        refused: str | None = error.parameter
    else:
        refused = None
        assert q.start_ns < q.end_ns
        assert 1 <= q.max_points <= 1500
        assert q.metric
    assert refused is None or refused in KEYS
