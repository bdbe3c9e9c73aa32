"""Alerts on the graphs: a band from firing to resolved (to past the right edge while firing),
a marker whose hover says rule, labels and value, escaped, and an entry in "What changed"."""

from __future__ import annotations

from typing import Any

from aggregator.query import QueryResult
from annotations.control.notes import Annotation
from dashboards.figures import ALERT_COLOR, OPEN_BAND_MS, hover_text, panel_figure
from dashboards.pages import dashboard as dashboard_page
from dashboards.spec import load_catalog
from storage.records import NS_PER_MS, NS_PER_S

PANEL = load_catalog(None).dashboards["services"].panels()[0]
MINUTE_NS = 60 * NS_PER_S
T0_NS = 1_800_000_000 * NS_PER_S


def alert(
    id: int, start_ns: int, end_ns: int | None, tags: dict[str, str], **extra: Any
) -> Annotation:
    return Annotation(
        id=id,
        kind="alert",
        start_ns=start_ns,
        end_ns=end_ns,
        tags={"alertname": "HighErrorRate", **tags},
        title="HighErrorRate",
        body="web errors at 3.1%",
        who="shipboard",
        extra={"rule": "HighErrorRate", "op": ">", "threshold": 0.02, **extra},
    )


RESOLVED = alert(1, T0_NS, T0_NS + 7 * MINUTE_NS + 12 * NS_PER_S, {"service": "web"}, value=0.031)
FIRING = alert(2, T0_NS + 20 * MINUTE_NS, None, {"team": "<b>search</b>"}, value=0.05)
RANGE_MS = (T0_NS // NS_PER_MS - 600_000, T0_NS // NS_PER_MS + 3_600_000)


def figure(*annotations: Annotation) -> dict[str, Any]:
    return panel_figure(QueryResult((), 10_000, "raw"), annotations, PANEL, x_range_ms=RANGE_MS)


def test_an_alert_is_a_band_from_firing_to_resolved_in_its_own_colour() -> None:
    shapes = figure(RESOLVED)["layout"]["shapes"]
    start_ms, end_ms = T0_NS // NS_PER_MS, RESOLVED.end_ns // NS_PER_MS  # type: ignore[operator]
    [band] = [s for s in shapes if s.get("fillcolor") == ALERT_COLOR]
    assert band["path"] == f"M{start_ms},0H{end_ms}V1H{start_ms}Z"
    assert band["xref"] == "x"
    assert band["layer"] == "below"
    [line] = [s for s in shapes if s["line"].get("color") == ALERT_COLOR]
    assert line["path"] == f"M{start_ms},0V1"


def test_a_firing_alert_band_runs_past_the_right_edge() -> None:
    [band] = [s for s in figure(FIRING)["layout"]["shapes"] if s.get("fillcolor") == ALERT_COLOR]
    start_ms = FIRING.start_ns // NS_PER_MS
    assert band["path"] == f"M{start_ms},0H{RANGE_MS[1] + OPEN_BAND_MS}V1H{start_ms}Z"


def test_alerts_share_one_band_shape_and_one_marker_trace() -> None:
    drawn = figure(RESOLVED, FIRING)
    bands = [s for s in drawn["layout"]["shapes"] if s.get("fillcolor") == ALERT_COLOR]
    assert len(bands) == 1
    assert bands[0]["path"].count("M") == 2
    [trace] = [t for t in drawn["data"] if t["uid"] == "annotations-alert"]
    assert trace["x"] == [RESOLVED.start_ns // NS_PER_MS, FIRING.start_ns // NS_PER_MS]
    assert trace["customdata"] == [1, 2]
    assert trace["marker"]["color"] == [ALERT_COLOR, ALERT_COLOR]
    assert trace["marker"]["symbol"] == "square"


def test_the_hover_says_rule_state_value_labels_and_when() -> None:
    lines = hover_text(RESOLVED).split("<br>")
    assert lines == [
        "<b>HighErrorRate</b>",
        "resolved after 7m12s · value 0.031 (&gt; 0.02)",
        "service=web",
        "by shipboard · 2027-01-15 08:00:00 UTC to 08:07:12 UTC (7m12s)",
        "web errors at 3.1%",
    ]


def test_the_hover_of_a_firing_alert_escapes_its_labels() -> None:
    lines = hover_text(FIRING).split("<br>")
    assert lines[1] == "firing · value 0.05 (&gt; 0.02)"
    assert lines[2] == "team=&lt;b&gt;search&lt;/b&gt;"
    assert lines[3] == "by shipboard · 2027-01-15 08:20:00 UTC (still firing)"


def test_an_alert_without_a_value_says_its_state_only() -> None:
    bare = alert(3, T0_NS, None, {})
    assert hover_text(bare).split("<br>")[1] == "firing"


def texts(component: Any) -> list[str]:
    """Every string in a Dash component tree, in order."""
    if isinstance(component, str):
        return [component]
    children = getattr(component, "children", None)
    if children is None:
        return []
    if not isinstance(children, list):
        children = [children]
    return [text for child in children for text in texts(child)]


def test_what_changed_lists_an_alert_with_its_state_and_labels() -> None:
    entry = dashboard_page._change(RESOLVED)
    assert getattr(entry, "className", None) == "change change-alert"
    assert texts(entry) == [
        "alert",
        "HighErrorRate",
        "shipboard · 2027-01-15 08:00:00 UTC",
        "resolved after 7m12s · value 0.031 (> 0.02)",
        "service=web",
        "web errors at 3.1%",
    ]
    firing = texts(dashboard_page._change(FIRING))
    assert "firing · value 0.05 (> 0.02)" in firing
    assert "team=<b>search</b>" in firing  # Dash escapes it as text
