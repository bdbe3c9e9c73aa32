"""The dashboards as people see them: real Chromium against served dashboards and real data."""

from __future__ import annotations

import csv
import io
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from dashboards.panels import keep_for
from dashboards.serve import open_link
from shipboard.server import dashboards_config
from shipboard.settings import Settings
from storage.records import NS_PER_S
from tests.dashboards.conftest import World
from tests.dashboards.seed import HOSTS, metric_points
from tests.dashboards.serving import DashServer

GRAPHS = ".panel-graph .main-svg"


def figure_data(page: Any, panel_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = page.evaluate(
        "(id) => document.querySelector(`#panel-${id} .js-plotly-plot`).data"
        ".map(t => ({name: t.name, uid: t.uid, x: Array.from(t.x), y: Array.from(t.y),"
        " hovertext: t.hovertext ? Array.from(t.hovertext) : null,"
        " customdata: t.customdata ? Array.from(t.customdata) : null}))",
        panel_id,
    )
    return data


def wait_for_location(page: Any, path_and_query: str) -> None:
    """Wait for a navigation made by a callback (history.pushState: no load event)."""
    page.wait_for_function(
        "(want) => location.pathname + location.search === want", arg=path_and_query
    )


def open_dashboard(page: Any, url: str, panels: int) -> None:
    page.goto(url)
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('.panel .js-plotly-plot')]"
        ".filter(p => p.data && p.data.length).length >= n",
        arg=panels,
        timeout=30_000,
    )


def test_hosts_dashboard_draws_every_panel_with_known_values(
    page: Any, open_server: DashServer, world: World, page_errors: list[str], artifacts: Any
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


def marker_trace(page: Any, panel_id: str, kind: str) -> dict[str, Any]:
    return next(t for t in figure_data(page, panel_id) if t["uid"] == f"annotations-{kind}")


def hover_marker(page: Any, panel_id: str, kind: str, index: int) -> str:
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
    page: Any, open_server: DashServer, world: World, page_errors: list[str], artifacts: Any
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
    page: Any, open_server: DashServer, page_errors: list[str]
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


def test_the_url_holds_range_and_variables_and_round_trips(
    page: Any, open_server: DashServer, page_errors: list[str]
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
    page: Any, open_server: DashServer, page_errors: list[str]
) -> None:
    open_dashboard(page, open_server.url + "/d/hosts", 8)
    box = page.locator("#panel-0-0 .nsewdrag[data-subplot=xy]").bounding_box()
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
    page: Any, open_server: DashServer, world: World, page_errors: list[str], artifacts: Any
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


@pytest.mark.slow
def test_a_wall_left_on_keeps_only_its_window_of_points(
    page: Any, open_server: DashServer, world: World, page_errors: list[str]
) -> None:
    """A 20 s wall with a point every second: each tick appends one to every line and removes
    the oldest, so the lines hold what the wall shows however long it is left on."""
    now_ns = time.time_ns()
    world.store.write(metric_points(now_ns - 60 * NS_PER_S, now_ns, step_s=1))
    open_dashboard(page, open_server.url + "/d/hosts?kiosk=1&refresh=1s&from=-20s", 8)
    keep = keep_for(20_000, 1000)  # a 1 s step over 20 s

    def lines() -> dict[str, list[int]]:
        """Panel 0-0's lines: the times of their points (without the nulls of gaps)."""
        return {t["name"]: [x for x in t["x"] if x is not None] for t in figure_data(page, "0-0")}

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


def test_a_panel_downloads_as_csv_with_its_values(page: Any, open_server: DashServer) -> None:
    open_dashboard(page, open_server.url + "/d/hosts?host=web-2", 8)
    href = page.get_attribute("#panel-0-0 .csv-link", "href")
    assert href.startswith("/csv/hosts/0-0?")
    with urllib.request.urlopen(open_server.url + href, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.read().decode())))
    assert len(rows) > 100
    assert {row["tags"] for row in rows} == {"host=web-2"}
    assert {float(row["value"]) for row in rows} == {HOSTS["web-2"]}


def test_a_panel_gets_about_a_point_per_pixel_of_the_window_it_is_drawn_in(
    page: Any, open_server: DashServer
) -> None:
    def drawn(browser_page: Any) -> tuple[int, int]:
        open_dashboard(browser_page, open_server.url + "/d/hosts?from=-1h", 8)
        href = browser_page.get_attribute("#panel-0-0 .csv-link", "href")
        longest = max(len(t["x"]) for t in figure_data(browser_page, "0-0"))
        return int(parse_qs(urlsplit(href).query)["points"][0]), longest

    wide_points, wide_longest = drawn(page)
    narrow = page.context.browser.new_context(viewport={"width": 1000, "height": 1000})
    try:
        narrow_points, narrow_longest = drawn(narrow.new_page())
    finally:
        narrow.close()
    # Three panels a row beside the 320 px change list, less 90 px of axis per panel:
    # (1600 - 320) // 3 - 90 and (1000 - 320) // 3 - 90.
    assert (wide_points, narrow_points) == (336, 136)
    assert 100 < narrow_longest <= narrow_points < wide_longest <= wide_points


def test_the_page_and_its_scripts_travel_compressed(page: Any, open_server: DashServer) -> None:
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
    page: Any, open_server: DashServer, world: World
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
    page: Any, closed_server: DashServer, world: World, page_errors: list[str]
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
    page: Any, closed_server: DashServer, world: World
) -> None:
    settings = Settings(data_dir=world.data_dir, dash_port=int(closed_server.url.rsplit(":", 1)[1]))
    link = open_link(dashboards_config(settings))
    assert link.startswith(closed_server.url + "/signin?link=")
    page.goto(link)
    page.wait_for_selector("#catalog")
    open_dashboard(page, closed_server.url + "/d/hosts", 8)
    page.context.clear_cookies()
    response = page.goto(link[:-3] + "abc")
    assert response.status == 401


def test_a_wall_screen_playlist_rotates_to_the_next_dashboard(
    page: Any, open_server: DashServer, page_errors: list[str]
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
