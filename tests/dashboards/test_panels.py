"""Panels over the real store and control DB: drawn whole, then brought up to date by appending."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from dash import Patch, no_update

from aggregator.query import QueryResult, ResultSeries
from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, start_deploy
from annotations.control.notes import Annotation, add_annotation, list_annotations
from dashboards import current_board
from dashboards.app import create_app
from dashboards.data import Board, TimeRange
from dashboards.figures import (
    DARK,
    LEGEND_MAX_ROWS,
    LEGEND_ROW_PX,
    hover_text,
    legend_rows,
    panel_figure,
    safe_url,
)
from dashboards.pages import dashboard as dashboard_page
from dashboards.panels import (
    MAX_TRIM,
    keep_for,
    meta_changes,
    points_for,
    refresh_panel,
    render_panel,
)
from dashboards.spec import load_catalog
from shipboard.server import dashboards_config
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_MS, NS_PER_S
from tests.clock import Clock
from tests.dashboards.seed import HOSTS, metric_points

HOSTS_BOARD = load_catalog(None).dashboards["hosts"]
CPU = HOSTS_BOARD.panels()[0]
NOW_NS = 1_800_000_000 * NS_PER_S


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW_NS)


@pytest.fixture
def board(tmp_path: Path, clock: Clock) -> Iterator[Board]:
    settings = Settings(data_dir=tmp_path)
    with EmbeddedStore(tmp_path / "metrics", settings.tiers()) as store:
        control = ControlDB.open("", tmp_path)
        store.write(metric_points(NOW_NS - 3600 * NS_PER_S, NOW_NS))
        yield Board(store, settings.tiers(), control, None, 1500, clock)
        control.close()


def writer(board: Board) -> EmbeddedStore:
    """The board's store, which these tests also write through."""
    assert isinstance(board.store, EmbeddedStore)
    return board.store


def last_hour(now_ns: int) -> TimeRange:
    return TimeRange("-1h", "now", now_ns - 3600 * NS_PER_S, now_ns)


def operations(patch: Patch) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = patch.to_plotly_json()["operations"]
    return ops


def test_a_panel_draws_each_host_with_its_values_and_only_complete_buckets(board: Board) -> None:
    figure, meta = render_panel(
        board, HOSTS_BOARD, CPU, {}, last_hour(NOW_NS), points=360, kiosk=False
    )
    lines = {t["name"]: t for t in figure["data"]}
    assert set(lines) == {"host=web-1", "host=web-2"}
    for host, value in HOSTS.items():
        assert set(lines[f"host={host}"]["y"]) == {value}
        assert lines[f"host={host}"]["x"][-1] <= NOW_NS // NS_PER_MS - meta["step_ms"]
    assert meta["step_ms"] == 10_000
    assert figure["layout"]["xaxis"]["range"] == [
        NOW_NS // NS_PER_MS - 3_600_000,
        NOW_NS // NS_PER_MS,
    ]


def test_a_refresh_appends_only_new_points_in_a_small_patch(board: Board, clock: Clock) -> None:
    _, meta = render_panel(board, HOSTS_BOARD, CPU, {}, last_hour(NOW_NS), points=360, kiosk=True)
    later = NOW_NS + 30 * NS_PER_S
    writer(board).write(metric_points(NOW_NS, later))
    clock.now_ns = later
    patch, new_meta = refresh_panel(board, HOSTS_BOARD, CPU, {}, meta, kiosk=True)
    assert isinstance(patch, Patch)
    extended = {
        (tuple(op["location"]), tuple(op["params"]["value"]))
        for op in operations(patch)
        if op["operation"] == "Extend"
    }
    previous_ms = meta["last"]["host=web-1"]
    new_x = tuple(range(previous_ms + 10_000, later // NS_PER_MS - 10_000 + 1, 10_000))
    assert len(new_x) == 3
    index = meta["index"]
    assert (("data", index["host=web-1"], "x"), new_x) in extended
    assert (("data", index["host=web-2"], "y"), (HOSTS["web-2"],) * 3) in extended
    assert new_meta["last"]["host=web-1"] == new_x[-1]
    assert len(orjson.dumps(patch.to_plotly_json())) < 5 * 1024
    # Nothing new since: the patch only slides the window.
    again, _ = refresh_panel(board, HOSTS_BOARD, CPU, {}, new_meta, kiosk=True)
    assert isinstance(again, Patch)
    assert [op["operation"] for op in operations(again)] == ["Assign"]


def apply(value: Any, patch: Patch) -> Any:
    """`patch` applied to `value` as the browser applies it (dash-renderer's patch handlers)."""
    for op in operations(patch):
        *parents, last = op["location"]
        target = value
        for key in parents:
            target = target[key]
        if op["operation"] == "Assign":
            target[last] = op["params"]["value"]
        elif op["operation"] == "Extend":
            target[last].extend(op["params"]["value"])
        elif op["operation"] == "Delete":
            del target[last]
        else:
            raise AssertionError(f"unexpected patch operation {op['operation']}")
    return value


def test_a_wall_left_on_keeps_a_bounded_window_of_each_line(board: Board, clock: Clock) -> None:
    span = TimeRange("-10m", "now", NOW_NS - 600 * NS_PER_S, NOW_NS)
    figure, meta = render_panel(board, HOSTS_BOARD, CPU, {}, span, points=60, kiosk=True)
    assert meta["step_ms"] == 10_000
    keep = keep_for(600_000, 10_000)
    assert meta["keep"] == keep == 62
    lines = {t["name"]: t for t in figure["data"]}
    full = {"host=web-1": 60, "host=web-2": 60}  # a point per complete 10 s bucket
    assert meta["count"] == {name: len(t["x"]) for name, t in lines.items()} == full
    for tick in range(1, 201):  # 200 ticks of 10 s, a point more in every line each time
        now_ns = NOW_NS + tick * 10 * NS_PER_S
        writer(board).write(metric_points(now_ns - 10 * NS_PER_S, now_ns))
        clock.now_ns = now_ns
        patch, new_meta = refresh_panel(board, HOSTS_BOARD, CPU, {}, meta, kiosk=True)
        assert isinstance(patch, Patch)
        apply(figure, patch)
        meta_patch = meta_changes(meta, new_meta)
        meta = apply(meta, meta_patch) if isinstance(meta_patch, Patch) else meta
        assert meta == new_meta
        for name, trace in lines.items():
            assert len(trace["x"]) == len(trace["y"]) == meta["count"][name] <= keep
    last_ms = clock.now_ns // NS_PER_MS - 10_000  # the last complete bucket
    for host, value in HOSTS.items():
        trace = lines[f"host={host}"]
        assert trace["x"] == list(range(last_ms - (keep - 1) * 10_000, last_ms + 1, 10_000))
        assert set(trace["y"]) == {value}
    assert figure["layout"]["xaxis"]["range"] == [
        clock.now_ns // NS_PER_MS - 600_000,
        clock.now_ns // NS_PER_MS,
    ]
    # After a pause longer than MAX_TRIM steps the panel is drawn again whole, as long.
    clock.now_ns += (MAX_TRIM + 5) * 10 * NS_PER_S
    writer(board).write(metric_points(now_ns, clock.now_ns))
    redrawn, meta = refresh_panel(board, HOSTS_BOARD, CPU, {}, meta, kiosk=True)
    assert isinstance(redrawn, dict)
    assert [len(t["x"]) for t in redrawn["data"]] == [60, 60]
    assert meta["count"] == full


def test_a_new_deploy_redraws_the_panel_with_its_marker(board: Board, clock: Clock) -> None:
    _, meta = render_panel(board, HOSTS_BOARD, CPU, {}, last_hour(NOW_NS), points=360, kiosk=True)
    assert board.control is not None
    start_deploy(board.control, DeployStart("web", "prod", "2.0"), who="eve", start_ns=NOW_NS)
    clock.now_ns = NOW_NS + 10 * NS_PER_S
    figure, _ = refresh_panel(board, HOSTS_BOARD, CPU, {}, meta, kiosk=True)
    assert isinstance(figure, dict)
    (deploys,) = [t for t in figure["data"] if t.get("uid") == "annotations-deploy"]
    assert deploys["x"] == [NOW_NS // NS_PER_MS]
    assert "deploy web 2.0 to prod" in deploys["hovertext"][0]


def test_a_panel_whose_store_fails_says_why_and_is_drawn_once_it_is_back(
    board: Board, tmp_path: Path
) -> None:
    working = board.store
    broken = EmbeddedStore(tmp_path / "broken", Settings(data_dir=tmp_path).tiers())
    broken.close()
    board.store = broken
    figure, meta = render_panel(
        board, HOSTS_BOARD, CPU, {}, last_hour(NOW_NS), points=360, kiosk=True
    )
    assert figure["data"] == []
    (note,) = figure["layout"]["annotations"]
    assert note["text"] == f"CPU user: store {tmp_path / 'broken'} is closed"
    assert meta["last"] == {}
    board.store = working
    redrawn, new_meta = refresh_panel(board, HOSTS_BOARD, CPU, {}, meta, kiosk=True)
    assert isinstance(redrawn, dict)
    assert {t["name"] for t in redrawn["data"]} == {"host=web-1", "host=web-2"}
    assert set(new_meta["last"]) == {"host=web-1", "host=web-2"}


def test_a_tick_brings_every_panel_up_to_date_in_one_call_and_a_failure_changes_nothing(
    tmp_path: Path, clock: Clock
) -> None:
    settings = Settings(data_dir=tmp_path)
    store = EmbeddedStore(tmp_path / "metrics", settings.tiers())
    control = ControlDB.open("", tmp_path)
    store.write(metric_points(NOW_NS - 3600 * NS_PER_S, NOW_NS))
    app = create_app(dashboards_config(settings), store=store, control=control, clock=clock)
    try:
        with app.server.app_context():
            board = current_board()
            metas = [
                render_panel(board, HOSTS_BOARD, p, {}, last_hour(NOW_NS), points=360, kiosk=True)[
                    1
                ]
                for p in HOSTS_BOARD.panels()
            ]
            data = {"view": {"slug": "hosts", "start": "-1h", "kiosk": True, "playlist": []}}
            clock.now_ns = NOW_NS + 30 * NS_PER_S
            store.write(metric_points(NOW_NS, clock.now_ns))
            figures, new_metas = dashboard_page.refresh(1, data, [*metas, None])
            assert len(figures) == len(new_metas) == len(metas) + 1
            assert all(isinstance(f, Patch) for f in figures[:-1])
            assert (figures[-1], new_metas[-1]) == (no_update, no_update)
            store.close()  # the store fails: every panel keeps what it shows
            figures, new_metas = dashboard_page.refresh(2, data, metas)
            assert figures == new_metas == [no_update] * len(metas)
    finally:
        control.close()
        store.close()


def test_hover_text_escapes_what_people_typed(board: Board) -> None:
    assert board.control is not None
    add_annotation(
        board.control,
        "note",
        start_ns=NOW_NS,
        title="<b>bold</b> & <script>x()</script>",
        who="<i>mallory</i>",
        body='<a href="javascript:x()">click</a>',
    )
    (note,) = list_annotations(board.control, NOW_NS - 1, NOW_NS + 1)
    text = hover_text(note)
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert "by &lt;i&gt;mallory&lt;/i&gt;" in text
    assert '&lt;a href="javascript:x()"&gt;' in text
    assert safe_url("javascript:x()") == ""
    assert safe_url("https://example.com/pr/1") == "https://example.com/pr/1"


def test_points_follow_the_panel_width() -> None:
    assert points_for(1920, 3, 1500) == 550
    assert points_for(1920, 1, 1500) == 1500
    assert points_for(300, 4, 1500) == 100


def test_a_failed_deploy_is_drawn_red_and_dashed() -> None:
    ms = NOW_NS // NS_PER_MS
    failed = Annotation(
        1, "deploy", NOW_NS, NOW_NS + NS_PER_S, {}, "d", "", "x", {"status": "failed"}
    )
    later = NOW_NS + 10 * NS_PER_S
    ok = Annotation(2, "deploy", later, later + NS_PER_S, {}, "d", "", "x", {"status": "succeeded"})
    empty = load_catalog(None).dashboards["hosts"].panels()[0]
    figure = panel_figure(QueryResult((), 10_000, "raw"), [failed, ok], empty, x_range_ms=(0, 1))
    paths = [s for s in figure["layout"]["shapes"] if s["type"] == "path"]
    by_path = {s["path"]: s for s in paths}
    assert len(paths) == 4
    red_line = by_path[f"M{ms},0V1"]["line"]
    assert red_line == {"color": "#d9534f", "width": 2.0, "dash": "dash"}
    green_line = by_path[f"M{ms + 10_000},0V1"]["line"]
    assert green_line == {"color": "#2e9d57", "width": 2.0, "dash": "solid"}
    red_region = by_path[f"M{ms},0H{ms + 1000}V1H{ms}Z"]
    assert (red_region["fillcolor"], red_region["opacity"]) == ("#d9534f", 0.22)
    green_region = by_path[f"M{ms + 10_000},0H{ms + 11_000}V1H{ms + 10_000}Z"]
    assert (green_region["fillcolor"], green_region["opacity"]) == ("#2e9d57", 0.1)


def test_a_series_just_begun_is_drawn_with_dots() -> None:
    ts = np.arange(10, dtype=np.int64) * 10_000
    result = QueryResult(
        (
            ResultSeries("cpu.user", {"host": "new"}, ts[:1], np.array([5.0])),
            ResultSeries("cpu.user", {"host": "old"}, ts, np.full(10, 7.0)),
        ),
        10_000,
        "raw",
    )
    figure = panel_figure(result, [], CPU, x_range_ms=(0, 100_000))
    modes = {t["name"]: (t["mode"], t.get("marker")) for t in figure["data"]}
    assert modes == {
        "host=new": ("lines+markers", {"size": 6}),
        "host=old": ("lines", None),
    }


def test_the_legend_wraps_into_rows_and_the_margin_makes_room_for_them() -> None:
    racks = [f"rack=r{i}" for i in range(10)]
    # An entry is about 40 px plus 0.6 em per character: 86 px at 11 px, so five to 500 px.
    assert [legend_rows(racks[:n], 500, 11) for n in (1, 5, 6, 10)] == [1, 1, 2, 2]
    assert legend_rows(racks, 2000, 11) == 1
    many = [f"host=h{i:03d},path=/data/{i}" for i in range(100)]
    assert legend_rows(many, 500, 11) == LEGEND_MAX_ROWS
    ts = np.arange(10, dtype=np.int64) * 10_000
    result = QueryResult(
        tuple(ResultSeries("cpu.user", {"rack": r[5:]}, ts, np.ones(10)) for r in racks),
        10_000,
        "raw",
    )
    wall = panel_figure(result, [], CPU, x_range_ms=(0, 1), plot_width_px=500, theme=DARK)
    assert wall["layout"]["showlegend"] is True
    assert wall["layout"]["margin"]["b"] == 3 * DARK.font_size + 2 * LEGEND_ROW_PX
    one = QueryResult(result.series[:1], 10_000, "raw")
    alone = panel_figure(one, [], CPU, x_range_ms=(0, 1), plot_width_px=500, theme=DARK)
    assert alone["layout"]["showlegend"] is False
    assert alone["layout"]["margin"]["b"] == 3 * DARK.font_size


def test_a_refresh_sends_only_the_changed_part_of_the_meta() -> None:
    old = {"panel": "0-0", "last": {"a": 1, "b": 2}, "index": {"a": 0, "b": 1}}
    assert meta_changes(old, old) is no_update
    patch = meta_changes(old, {**old, "last": {"a": 1, "b": 3}})
    assert isinstance(patch, Patch)
    ops = operations(patch)
    assert [(op["operation"], op["location"], op["params"]["value"]) for op in ops] == [
        ("Assign", ["last", "b"], 3)
    ]
    counted = {**old, "count": {"a": 5, "b": 7}}
    patch = meta_changes(counted, {**counted, "count": {"a": 6, "b": 7}})
    assert isinstance(patch, Patch)
    assert [(op["location"], op["params"]["value"]) for op in operations(patch)] == [
        (["count", "a"], 6)
    ]
