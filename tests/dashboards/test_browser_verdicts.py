"""Deploy verdicts as people see them: real Chromium against served dashboards whose deploys
carry verdicts in the real control DB: marker colours, the hover, and "What changed"."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from annotations.control.db import ControlDB
from annotations.control.notes import Annotation
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from tests.dashboards.drawn import open_dashboard
from tests.dashboards.seed import Seeded, seed
from tests.dashboards.serving import DashServer, start_dashboards
from tests.dashboards.test_browser_panels import hover_marker, marker_trace
from tests.dashboards.verdict_seed import seed_verdicts

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

GREEN, RED, GREY = "rgb(46, 157, 87)", "rgb(217, 83, 79)", "rgb(154, 160, 166)"


@pytest.fixture(scope="module")
def judged(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DashServer, Seeded, dict[str, Annotation]]]:
    """The seeded world plus a deploy of web for each verdict, served open to read."""
    data_dir = tmp_path_factory.mktemp("verdicts")
    with EmbeddedStore(data_dir / "metrics", Settings(data_dir=data_dir).tiers()) as store:
        control = ControlDB.open("", data_dir)
        try:
            now_ns = time.time_ns()
            seeded = seed(store, control, now_ns)
            deploys = seed_verdicts(control, now_ns)
        finally:
            control.close()
    server = start_dashboards(data_dir, SHIPBOARD_ANONYMOUS_READ="true")
    yield server, seeded, deploys
    server.stop()


def test_deploy_markers_are_drawn_in_their_verdicts_colours_with_the_verdict_in_the_hover(
    page: Page,
    judged: tuple[DashServer, Seeded, dict[str, Annotation]],
    page_errors: list[str],
    artifacts: Path,
) -> None:
    server, seeded, deploys = judged
    open_dashboard(page, server.url + "/d/services", 4)
    trace = marker_trace(page, "0-0", "deploy")
    order = ["ok", "healthy", "regressed", "inconclusive", "failed", "pending"]
    ids = {name: deploys[name].id for name in ("healthy", "regressed", "inconclusive", "pending")}
    assert trace["customdata"][1:4] + trace["customdata"][5:] == [
        ids[n] for n in ("healthy", "regressed", "inconclusive", "pending")
    ]
    assert trace["x"][0] == seeded.deploy_ok_ns // 1_000_000
    fills = page.evaluate(
        "() => [...document.querySelectorAll('#panel-0-0 .traceannotations-deploy .point')]"
        ".map(p => getComputedStyle(p).fill)"
    )
    colours = dict(zip(order, fills, strict=True))
    assert colours == {
        "ok": GREEN,
        "healthy": GREEN,
        "regressed": RED,
        "inconclusive": GREY,
        "failed": RED,
        "pending": GREEN,
    }
    hover = hover_marker(page, "0-0", "deploy", order.index("regressed"))
    assert "verdict regressed: http.errors/http.requests 0.4% -> 0.9% (+125%)" in hover
    assert "99% interval +80% to +170%, binomial test, 12000/11800 samples" in hover
    assert "confounders: flag new-search prod: 10% -> 25%" in hover
    assert "verdict pending" in hover_marker(page, "0-0", "deploy", order.index("pending"))
    page.screenshot(path=str(artifacts / "verdicts.png"), full_page=True)
    assert page_errors == []


def test_what_changed_shows_each_verdict_with_its_colour_and_every_metric_in_its_hover(
    page: Page,
    judged: tuple[DashServer, Seeded, dict[str, Annotation]],
    page_errors: list[str],
) -> None:
    server, _, deploys = judged
    open_dashboard(page, server.url + "/d/services", 4)
    shown = {
        name: page.evaluate(
            "(id) => { const v = document.querySelector(`#change-${id} .verdict`);"
            " return [v.textContent, v.title, getComputedStyle(v).color]; }",
            deploys[name].id,
        )
        for name in ("healthy", "regressed", "inconclusive")
    }
    text, title, colour = shown["regressed"]
    assert text == "verdict regressed: http.errors/http.requests 0.4% -> 0.9% (+125%)"
    assert title.splitlines() == [
        text,
        "healthy: http.latency p99 180 -> 183.6 (+2%), 99% interval -4% to +8%, quantile test,"
        " 5000/5100 samples",
        "regressed: http.errors/http.requests 0.4% -> 0.9% (+125%), 99% interval +80% to"
        " +170%, binomial test, 12000/11800 samples, a day earlier 0.41%",
        "confounders: flag new-search prod: 10% -> 25%",
    ]
    assert colour == RED
    assert shown["healthy"][0] == "verdict healthy: http.errors/http.requests 0.4% -> 0.42% (+5%)"
    assert shown["healthy"][2] == GREEN
    assert shown["inconclusive"][2] == "rgb(122, 127, 135)"
    assert page_errors == []
