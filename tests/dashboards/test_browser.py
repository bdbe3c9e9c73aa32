"""The dashboards as people see them: real Chromium against served dashboards and real data."""

from __future__ import annotations

from typing import Any

from tests.dashboards.conftest import DashServer, World
from tests.dashboards.seed import HOSTS

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
