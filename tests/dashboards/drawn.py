"""What the dashboards drew in Chromium, read through Playwright: a panel's figure data, and
waits for a dashboard to draw and for a callback's navigation."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page


def figure_data(page: Page, panel_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = page.evaluate(
        "(id) => document.querySelector(`#panel-${id} .js-plotly-plot`).data"
        ".map(t => ({name: t.name, uid: t.uid, x: Array.from(t.x), y: Array.from(t.y),"
        " hovertext: t.hovertext ? Array.from(t.hovertext) : null,"
        " customdata: t.customdata ? Array.from(t.customdata) : null}))",
        panel_id,
    )
    return data


def wait_for_location(page: Page, path_and_query: str) -> None:
    """Wait for a navigation made by a callback (history.pushState: no load event)."""
    page.wait_for_function(
        "(want) => location.pathname + location.search === want", arg=path_and_query
    )


def open_dashboard(page: Page, url: str, panels: int) -> None:
    page.goto(url)
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('.panel .js-plotly-plot')]"
        ".filter(p => p.data && p.data.length).length >= n",
        arg=panels,
        timeout=30_000,
    )
