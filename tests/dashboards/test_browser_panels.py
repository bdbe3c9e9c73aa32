"""What a dashboard draws, as people see it: real Chromium against served dashboards and real
data (values, deploy, flag and alert markers, hover text, exports, point budget, compression)."""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.dashboards.conftest import World
from tests.dashboards.drawn import figure_data, open_dashboard
from tests.dashboards.seed import HOSTS
from tests.dashboards.serving import DashServer

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow


def test_hosts_dashboard_draws_every_panel_with_known_values(
    page: Page, open_server: DashServer, world: World, page_errors: list[str], artifacts: Path
) -> None:
    open_dashboard(page, open_server.url + "/d/hosts", 8)
    cpu = {t["name"]: t for t in figure_data(page, "0-0")}
    for host, value in HOSTS.items():
        trace = cpu[f"host={host}"]
        points = [y for y in trace["y"] if y is not None]
        assert len(points) > 100
        assert set(points) == {value}
    page.screenshot(path=str(artifacts / "hosts.png"), full_page=True)
    assert page_errors == []


def marker_trace(page: Page, panel_id: str, kind: str) -> dict[str, Any]:
    return next(t for t in figure_data(page, panel_id) if t["uid"] == f"annotations-{kind}")


def hover_marker(page: Page, panel_id: str, kind: str, index: int) -> str:
    """Move the mouse onto a marker (plotly's drag layer covers it) and read the hover label."""
    position = page.evaluate(
        """([id, uid, i]) => {
            const gd = document.querySelector(`#panel-${id} .js-plotly-plot`);
            const t = gd._fullData.find(t => t.uid === uid);
            const L = gd._fullLayout, box = gd.getBoundingClientRect();
            return {x: box.left + L._size.l + L.xaxis.l2p(t.x[i]),
                    y: box.top + L._size.t + L.yaxis2.l2p(t.y[i])};
        }""",
        [panel_id, f"annotations-{kind}", index],
    )
    for _ in range(5):  # plotly throttles hover events: try again when one was dropped
        page.mouse.move(1, 1)  # off every plot: the previous hover label goes away
        page.wait_for_timeout(100)
        page.mouse.move(position["x"], position["y"], steps=5)
        try:
            page.wait_for_function(
                "(id) => document.querySelectorAll(`#panel-${id} .hoverlayer .hovertext`).length",
                arg=panel_id,
                timeout=1000,
            )
            break
        except PlaywrightTimeout:
            continue
    text: str = page.evaluate(
        "(id) => { const t = document.querySelector(`#panel-${id} .hoverlayer .hovertext text`);"
        " const lines = [...t.querySelectorAll('tspan.line')].map(l => l.textContent);"
        " return lines.length ? lines.join('\\n') : t.innerHTML; }",
        panel_id,
    )
    return text


def test_services_dashboard_marks_deploys_at_their_times_with_hover_text(
    page: Page, open_server: DashServer, world: World, page_errors: list[str], artifacts: Path
) -> None:
    open_dashboard(page, open_server.url + "/d/services", 4)
    seeded = world.seeded
    deploys = marker_trace(page, "0-0", "deploy")
    assert deploys["x"] == [seeded.deploy_ok_ns // 1_000_000, seeded.deploy_failed_ns // 1_000_000]
    flags = marker_trace(page, "0-0", "flag")
    assert seeded.flag_ns // 1_000_000 in flags["x"]
    requests = {
        t["name"]: t for t in figure_data(page, "0-0") if not t["uid"].startswith("annotations")
    }
    assert set(requests) == {"service=api", "service=web"}
    assert {y for y in requests["service=web"]["y"] if y is not None} == {120.0}

    good = hover_marker(page, "0-0", "deploy", 0)
    assert "deploy web 1.2.3 to prod" in good
    assert "succeeded · version 1.2.3" in good
    assert "by alice" in good
    assert "change: https://git.example.com/web/compare/1.2.2...1.2.3" in good
    assert "<script>window.__pwned = 1</script>" in good  # shown as text, never run
    bad = hover_marker(page, "0-0", "deploy", 1)
    assert "failed · version 7.0.0" in bad
    assert "by bob" in bad
    assert "javascript:" not in bad
    flag = hover_marker(page, "0-0", "flag", flags["x"].index(seeded.flag_ns // 1_000_000))
    assert "new-search prod: 10% -> 25%" in flag
    assert "by carol" in flag
    # A failed deploy looks different: red and dashed where a good one is green and solid.
    lines = page.evaluate(
        "() => document.querySelector('#panel-0-0 .js-plotly-plot').layout.shapes"
        ".filter(s => s.type === 'path' && s.line.width > 0)"
        ".map(s => [s.path, s.line.color, s.line.dash])"
    )
    assert [f"M{seeded.deploy_ok_ns // 1_000_000},0V1", "#2e9d57", "solid"] in lines
    assert [f"M{seeded.deploy_failed_ns // 1_000_000},0V1", "#d9534f", "dash"] in lines
    # ... and the browser draws them where the markers are.
    drawn = page.evaluate(
        """() => {
            const gd = document.querySelector('#panel-0-0 .js-plotly-plot');
            const marker = gd.querySelectorAll('.traceannotations-deploy .point')[1]
                .getBoundingClientRect();
            const line = [...gd.querySelectorAll('.shapelayer path')]
                .find(p => p.style.stroke === 'rgb(217, 83, 79)').getBoundingClientRect();
            return [marker.left + marker.width / 2, line.left];
        }"""
    )
    assert drawn[0] == pytest.approx(drawn[1], abs=2)
    page.screenshot(path=str(artifacts / "services.png"), full_page=True)
    assert page.evaluate("() => window.__pwned") is None
    assert page_errors == []


def test_script_in_a_deploy_description_stays_inert(
    page: Page, open_server: DashServer, page_errors: list[str]
) -> None:
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    open_dashboard(page, open_server.url + "/d/services", 4)
    changes = page.locator("#changes")
    assert "<script>window.__pwned = 1</script>" in changes.inner_text()
    assert changes.locator("script").count() == 0
    assert changes.locator("img").count() == 0
    links = changes.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert links == ["https://git.example.com/web/compare/1.2.2...1.2.3"]
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__pwned") is None
    assert dialogs == []
    assert page_errors == []


def test_a_panel_downloads_as_csv_with_its_values(page: Page, open_server: DashServer) -> None:
    open_dashboard(page, open_server.url + "/d/hosts?host=web-2", 8)
    href = page.get_attribute("#panel-0-0 .csv-link", "href")
    assert href is not None
    assert href.startswith("/csv/hosts/0-0?")
    with urllib.request.urlopen(open_server.url + href, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.read().decode())))
    assert len(rows) > 100
    assert {row["tags"] for row in rows} == {"host=web-2"}
    assert {float(row["value"]) for row in rows} == {HOSTS["web-2"]}


def test_a_panel_gets_about_a_point_per_pixel_of_the_window_it_is_drawn_in(
    page: Page, chromium: Browser, open_server: DashServer
) -> None:
    def drawn(browser_page: Page) -> tuple[int, int]:
        open_dashboard(browser_page, open_server.url + "/d/hosts?from=-1h", 8)
        href = browser_page.get_attribute("#panel-0-0 .csv-link", "href")
        assert href is not None
        longest = max(len(t["x"]) for t in figure_data(browser_page, "0-0"))
        return int(parse_qs(urlsplit(href).query)["points"][0]), longest

    wide_points, wide_longest = drawn(page)
    narrow = chromium.new_context(viewport={"width": 1000, "height": 1000})
    try:
        narrow_points, narrow_longest = drawn(narrow.new_page())
    finally:
        narrow.close()
    # Three panels a row beside the 320 px change list, less 90 px of axis per panel:
    # (1600 - 320) // 3 - 90 and (1000 - 320) // 3 - 90.
    assert (wide_points, narrow_points) == (336, 136)
    assert 100 < narrow_longest <= narrow_points < wide_longest <= wide_points


def test_the_page_and_its_scripts_travel_compressed(page: Page, open_server: DashServer) -> None:
    open_dashboard(page, open_server.url + "/d/hosts", 8)
    sizes = page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".map(r => [new URL(r.name).pathname, r.transferSize, r.decodedBodySize])"
    )
    updates = [s for s in sizes if s[0] == "/_dash-update-component"]
    _, page_wire, page_size = max(updates, key=lambda s: s[2])
    assert page_size > 50_000  # the page, every panel's figure in it
    assert page_wire < page_size / 4
    (plotly,) = [s for s in sizes if s[0] == "/assets/plotly-basic.min.js"]
    assert plotly[1] < plotly[2] / 2


def test_a_bad_dashboard_file_is_named_with_its_line_and_the_others_still_work(
    page: Page, open_server: DashServer, world: World
) -> None:
    folder = world.data_dir / "dashboards"
    folder.mkdir(exist_ok=True)
    (folder / "broken.yaml").write_text("title: Broken\nrows:\n  - panels:\n      - {unit: ms}\n")
    (folder / "team.yaml").write_text(
        "title: Team\nrows:\n  - panels:\n      - {title: Web CPU, metric: cpu.user, "
        "tags: {host: web-1}}\n"
    )
    page.goto(open_server.url + "/")
    page.wait_for_selector("#spec-errors")
    errors = page.inner_text("#spec-errors")
    assert f"{folder / 'broken.yaml'}:4: missing 'metric'" in errors
    assert "Team" in page.inner_text("#catalog")
    open_dashboard(page, open_server.url + "/d/team", 1)
    trace = figure_data(page, "0-0")[0]
    assert {y for y in trace["y"] if y is not None} == {HOSTS["web-1"]}
    open_dashboard(page, open_server.url + "/d/hosts", 8)


def test_alerts_are_bands_from_firing_to_resolved_with_hover_and_a_change_entry(
    page: Page, open_server: DashServer, world: World, page_errors: list[str], artifacts: Path
) -> None:
    open_dashboard(page, open_server.url + "/d/services", 4)
    seeded = world.seeded
    fired_ms, resolved_ms = seeded.alert_ns // 1_000_000, seeded.alert_resolved_ns // 1_000_000
    firing_ms = seeded.firing_ns // 1_000_000
    assert marker_trace(page, "0-0", "alert")["x"] == [fired_ms, firing_ms]

    resolved = hover_marker(page, "0-0", "alert", 0)
    assert "HighErrorRate" in resolved
    assert "resolved after 7m00s · value 0.031 (> 0.02)" in resolved
    assert "service=web, severity=page" in resolved
    firing = hover_marker(page, "0-0", "alert", 1)
    assert "SlowCheckout" in firing
    assert "firing · value 2400 (> 1500)" in firing
    assert "service=web, team=<i>shop</i>" in firing  # shown as text, never as markup
    assert "(still firing)" in firing

    # One band shape for both, in the alerts' colour; the firing one's runs past the edge,
    # where the plot's clip path (the x axis' range) cuts it at now.
    band = page.evaluate(
        """() => {
            const gd = document.querySelector('#panel-0-0 .js-plotly-plot');
            const shape = gd.layout.shapes.find(s => s.fillcolor === '#c2255c');
            const path = [...gd.querySelectorAll('.shapelayer path')]
                .find(p => p.style.fill === 'rgb(194, 37, 92)');
            const clip = path.closest('[clip-path]').getAttribute('clip-path')
                .match(/#([^)'"]+)/)[1];
            const rect = document.getElementById(clip).querySelector('rect');
            const box = gd.getBoundingClientRect(), size = gd._fullLayout._size;
            return {path: shape.path, drawn: path.getBoundingClientRect().right,
                    clip: [rect.x.baseVal.value, rect.width.baseVal.value],
                    plot: [size.l, size.w], plotRight: box.left + size.l + size.w};
        }"""
    )
    assert band["path"].startswith(f"M{fired_ms},0H{resolved_ms}V1H{fired_ms}ZM{firing_ms},0H")
    assert band["drawn"] > band["plotRight"]
    assert band["clip"] == pytest.approx(band["plot"], abs=1)

    entries = page.locator("#changes .change-alert")
    assert entries.count() == 2
    newest, oldest = entries.nth(0).inner_text(), entries.nth(1).inner_text()
    assert "SlowCheckout" in newest
    assert "firing · value 2400 (> 1500)" in newest
    assert "team=<i>shop</i>" in newest
    assert "resolved after 7m00s · value 0.031 (> 0.02)" in oldest
    assert page.locator("#changes i").count() == 0
    page.screenshot(path=str(artifacts / "services-alerts.png"), full_page=True)
    assert page_errors == []
