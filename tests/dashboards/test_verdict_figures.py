"""Deploy verdicts on the graphs: the marker and line coloured by the verdict (healthy green,
regressed red and dashed, inconclusive grey, pending as before), its hover and its entry in
"What changed", for deploys stored in a real control DB."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from aggregator.query import QueryResult
from annotations.control.db import ControlDB
from annotations.control.notes import Annotation
from dashboards.figures import DEPLOY_COLORS, hover_text, panel_figure
from dashboards.pages import dashboard as dashboard_page
from dashboards.panels import _annotation_stamp
from dashboards.spec import load_catalog
from dashboards.verdicts import VERDICT_COLORS, verdict_color, verdict_lines
from storage.records import NS_PER_MS, NS_PER_S
from tests.dashboards.test_alert_figures import texts
from tests.dashboards.verdict_seed import MINUTE_NS, seed_verdicts

PANEL = load_catalog(None).dashboards["services"].panels()[0]
NOW_NS = 1_800_000_000 * NS_PER_S
RANGE_MS = ((NOW_NS - 60 * MINUTE_NS) // NS_PER_MS, NOW_NS // NS_PER_MS)


@pytest.fixture
def deploys(tmp_path: Path) -> Iterator[dict[str, Annotation]]:
    db = ControlDB.open("", tmp_path)
    try:
        yield seed_verdicts(db, NOW_NS)
    finally:
        db.close()


def figure(*annotations: Annotation) -> dict[str, Any]:
    return panel_figure(QueryResult((), 10_000, "raw"), annotations, PANEL, x_range_ms=RANGE_MS)


def test_markers_take_their_verdicts_colour_and_pending_keeps_the_status_colour(
    deploys: dict[str, Annotation],
) -> None:
    order = ("healthy", "regressed", "inconclusive", "pending")
    drawn = figure(*(deploys[s] for s in order))
    [trace] = [t for t in drawn["data"] if t["uid"] == "annotations-deploy"]
    assert trace["marker"]["color"] == ["#2e9d57", "#d9534f", "#9aa0a6", "#2e9d57"]
    assert trace["customdata"] == [deploys[s].id for s in order]
    lines = {
        (s["line"]["color"], s["line"]["dash"]): s["path"]
        for s in drawn["layout"]["shapes"]
        if s["line"].get("width")
    }
    at = {s: deploys[s].start_ns // NS_PER_MS for s in order}
    assert lines == {
        ("#2e9d57", "solid"): f"M{at['healthy']},0V1M{at['pending']},0V1",
        ("#d9534f", "dash"): f"M{at['regressed']},0V1",
        ("#9aa0a6", "solid"): f"M{at['inconclusive']},0V1",
    }
    shaded = {s["fillcolor"]: s["opacity"] for s in drawn["layout"]["shapes"] if "fillcolor" in s}
    assert shaded == {"#2e9d57": 0.1, "#d9534f": 0.22, "#9aa0a6": 0.1}


def test_a_failed_deploy_keeps_its_red_whatever_its_verdict(
    deploys: dict[str, Annotation],
) -> None:
    healthy = deploys["healthy"]
    failed = replace(healthy, extra=healthy.extra | {"status": "failed"})
    assert verdict_color(failed) is None
    [trace] = [t for t in figure(failed)["data"] if t["uid"] == "annotations-deploy"]
    assert trace["marker"]["color"] == [DEPLOY_COLORS["failed"]]
    assert VERDICT_COLORS["no_data"] == VERDICT_COLORS["inconclusive"]


def test_the_hover_gives_the_verdict_each_metric_and_the_confounders(
    deploys: dict[str, Annotation],
) -> None:
    lines = hover_text(deploys["regressed"]).split("<br>")
    assert lines[1:5] == [
        "succeeded · version 2.0.42",
        "verdict regressed: http.errors/http.requests 0.4% -&gt; 0.9% (+125%)",
        "healthy: http.latency p99 180 -&gt; 183.6 (+2%), 99% interval -4% to +8%,"
        " quantile test, 5000/5100 samples",
        "regressed: http.errors/http.requests 0.4% -&gt; 0.9% (+125%), 99% interval +80% to"
        " +170%, binomial test, 12000/11800 samples, a day earlier 0.41%",
    ]
    assert lines[5] == "confounders: flag new-search prod: 10% -&gt; 25%"
    assert hover_text(deploys["pending"]).split("<br>")[2] == "verdict pending"


def test_what_changed_shows_the_verdict_and_the_worst_metric_with_the_rest_in_its_hover(
    deploys: dict[str, Annotation],
) -> None:
    entry = dashboard_page._change(deploys["inconclusive"])
    assert texts(entry)[3:5] == [
        "succeeded",
        "verdict inconclusive: http.errors/http.requests 0.4% -> 1% (+150%)",
    ]
    [verdict] = [c for c in entry.children if getattr(c, "className", "").startswith("verdict")]
    assert verdict.className == "verdict verdict-inconclusive"
    assert verdict.title == "\n".join(verdict_lines(deploys["inconclusive"]))
    assert verdict.title.splitlines()[1] == (
        "inconclusive: http.errors/http.requests 0.4% -> 1% (+150%), 99% interval -90% to"
        " +900%, binomial test, 40/38 samples, a day earlier 0.41%"
    )


def test_a_verdict_arriving_changes_the_panels_stamp_so_it_redraws(
    deploys: dict[str, Annotation],
) -> None:
    pending = deploys["pending"]
    judged = replace(pending, extra=pending.extra | {"verdict": {"status": "healthy"}})
    assert _annotation_stamp([pending]) != _annotation_stamp([judged])
    assert verdict_lines(judged) == ["verdict healthy"]
