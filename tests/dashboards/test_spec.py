"""Dashboard files: what loads, and how a mistake is reported (file and line)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from aggregator.sketch_rollups import percentile
from dashboards.errors import SpecError
from dashboards.spec import Overlay, load_catalog, parse_dashboard, substitute

GOOD = """\
title: Web
variables:
  - {name: service, metric: http.requests.rate}
annotations:
  - {kind: deploy, tags: {service: $service}}
refresh: 30s
rows:
  - title: Traffic
    panels:
      - title: Requests
        metric: http.requests.rate
        tags: {service: $service}
        agg: sum
        group_by: [service]
        unit: req/s
        thresholds: [{value: 100, color: red}]
      - {metric: http.errors.rate, annotations: [{kind: flag}]}
"""


def test_a_good_file_loads_with_defaults_filled_in() -> None:
    board = parse_dashboard(GOOD, "web", "web.yaml")
    assert board.title == "Web"
    assert board.refresh_ms == 30_000
    first, second = board.panels()
    assert (first.id, first.agg, first.group_by, first.unit) == (
        "0-0",
        "sum",
        ("service",),
        "req/s",
    )
    assert first.tags == (("service", "$service"),)
    assert first.thresholds[0].value == 100.0
    assert first.overlays == (Overlay("deploy", (("service", "$service"),)),)
    assert (second.title, second.agg, second.overlays) == (
        "http.errors.rate",
        "mean",
        (Overlay("flag"),),
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("title: A\nrows:\n  - panels:\n      - {title: x}\n", 4, "missing 'metric'"),
        ("title: A\nrows:\n  - panels:\n      - {metric: m, agg: p101}\n", 4, "'p101' is not"),
        ("title: A\nrows:\n  - panels:\n      - {metric: m, unit: furlongs}\n", 4, "unit must be"),
        ("title: A\ncolour: red\nrows: []\n", 2, "unknown key 'colour'"),
        (
            "title: A\nrows:\n  - panels:\n      - {metric: m, tags: {host: $host}}\n",
            4,
            "$host is not a variable",
        ),
        ("title: A\nrows: [\n", 3, "not valid YAML"),
        ("title: A\nannotations: [{kind: release}]\nrows: []\n", 2, "kind must be one of"),
        ("rows: []\n", 1, "missing 'title'"),
        ("title: A\nrefresh: soon\nrows: []\n", 2, "not a duration"),
        ("title: A\nvariables:\n  - {name: from, metric: m}\nrows: []\n", 3, "taken by the URL"),
    ],
)
def test_a_mistake_names_the_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_dashboard(text, "bad", "/teams/bad.yaml")
    assert raised.value.path == "/teams/bad.yaml"
    assert raised.value.line == line
    assert message in str(raised.value)
    assert str(raised.value).startswith(f"/teams/bad.yaml:{line}: ")


def one_panel(fields: str) -> str:
    return f"title: A\nrows:\n  - panels:\n      - {{metric: http.latency, {fields}}}\n"


def test_percentiles_are_aggregates_and_a_description_is_the_title_hover() -> None:
    for agg, quantile in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999), ("p100", 1.0)):
        (panel,) = parse_dashboard(one_panel(f"agg: {agg}"), "a", "a.yaml").panels()
        assert panel.agg == agg
        assert percentile(panel.agg) == pytest.approx(quantile)
        assert panel.description == ""
    text = one_panel("agg: p99, description: '  From merged sketches.  '")
    (panel,) = parse_dashboard(text, "a", "a.yaml").panels()
    assert panel.description == "From merged sketches."


@given(st.integers(1, 1000))
def test_every_percentile_to_a_tenth_loads(tenths: int) -> None:
    agg = f"p{tenths / 10:g}"  # p0.1 ... p99.9, p100
    (panel,) = parse_dashboard(one_panel(f"agg: {agg}"), "a", "a.yaml").panels()
    assert percentile(panel.agg) == pytest.approx(tenths / 1000)


@pytest.mark.parametrize("agg", ["p101", "pxx", "p0", "p-1", "P99", "p99.", "99"])
def test_a_bad_percentile_says_what_an_aggregate_may_be(agg: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_dashboard(one_panel(f"agg: '{agg}'"), "a", "a.yaml")
    assert str(raised.value) == (
        f"a.yaml:4: agg {agg!r} is not an aggregate; use one of mean, min, max, sum, count, last,"
        " increase, rate"
        " or a percentile pNN or pNN.N above p0 and at most p100, such as p50, p99 or p99.9"
        " (of a StatsD timer's base name, from its sketches)"
    )


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
keys = st.sampled_from(["title", "rows", "panels", "metric", "tags", "agg", "unit", "kind", "x"])
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4)
).map(yaml.safe_dump)


@pytest.mark.slow
@given(st.text(max_size=300) | documents)
def test_any_text_loads_or_raises_spec_error_naming_the_file(text: str) -> None:
    path = "any.yaml"
    try:
        parse_dashboard(text, "any", "any.yaml")
    except SpecError as error:
        path = error.path
    assert path == "any.yaml"


def test_built_in_dashboards_load_and_a_bad_file_leaves_the_others_working(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("title: [\n")
    (tmp_path / "team.yaml").write_text("title: Team\nrows: []\n")
    (tmp_path / "hosts.yaml").write_text("title: Our hosts\nrows: []\n")
    catalog = load_catalog(tmp_path)
    assert sorted(catalog.dashboards) == ["hosts", "services", "team"]
    assert catalog.dashboards["hosts"].title == "Our hosts"  # the data dir's file wins
    (error,) = catalog.errors
    assert error.path == str(tmp_path / "broken.yaml")
    builtin = load_catalog(None).dashboards
    assert len(builtin["hosts"].panels()) == 8
    assert len(builtin["services"].panels()) == 4
    assert {v.name for v in builtin["services"].variables} == {"service", "environment"}
    p90, p99 = builtin["services"].rows[1].panels
    assert (p90.metric, p90.agg, p99.metric, p99.agg) == (
        "http.latency",
        "p90",
        "http.latency",
        "p99",
    )
    assert p90.group_by == p99.group_by == ("service",)
    assert [t.value for t in p99.thresholds] == [500.0]
    for panel in (p90, p99):
        assert "merged latency sketches of every host" in panel.description
        assert "within 0.54%" in panel.description
        assert "never an average of per-host" in panel.description


def test_variables_substitute_and_unset_ones_match_everything() -> None:
    assert substitute("$host", {"host": "web-1"}) == "web-1"
    assert substitute("$host", {}) == "*"
    assert substitute("web-*", {"host": "x"}) == "web-*"


def test_also_sources_with_a_ratio_scale_and_offset() -> None:
    text = (
        "title: A\nvariables: [{name: host, metrics: [cpu.user, node_load1]}]\nrows:\n"
        "  - panels:\n"
        "      - metric: mem.percent\n"
        "        tags: {host: $host}\n"
        "        group_by: [host]\n"
        "        also:\n"
        "          - metric: node_memory_MemAvailable_bytes\n"
        "            tags: {host: $host}\n"
        "            ratio_of: {metric: node_memory_MemTotal_bytes, agg: max}\n"
        "            scale: -100\n"
        "            offset: 100\n"
        "          - {metric: net.bytes_recv, agg: rate, group_by: [host, interface]}\n"
    )
    board = parse_dashboard(text, "a", "a.yaml")
    assert board.variables[0].metrics == ("cpu.user", "node_load1")
    (panel,) = board.panels()
    memory, network = panel.also
    assert (memory.metric, memory.agg, memory.group_by) == (
        "node_memory_MemAvailable_bytes",
        "mean",
        ("host",),
    )
    assert (memory.scale, memory.offset) == (-100.0, 100.0)
    assert memory.ratio_of is not None
    assert (memory.ratio_of.metric, memory.ratio_of.agg) == ("node_memory_MemTotal_bytes", "max")
    assert memory.ratio_of.group_by == ("host",)  # a ratio's parts are grouped alike
    assert (network.agg, network.group_by, network.ratio_of) == (
        "rate",
        ("host", "interface"),
        None,
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{metric: a, agg: rates}", "a.yaml:4: agg 'rates' is not an aggregate"),
        ("{metric: a, colour: red}", "a.yaml:4: unknown key 'colour'"),
        ("{agg: mean}", "a.yaml:4: missing 'metric'"),
        ("{metric: a, ratio_of: {agg: sum}}", "a.yaml:4: missing 'metric'"),
        ("{metric: a, scale: big}", "a.yaml:4: 'big' is not a number"),
        ("{metric: a, tags: {host: $nope}}", "a.yaml:4: $nope is not a variable of this dashboard"),
    ],
)
def test_a_bad_also_source_is_named(source: str, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_dashboard(one_panel(f"also: [{source}]"), "a", "a.yaml")
    assert str(raised.value).startswith(message)
