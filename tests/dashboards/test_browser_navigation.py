"""Moving through the dashboards in real Chromium: the URL holds the view, zoom, kiosk and wall
screens, playlists, and signing in."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page

from dashboards.panels import keep_for
from dashboards.serve import open_link
from shipboard.server import dashboards_config
from shipboard.settings import Settings
from storage.records import NS_PER_S
from tests.dashboards.conftest import World
from tests.dashboards.drawn import figure_data, open_dashboard, wait_for_location
from tests.dashboards.seed import HOSTS, metric_points
from tests.dashboards.serving import DashServer

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow


def test_the_url_holds_range_and_variables_and_round_trips(
    page: Page, open_server: DashServer, page_errors: list[str]
) -> None:
    open_dashboard(page, open_server.url + "/d/services?from=-6h&service=web", 4)
    names = {t["name"] for t in figure_data(page, "1-1") if not t["uid"].startswith("annotations")}
    assert names == {"service=web"}
    assert page.input_value(".from input") == "-6h"
    assert "web" in page.inner_text("#controls")
    span = page.evaluate(
        "() => { const r = document.querySelector('#panel-0-0 .js-plotly-plot').layout.xaxis.range;"
        " return r[1] - r[0]; }"
    )
    assert span == 6 * 3600 * 1000
    page.click(".range")
    page.get_by_text("Last 24 hours", exact=True).click()
    wait_for_location(page, "/d/services?from=-24h&service=web")
    page.wait_for_function(
        "() => { const p = document.querySelector('#panel-0-0 .js-plotly-plot');"
        " return p && p.layout && p.layout.xaxis.range[1] - p.layout.xaxis.range[0] === 86400000; }"
    )
    page.reload()
    open_dashboard(page, page.url, 4)
    assert page.input_value(".from input") == "-24h"
    names = {t["name"] for t in figure_data(page, "0-0") if not t["uid"].startswith("annotations")}
    assert names == {"service=web"}
    assert page_errors == []


def test_drag_to_zoom_sets_the_range_of_every_panel(
    page: Page, open_server: DashServer, page_errors: list[str]
) -> None:
    open_dashboard(page, open_server.url + "/d/hosts", 8)
    box = page.locator("#panel-0-0 .nsewdrag[data-subplot=xy]").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
    page.mouse.up()
    page.wait_for_function("() => location.search.includes('to=')")
    query = parse_qs(urlsplit(page.url).query)
    assert query["from"][0].endswith("Z")
    assert query["to"][0].endswith("Z")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.panel .js-plotly-plot')]"
        ".every(p => { const r = p.layout && p.layout.xaxis.range;"
        " return r && r[1] - r[0] > 60000 && r[1] - r[0] < 25 * 60000; })"
    )
    ranges = page.evaluate(
        "() => [...document.querySelectorAll('.panel .js-plotly-plot')]"
        ".map(p => p.layout.xaxis.range.join())"
    )
    assert len(ranges) == 8
    assert len(set(ranges)) == 1
    assert page.input_value(".from input").endswith("Z")
    assert page_errors == []


def test_kiosk_hides_controls_goes_dark_and_appends_new_points(
    page: Page, open_server: DashServer, world: World, page_errors: list[str], artifacts: Path
) -> None:
    updates: list[str] = []
    page.on(
        "response",
        lambda r: updates.append(r.text()) if "_dash-update-component" in r.url else None,
    )
    open_dashboard(page, open_server.url + "/d/hosts?kiosk=1&refresh=1s&from=-15m", 8)
    assert page.locator("#controls").count() == 0
    assert page.locator("#changes").count() == 0
    background = page.evaluate(
        "() => getComputedStyle(document.querySelector('.kiosk')).backgroundColor"
    )
    assert background == "rgb(11, 13, 16)"
    title_px = page.evaluate(
        "() => parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)"
    )
    assert title_px >= 28
    # The legend's names sit under the date labels, every entry in view.
    legend_gap = page.evaluate(
        """() => {
            const gd = document.querySelector('#panel-0-0 .js-plotly-plot');
            const dates = [...gd.querySelectorAll('.xtick text')]
                .map(t => t.getBoundingClientRect().bottom);
            const names = [...gd.querySelectorAll('.legend .legendtext')]
                .map(t => t.getBoundingClientRect().top);
            return Math.min(...names) - Math.max(...dates);
        }"""
    )
    assert legend_gap >= 0
    scrollbar = "() => document.querySelector('#panel-0-0 .legend .scrollbar').getBBox().height"
    assert page.evaluate(scrollbar) == 0
    before = {
        t["name"]: t["x"][-1] for t in figure_data(page, "0-0") if t["name"].startswith("host=")
    }
    # New points arrive while the wall screen is open: the next ticks append them.
    deadline = time.time() + 25
    grown = False
    while time.time() < deadline and not grown:
        now_ns = time.time_ns()
        world.store.write(metric_points(now_ns - 2 * NS_PER_S, now_ns + 1))
        page.wait_for_timeout(1000)
        after = {t["name"]: t for t in figure_data(page, "0-0") if t["name"].startswith("host=")}
        grown = all(after[name]["x"][-1] > last for name, last in before.items())
    assert grown
    new_values = {y for y in after["host=web-1"]["y"][-3:] if y is not None}
    assert new_values == {HOSTS["web-1"]}
    patches = [u for u in updates if "Extend" in u]
    assert patches, "the refresh appends points (a Patch), it does not redraw the figure"
    page.screenshot(path=str(artifacts / "hosts-kiosk.png"))
    assert page_errors == []


def test_a_wall_left_on_keeps_only_its_window_of_points(
    page: Page, open_server: DashServer, world: World, page_errors: list[str]
) -> None:
    """A 20 s wall with a point every second: each tick appends one to every line and removes
    the oldest, so the lines hold what the wall shows however long it is left on."""
    now_ns = time.time_ns()
    world.store.write(metric_points(now_ns - 60 * NS_PER_S, now_ns, step_s=1))
    open_dashboard(page, open_server.url + "/d/hosts?kiosk=1&refresh=1s&from=-20s", 8)
    keep = keep_for(20_000, 1000)  # a 1 s step over 20 s

    def lines() -> dict[str, list[int]]:
        """Panel 0-0's lines: the times of their points (without the nulls of gaps); not the
        markers of the alert that is still firing."""
        return {
            t["name"]: [x for x in t["x"] if x is not None]
            for t in figure_data(page, "0-0")
            if not t["uid"].startswith("annotations")
        }

    first = lines()
    assert set(first) == {"host=web-1", "host=web-2"}
    assert all(keep - 4 <= len(x) <= keep for x in first.values())
    deadline = time.time() + 40
    now = first
    while time.time() < deadline:
        now_ns = time.time_ns()
        world.store.write(metric_points(now_ns - 5 * NS_PER_S, now_ns + 1, step_s=1))
        page.wait_for_timeout(1000)
        now = lines()
        if all(now[n][0] > first[n][-1] for n in first):
            break  # every point drawn first has been replaced
    for name, x in now.items():
        assert x[0] > first[name][-1], name
        assert x[-1] >= first[name][-1] + 15_000, name
        assert keep - 4 <= len(x) <= keep, (name, len(x))
        assert x == sorted(x)
    assert page_errors == []


def test_a_wall_screen_playlist_rotates_to_the_next_dashboard(
    page: Page, open_server: DashServer, page_errors: list[str]
) -> None:
    open_dashboard(page, open_server.url + "/d/hosts?kiosk=1&playlist=hosts,services&rotate=5s", 8)
    page.wait_for_function("() => location.pathname === '/d/services'", timeout=15_000)
    open_dashboard(page, page.url, 4)
    assert parse_qs(urlsplit(page.url).query) == {
        "kiosk": ["1"],
        "playlist": ["hosts,services"],
        "rotate": ["5s"],
    }
    assert page.locator("#controls").count() == 0
    assert page_errors == []


def test_without_a_session_every_request_is_refused(closed_server: DashServer) -> None:
    for path, accept in (("/", "text/html"), ("/d/hosts", "text/html"), ("/_dash-layout", "*/*")):
        request = urllib.request.Request(closed_server.url + path, headers={"Accept": accept})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        refused.value.close()
    request = urllib.request.Request(
        closed_server.url + "/_dash-layout", headers={"Authorization": "Bearer sb_not-a-token"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    refused.value.close()


def test_a_viewer_token_signs_a_browser_in_with_an_httponly_cookie(
    page: Page, closed_server: DashServer, world: World, page_errors: list[str]
) -> None:
    page.goto(closed_server.url + "/d/services")
    assert page.locator("input[name=token]").count() == 1
    page.fill("input[name=token]", "sb_wrong")
    page.click("button[type=submit]")
    assert "Unknown or revoked token" in page.inner_text("body")
    page.fill("input[name=token]", world.seeded.viewer_token)
    page.click("button[type=submit]")
    open_dashboard(page, page.url, 4)
    assert urlsplit(page.url).path == "/d/services"
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "shipboard_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert world.seeded.viewer_token not in cookie["value"]
    # JavaScript sees the window-width cookie only, never the session.
    width = page.evaluate("() => window.innerWidth")
    assert page.evaluate("() => document.cookie") == f"shipboard_width={width}"
    # The two refusals above are logged as failed loads (at any time); nothing else may be.
    assert [e for e in page_errors if "status of 401" not in e] == []


def test_the_printed_sign_in_link_opens_the_dashboards(
    page: Page, closed_server: DashServer, world: World
) -> None:
    settings = Settings(data_dir=world.data_dir, dash_port=int(closed_server.url.rsplit(":", 1)[1]))
    link = open_link(dashboards_config(settings))
    assert link.startswith(closed_server.url + "/signin?link=")
    page.goto(link)
    page.wait_for_selector("#catalog")
    open_dashboard(page, closed_server.url + "/d/hosts", 8)
    page.context.clear_cookies()
    response = page.goto(link[:-3] + "abc")
    assert response is not None
    assert response.status == 401
