"""The dashboards benchmark's `--endurance`: a wall left on, its JS heap and RSS over the ticks."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from playwright.sync_api import sync_playwright

from bench.dashboards_wall import ALL_DRAWN, PANELS, VIEWPORT, seed, wall_samples, wall_series
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S
from tests.dashboards.chromium import launch_chromium
from tests.dashboards.serving import start_dashboards

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
    series = wall_series()
    now_s = time.time_ns() // NS_PER_S
    # A full window of 1 s points, so that the wall starts with as many points as it keeps.
    backfill = np.arange(now_s - ENDURANCE_RANGE_S - 60, now_s + 1, dtype=np.int64) * NS_PER_S
    store.write(wall_samples(series, backfill))
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
            store.write(wall_samples(series, times))
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
