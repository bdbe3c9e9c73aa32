"""The built-in boards on VictoriaMetrics: every panel, read by a read-only store as the dashboards
process opens it, draws the same lines as on the embedded store holding the same points."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from annotations.control.db import ControlDB
from dashboards.data import Board, TimeRange
from dashboards.panels import render_panel
from dashboards.spec import load_catalog
from shipboard.settings import Settings
from storage.base import StoreReader
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S
from storage.victoria import VictoriaStore
from storage.victoria_config import VictoriaConfig
from tests.clock import Clock
from tests.dashboards.seed import metric_points
from tests.victoria import STORE_OPTIONS, VictoriaMetrics

pytestmark = pytest.mark.slow  # a VictoriaMetrics process

CATALOG = load_catalog(None)
PANELS = [(name, panel) for name, board in CATALOG.dashboards.items() for panel in board.panels()]
# Two whole hours that ended a minute ago, so every bucket drawn is complete on both stores.
NOW_NS = (time.time_ns() // (60 * NS_PER_S) - 1) * 60 * NS_PER_S


@pytest.fixture(scope="module")
def boards(
    tmp_path_factory: pytest.TempPathFactory, victoria_server: VictoriaMetrics
) -> Iterator[tuple[Board, Board]]:
    """A board over the embedded store and one over a VictoriaMetrics reader, same points."""
    home = tmp_path_factory.mktemp("boards")
    settings = Settings(data_dir=home)
    points = metric_points(NOW_NS - 2 * 3600 * NS_PER_S, NOW_NS)
    victoria_server.forget_everything()
    config = VictoriaConfig(url=victoria_server.url)
    with VictoriaStore(config, settings.tiers(), home / "spool", **STORE_OPTIONS) as writer:
        assert writer.write(points).accepted == len(points)
    with (
        EmbeddedStore(home / "metrics", settings.tiers()) as embedded,
        VictoriaStore(config, settings.tiers(), None, latency_offset_s=0.0) as reader,
    ):
        embedded.write(points)
        control = ControlDB.open("", home)
        clock = Clock(NOW_NS)
        yield tuple(_board(store, settings, control, clock) for store in (embedded, reader))  # type: ignore[misc]
        control.close()


def _board(store: StoreReader, settings: Settings, control: ControlDB, clock: Clock) -> Board:
    return Board(store, settings.tiers(), control, None, 1500, clock)


def _lines(figure: dict[str, Any]) -> dict[str, tuple[list[Any], list[Any]]]:
    return {trace["name"]: (list(trace["x"]), list(trace["y"])) for trace in figure["data"]}


@pytest.mark.parametrize(("board_name", "panel"), PANELS, ids=[p.title for _, p in PANELS])
@pytest.mark.parametrize("span", ["-1h", "-2h"])
def test_each_panel_draws_the_same_lines_on_victoria_metrics(
    boards: tuple[Board, Board], board_name: str, panel: Any, span: str
) -> None:
    embedded, victoria = boards
    seconds = {"-1h": 3600, "-2h": 7200}[span]
    window = TimeRange(span, "now", NOW_NS - seconds * NS_PER_S, NOW_NS)
    spec = CATALOG.dashboards[board_name]
    want, want_meta = render_panel(embedded, spec, panel, {}, window, points=360, kiosk=False)
    got, got_meta = render_panel(victoria, spec, panel, {}, window, points=360, kiosk=False)
    assert _lines(got) == _lines(want)
    assert got_meta["step_ms"] == want_meta["step_ms"]
    if board_name == "hosts":
        assert _lines(want)  # the seeded hosts are drawn, not two empty panels
