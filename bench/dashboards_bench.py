"""Dashboards benchmark: a 12-panel wall over 7 days of 100 hosts, drawn in headless Chromium.

    .venv/bin/python -m bench.dashboards_bench [--runs 5] [--refresh-s 20]
    .venv/bin/python -m bench.dashboards_bench --endurance 1000   # a wall left on: ~20 minutes

Data: 100 hosts (10 racks) x 12 host metrics at 10 s for 7 days, stored as the embedded store
holds a week of it: 10-minute rollups (60 points each) for the week and raw 10 s points for the
last hour, plus 50 deploys over the week in the control DB. The wall dashboard has 12 panels, each
a metric's mean per rack (10 lines) with the deploys drawn, opened as `?kiosk=1&from=-7d`.

Measured, medians of `--runs` page loads alternated with a bare Dash page (one empty graph)
served the same way in the same run: time from navigation to every graph drawn. The bare page
is plain Dash (the full plotly.js bundle); a second bare page loads plotly.js's basic bundle, as
the dashboards do, to show the cost of drawing alone. Then the wall refreshes every second while
new points are written: per refresh (one request brings every panel up to date), the server's
time to answer (request start to response start, seen by the browser) and the response's size,
and both per panel.

`--endurance N` measures only a wall left on: the 12 panels over the last 5 minutes
(`?kiosk=1&from=-5m&refresh=1s`: a 1 s step, so with a point written every second each tick
appends a point to every line, as a 10 s wall over the last hour does every 10 s) for N ticks,
with the JS heap after a forced garbage collection and the dashboards process's RSS every
`--sample-every` ticks, and the points each panel holds at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import dash
import numpy as np
from dash import dcc
from playwright.sync_api import sync_playwright
from waitress.server import BaseWSGIServer, create_server

from bench.dashboards_endurance import endurance_main
from bench.dashboards_wall import (
    ALL_DRAWN,
    PANELS,
    STEP_S,
    VIEWPORT,
    seed,
    wall_samples,
    wall_series,
)
from dashboards.app import ASSETS
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S
from tests.dashboards.chromium import launch_chromium
from tests.dashboards.serving import start_dashboards
from tests.launcher import wait_for

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
BASIC_BUNDLE = ASSETS / "plotly-basic.min.js"


def start_bare(assets: Path | None = None) -> str:
    """A bare Dash page with one empty graph, under waitress in a thread of this process;
    `assets` is an assets folder (plain Dash has none)."""
    app = dash.Dash(__name__, assets_folder=str(assets) if assets else "assets")
    app.layout = dcc.Graph(id="empty", figure={"data": [], "layout": {}})
    server = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    assert isinstance(server, BaseWSGIServer)  # one host, one socket
    assert server.socket is not None
    url = f"http://127.0.0.1:{server.socket.getsockname()[1]}"
    wait_for(lambda: _answers(url + "/"), timeout_s=60, interval_s=0.1)
    return url


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def draw_ms(page: Any, url: str, graphs: int) -> float:
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_function(ALL_DRAWN, arg=graphs, timeout=120_000, polling="raf")
    elapsed: float = page.evaluate("() => performance.now()")
    return elapsed


def cold_draw_ms(browser: Any, url: str, graphs: int) -> float:
    """`draw_ms` in a fresh browser context: nothing cached, as a wall screen after a reboot."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        return draw_ms(context.new_page(), url, graphs)
    finally:
        context.close()


def measure_refresh(page: Any, url: str, store: EmbeddedStore, seconds: float) -> dict[str, Any]:
    """Open the wall refreshing every second, write new points every second, and collect the
    refresh responses: server time and bytes per refresh and per panel, and the JS heap."""
    client = page.context.new_cdp_session(page)
    page.goto(url)
    page.wait_for_function(ALL_DRAWN, arg=PANELS, timeout=120_000)
    samples: list[tuple[float, int]] = []

    def on_response(response: Any) -> None:
        if "_dash-update-component" not in response.url:
            return
        body = response.request.post_data or ""
        if '"tick"' not in body:
            return
        timing = response.request.timing
        samples.append((timing["responseStart"] - timing["requestStart"], len(response.body())))

    page.on("response", on_response)
    client.send("HeapProfiler.collectGarbage")
    heap_before = client.send("Runtime.getHeapUsage")["usedSize"]
    series = wall_series()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now_ns = time.time_ns()
        store.write(
            wall_samples(series, np.asarray([now_ns // (STEP_S * NS_PER_S) * STEP_S * NS_PER_S]))
        )
        page.wait_for_timeout(1000)
    page.remove_listener("response", on_response)
    client.send("HeapProfiler.collectGarbage")
    heap_after = client.send("Runtime.getHeapUsage")["usedSize"]
    times = [t for t, _ in samples]
    sizes = [s for _, s in samples]
    return {
        "refreshes": len(samples),
        "server_ms_median": statistics.median(times),
        "server_ms_max": max(times),
        "bytes_median": statistics.median(sizes),
        "bytes_max": max(sizes),
        "panels": PANELS,
        "heap_before_mb": heap_before / 1e6,
        "heap_after_mb": heap_after / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--refresh-s", type=float, default=20.0)
    parser.add_argument(
        "--one-line", action="store_true", help="one line per panel (all hosts) instead of a rack's"
    )
    parser.add_argument(
        "--endurance", type=int, default=0, help="only a wall left on, for this many ticks"
    )
    parser.add_argument("--sample-every", type=int, default=10, help="ticks between readings")
    args = parser.parse_args()
    if args.endurance:
        endurance_main(args)
        return
    with tempfile.TemporaryDirectory(prefix="shipboard-dash-bench-") as tmp:
        data_dir = Path(tmp)
        started = time.perf_counter()
        with seed(data_dir, time.time_ns(), per_rack=not args.one_line) as store:
            print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)
            dashboards = start_dashboards(data_dir, timeout_s=60, SHIPBOARD_ANONYMOUS_READ="true")
            url = dashboards.url
            basic_assets = data_dir / "basic-assets"
            basic_assets.mkdir()
            shutil.copy(BASIC_BUNDLE, basic_assets)
            try:
                pages = {
                    "wall": (url + "/d/wall?kiosk=1&from=-7d", PANELS),
                    "bare": (start_bare(), 1),
                    "bare-basic": (start_bare(basic_assets), 1),
                }
                with sync_playwright() as playwright:
                    browser = launch_chromium(playwright)
                    page = browser.new_page(viewport=VIEWPORT)
                    for target, graphs in pages.values():
                        draw_ms(page, target, graphs)  # warm the servers and the browser's cache
                    warm: dict[str, list[float]] = {name: [] for name in pages}
                    cold: dict[str, list[float]] = {name: [] for name in pages}
                    for run in range(args.runs):
                        for name, (target, graphs) in pages.items():
                            warm[name].append(draw_ms(page, target, graphs))
                            cold[name].append(cold_draw_ms(browser, target, graphs))
                        print(
                            f"run {run + 1}: "
                            + "; ".join(
                                f"{name} cached {warm[name][-1]:.0f} ms, "
                                f"cold {cold[name][-1]:.0f} ms"
                                for name in pages
                            ),
                            flush=True,
                        )
                    wall = pages["wall"][0]
                    page.goto(wall)
                    page.wait_for_function(ALL_DRAWN, arg=PANELS, timeout=120_000)
                    points = page.evaluate(
                        "() => [...document.querySelectorAll('.js-plotly-plot')]"
                        ".map(p => p.data.reduce((n, t) => n + t.x.length, 0))"
                    )
                    ARTIFACTS.mkdir(exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / "bench-wall.png"))
                    refresh = measure_refresh(
                        page, url + "/d/wall?kiosk=1&from=-7d&refresh=1s", store, args.refresh_s
                    )
                    browser.close()
            finally:
                dashboards.stop()
    print(f"points per panel (lines and markers): {points}")
    for name, runs in (("cached", warm), ("cold", cold)):
        wall_ms, bare_ms, basic_ms = (
            statistics.median(runs[page]) for page in ("wall", "bare", "bare-basic")
        )
        print(
            f"{name}: wall drawn in {wall_ms:.0f} ms, bare Dash page {bare_ms:.0f} ms: ratio "
            f"{wall_ms / bare_ms:.2f}; bare page on the basic bundle {basic_ms:.0f} ms: ratio "
            f"{wall_ms / basic_ms:.2f} (medians of {args.runs})"
        )
    n = refresh["panels"]
    print(
        f"refresh: {refresh['refreshes']} refreshes of {n} panels, server time median "
        f"{refresh['server_ms_median']:.1f} ms (max {refresh['server_ms_max']:.1f}), "
        f"{refresh['server_ms_median'] / n:.1f} ms per panel; response median "
        f"{refresh['bytes_median']:.0f} B (max {refresh['bytes_max']} B), "
        f"{refresh['bytes_median'] / n:.0f} B per panel; JS heap "
        f"{refresh['heap_before_mb']:.1f} MB -> {refresh['heap_after_mb']:.1f} MB"
    )


if __name__ == "__main__":
    main()
