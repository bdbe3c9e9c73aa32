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
import math
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dash
import numpy as np
import psutil
from dash import dcc
from playwright.sync_api import ViewportSize, sync_playwright
from waitress.server import BaseWSGIServer, create_server

from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, finish_deploy, start_deploy
from dashboards.app import ASSETS
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Rollups, Samples, Series
from tests.dashboards.chromium import launch_chromium
from tests.dashboards.serving import start_dashboards
from tests.launcher import wait_for

HOSTS = 100
RACKS = 10
DAYS = 7
STEP_S = 10
BUCKET_S = 600
DEPLOYS = 50
METRICS = (
    ("cpu.user", 30.0, "percent"),
    ("cpu.system", 8.0, "percent"),
    ("cpu.iowait", 2.0, "percent"),
    ("mem.percent", 55.0, "percent"),
    ("mem.used", 8e9, "bytes"),
    ("load.1m", 1.5, ""),
    ("load.5m", 1.4, ""),
    ("disk.used_percent", 60.0, "percent"),
    ("disk.read_bytes_per_s", 4e6, "bytes/s"),
    ("disk.write_bytes_per_s", 2e6, "bytes/s"),
    ("net.recv_bytes_per_s", 3e7, "bytes/s"),
    ("net.sent_bytes_per_s", 1e7, "bytes/s"),
)
PANELS = len(METRICS)  # a panel per metric, three a row
VIEWPORT: ViewportSize = {"width": 1920, "height": 1080}
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
BASIC_BUNDLE = ASSETS / "plotly-basic.min.js"
ALL_DRAWN = """(n) => {
    const plots = [...document.querySelectorAll('.js-plotly-plot')];
    return plots.length >= n && plots.every(p => p._fullLayout && p.querySelector('.main-svg')
        && (n === 1 || (p.data && p.data.length > 1)));
}"""


def _series() -> list[Series]:
    return [
        Series.of(
            metric, {"host": f"h{h:03d}", "rack": f"r{h // (HOSTS // RACKS)}", "site": "main"}
        )
        for metric, _, _ in METRICS
        for h in range(HOSTS)
    ]


def _levels(series: list[Series], times_ns: np.ndarray) -> np.ndarray:
    """Each series' value at each time: a daily wave around the metric's level, per host."""
    base = np.repeat([level for _, level, _ in METRICS], HOSTS)[:, None]
    phase = np.tile(np.arange(HOSTS) * 0.37, len(METRICS))[:, None]
    day = 2 * math.pi * (times_ns[None, :] / NS_PER_S) / 86400
    wave = 1 + 0.3 * np.sin(day + phase)
    out: np.ndarray = base * wave
    return out


def seed(data_dir: Path, now_ns: int, *, per_rack: bool = True) -> EmbeddedStore:
    """The week of data, the deploys and the wall (a line per rack, or one line per panel:
    the mean of all hosts); returns the store, open for writing more (and entered by the
    caller, whose writes then get the maintenance thread's checkpoints)."""
    settings = Settings(data_dir=data_dir)
    store = EmbeddedStore(data_dir / "metrics", settings.tiers())
    series = _series()
    bucket_ns = BUCKET_S * NS_PER_S
    raw_from = (now_ns - 3600 * NS_PER_S) // bucket_ns * bucket_ns
    buckets = np.arange(raw_from - DAYS * 86400 * NS_PER_S, raw_from, bucket_ns, dtype=np.int64)
    mean = _levels(series, buckets + bucket_ns // 2)
    n = len(buckets)
    spread = 0.05 * mean
    store.write_rollups(
        "10m",
        Rollups(
            series,
            np.repeat(np.arange(len(series), dtype=np.int32), n),
            np.tile(buckets, len(series)),
            (mean - spread).ravel(),
            (mean + spread).ravel(),
            (mean * 60).ravel(),
            np.full(mean.size, 60.0),
            mean.ravel(),
        ),
        raw_from,
    )
    times = np.arange(raw_from, now_ns, STEP_S * NS_PER_S, dtype=np.int64)
    store.write(_samples(series, times))
    control = ControlDB.open("", data_dir)
    rng = np.random.default_rng(7)
    starts = np.sort(
        rng.integers(now_ns - DAYS * 86400 * NS_PER_S, now_ns - 600 * NS_PER_S, DEPLOYS)
    )
    for i, start in enumerate(starts.tolist()):
        deploy = DeployStart(f"svc{i % 5}", "prod", f"1.{i}.0", description=f"change {i}")
        deploy_id = start_deploy(control, deploy, who="bench", start_ns=start)
        status = "failed" if i % 10 == 3 else "succeeded"
        finish_deploy(control, str(deploy_id), status=status, end_ns=start + 240 * NS_PER_S)
    control.close()
    group = "rack" if per_rack else "site"
    panels = "\n".join(
        f"      - {{title: {metric}, metric: {metric}, group_by: [{group}], unit: '{unit}'}}"
        for metric, _, unit in METRICS
    )
    rows = "\n".join(
        "  - panels:\n" + "\n".join(panels.splitlines()[i : i + 3]) for i in range(0, PANELS, 3)
    )
    folder = data_dir / "dashboards"
    folder.mkdir()
    (folder / "wall.yaml").write_text(
        f"title: Wall\nannotations: [{{kind: deploy}}]\nrows:\n{rows}\n"
    )
    return store


def _samples(series: list[Series], times: np.ndarray) -> Samples:
    values = _levels(series, times)
    return Samples(
        tuple(series),
        np.repeat(np.arange(len(series), dtype=np.int32), len(times)),
        np.tile(times, len(series)),
        values.ravel(),
    )


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
    series = _series()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now_ns = time.time_ns()
        store.write(
            _samples(series, np.asarray([now_ns // (STEP_S * NS_PER_S) * STEP_S * NS_PER_S]))
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


ENDURANCE_RANGE_S = 300  # the wall's range in --endurance: 1 s buckets at 1920 px
TICK_BODY = '"tick"'


def _tick_counter(page: Any) -> tuple[list[int], Callable[[Any], None]]:
    """A count of the wall's tick answers seen by the page, and the listener that counts."""
    count = [0]

    def on_response(response: Any) -> None:
        if "_dash-update-component" in response.url and TICK_BODY in (
            response.request.post_data or ""
        ):
            count[0] += 1

    return count, on_response


def _heap_mb(client: Any) -> float:
    client.send("HeapProfiler.collectGarbage")
    used: float = client.send("Runtime.getHeapUsage")["usedSize"]
    return used / 1e6


PANEL_POINTS = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .map(p => Math.max(...p.data.map(t => t.x.length)))"""


def measure_endurance(
    page: Any, url: str, store: EmbeddedStore, server_pid: int, ticks: int, every: int
) -> dict[str, Any]:
    """Open the wall refreshing every second and write a point per series every second for
    `ticks` ticks; every `every` ticks, the JS heap after a forced GC and the server's RSS."""
    series = _series()
    now_s = time.time_ns() // NS_PER_S
    # A full window of 1 s points, so that the wall starts with as many points as it keeps.
    backfill = np.arange(now_s - ENDURANCE_RANGE_S - 60, now_s + 1, dtype=np.int64) * NS_PER_S
    store.write(_samples(series, backfill))
    written_s = now_s
    server = psutil.Process(server_pid)
    client = page.context.new_cdp_session(page)
    count, on_response = _tick_counter(page)
    page.on("response", on_response)
    page.goto(url)
    page.wait_for_function(ALL_DRAWN, arg=PANELS, timeout=120_000)
    origin = page.evaluate("() => performance.timeOrigin")
    started = time.monotonic()
    samples: list[tuple[int, float, float]] = [
        (count[0], _heap_mb(client), server.memory_info().rss / 1e6)
    ]
    deadline = started + ticks * 3 + 60
    while count[0] < ticks and time.monotonic() < deadline:
        now_s = time.time_ns() // NS_PER_S
        if now_s > written_s:
            times = np.arange(written_s + 1, now_s + 1, dtype=np.int64) * NS_PER_S
            store.write(_samples(series, times))
            written_s = now_s
        page.wait_for_timeout(100)
        if count[0] >= samples[-1][0] + every:
            page.wait_for_timeout(300)  # the tick's answer drawn, before the next tick
            samples.append((count[0], _heap_mb(client), server.memory_info().rss / 1e6))
    elapsed = time.monotonic() - started
    page.remove_listener("response", on_response)
    if page.evaluate("() => performance.timeOrigin") != origin:
        raise RuntimeError("the wall reloaded itself during the run")
    return {
        "ticks": count[0],
        "elapsed_s": elapsed,
        "samples": samples,
        "panel_points": page.evaluate(PANEL_POINTS),
    }


def _at(samples: list[tuple[int, float, float]], tick: int) -> tuple[int, float, float]:
    """The first sample taken at or after `tick`."""
    return next((s for s in samples if s[0] >= tick), samples[-1])


def endurance_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="shipboard-dash-bench-") as tmp:
        data_dir = Path(tmp)
        started = time.perf_counter()
        with seed(data_dir, time.time_ns()) as store:
            print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)
            dashboards = start_dashboards(data_dir, timeout_s=60, SHIPBOARD_ANONYMOUS_READ="true")
            url = dashboards.url
            try:
                with sync_playwright() as playwright:
                    browser = launch_chromium(playwright)
                    page = browser.new_page(viewport=VIEWPORT)
                    wall = url + f"/d/wall?kiosk=1&from=-{ENDURANCE_RANGE_S}s&refresh=1s"
                    result = measure_endurance(
                        page, wall, store, dashboards.pid, args.endurance, args.sample_every
                    )
                    browser.close()
            finally:
                dashboards.stop()
    samples = result["samples"]
    for tick, heap, rss in samples:
        print(f"tick {tick:5d}: JS heap {heap:6.2f} MB, server RSS {rss:6.1f} MB")
    print(
        f"{result['ticks']} ticks in {result['elapsed_s']:.0f} s; "
        f"most points in a line of each panel at the end: {result['panel_points']}"
    )
    first, last = _at(samples, 100), samples[-1]
    print(
        f"from tick {first[0]} to tick {last[0]}: JS heap {first[1]:.2f} -> {last[1]:.2f} MB "
        f"({100 * (last[1] / first[1] - 1):+.1f}%), server RSS {first[2]:.1f} -> "
        f"{last[2]:.1f} MB ({100 * (last[2] / first[2] - 1):+.1f}%); "
        f"JS heap range {min(s[1] for s in samples):.2f}-{max(s[1] for s in samples):.2f} MB"
    )


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
