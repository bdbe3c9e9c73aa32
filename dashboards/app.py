"""The Dash app: pages, the sign-in gate, the CSV download route, built from its config."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import dash
import flask
from dash import dcc, html
from flask_compress import Compress

from aggregator.errors import QueryError
from aggregator.query import result_csv
from annotations.control.db import ControlDB
from dashboards import BOARD_EXTENSION, current_board
from dashboards.auth import Gate, load_key
from dashboards.config import DashboardsConfig
from dashboards.data import Board
from dashboards.pages import dashboard as dashboard_page
from dashboards.pages import home as home_page
from dashboards.state import ViewState
from storage.base import StoreReader

ASSETS = Path(__file__).parent / "assets"
DASHBOARDS_FOLDER = "dashboards"
"""Folder of the data dir holding the team's own dashboard YAML files."""


def _csv(slug: str, panel_id: str) -> flask.Response:
    """One panel's data as CSV, for the range and variables in the query string."""
    board = current_board()
    found = board.dashboard(slug)
    panel = found.panel(panel_id) if found else None
    if found is None or panel is None:
        return flask.Response("no such panel\n", status=404, mimetype="text/plain")
    query = flask.request.args.to_dict()
    view = ViewState.from_query(found, query)
    span, problem = view.time_range(board.clock())
    if problem:
        return flask.Response(problem + "\n", status=400, mimetype="text/plain")
    points = query.get("points", "")
    max_points = int(points) if points.isascii() and points.isdigit() else None
    try:
        result = board.query(panel, view.variables, span, max_points=max_points)
    except QueryError as error:
        return flask.Response(f"{error}\n", status=400, mimetype="text/plain")
    name = f"{slug}-{panel_id}.csv"
    return flask.Response(
        result_csv(result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _security_headers(response: flask.Response) -> flask.Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    return response


def create_app(
    config: DashboardsConfig,
    *,
    store: StoreReader,
    control: ControlDB | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> dash.Dash:
    """The dashboards over `store` and `control` (default: the control DB of `config`).
    Read-only: nothing here writes."""
    if control is None:
        control = ControlDB.open(config.control_db, config.data_dir)
    board = Board(
        store=store,
        tiers=config.tiers,
        control=control,
        folder=config.data_dir / DASHBOARDS_FOLDER,
        max_points=config.max_points,
        clock=clock,
    )
    app = dash.Dash(
        __name__,
        use_pages=True,
        pages_folder="",
        assets_folder=str(ASSETS),
        title="Shipboard",
        update_title="",
        suppress_callback_exceptions=True,
    )
    app.server.extensions[BOARD_EXTENSION] = board
    # A wall of twelve panels is 1.2 MB of JSON and the scripts 4 MB: zstd, brotli or gzip,
    # whichever the browser takes, makes that ~0.7 MB on the wire for a few ms of CPU.
    Compress(app.server)
    gate = Gate(
        load_key(config.data_dir),
        control,
        anonymous_read=config.anonymous_read,
        secure_cookie=config.public_url.startswith("https://"),
    )
    gate.install(app.server)
    app.server.before_request(store.refresh)  # once per request: its reads see one state
    app.server.after_request(_security_headers)
    app.server.add_url_rule("/csv/<slug>/<panel_id>", "csv", _csv)
    home_page.register(app)
    dashboard_page.register(app)
    app.layout = html.Div(
        [dcc.Location(id="nav", refresh="callback-nav"), dash.page_container], id="shipboard"
    )
    return app
