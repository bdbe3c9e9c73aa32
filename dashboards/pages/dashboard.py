"""The dashboard page `/d/<slug>`: controls, rows of panels, the change list, kiosk mode."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple
from urllib.parse import urlencode

import dash
import flask
from dash import ALL, Input, Output, State, dcc, html, no_update
from dash.development.base_component import Component

from aggregator.errors import QueryError
from annotations.control.notes import Annotation
from dashboards import current_board
from dashboards.data import ALL as ALL_VALUES
from dashboards.data import Board, TimeRange
from dashboards.figures import (
    Figure,
    alert_labels,
    alert_state,
    deploy_status,
    safe_url,
    time_text,
)
from dashboards.panels import Meta, meta_changes, points_for, refresh_panel, render_panel
from dashboards.spec import Dashboard, Panel
from dashboards.state import PRESETS, ViewState, zoom_range
from dashboards.verdicts import verdict_lines, verdict_status
from storage.errors import StorageError

log = logging.getLogger(__name__)

CUSTOM = "custom"
HOUR_MS = 3_600_000
WIDTH_COOKIE = "shipboard_width"
"""The browser's window width, set by assets/screen-width.js before the page asks for its layout."""
DEFAULT_WIDTH = 1920
DESK_ASIDE_PX = 320  # the change list beside the panels on a desk


def _graph_config(kiosk: bool) -> Any:
    if kiosk:
        return {"displayModeBar": False, "responsive": True}
    return {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d"]}


class DrawnPanel(NamedTuple):
    figure: Figure
    meta: Meta
    csv_href: str


def _screen_width() -> int:
    raw = flask.request.cookies.get(WIDTH_COOKIE, "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else DEFAULT_WIDTH


def _draw(
    board: Board, dashboard: Dashboard, panel: Panel, view: ViewState, span: TimeRange
) -> DrawnPanel:
    """A panel drawn whole, with about one point per pixel of its width, and its CSV link."""
    per_row = next(len(r.panels) for r in dashboard.rows if panel in r.panels)
    width = _screen_width() - (0 if view.kiosk else DESK_ASIDE_PX)
    points = points_for(width, per_row, board.max_points)
    figure, meta = render_panel(
        board, dashboard, panel, view.variables, span, points=points, kiosk=view.kiosk
    )
    csv_query = {k: v for k, v in view.query().items() if k not in ("kiosk", "playlist")}
    csv_query |= {"from": str(span.start_ns), "to": str(span.end_ns), "points": str(points)}
    href = dash.get_relative_path(f"/csv/{view.slug}/{panel.id}") + "?" + urlencode(csv_query)
    return DrawnPanel(figure, meta, href)


def _panel_card(panel: Panel, view: ViewState, drawn: DrawnPanel) -> Component:
    key = {"panel": panel.id}
    header = [
        # The description shows when hovering the title (a dotted underline says there is one).
        html.H3(
            panel.title,
            className="panel-title described" if panel.description else "panel-title",
            title=panel.description or None,
        ),
        html.A("CSV", className="csv-link", download="", href=drawn.csv_href),
    ]
    return html.Div(
        [
            html.Div(header, className="panel-header"),
            # dcc.Graph sets its own height to 100%: the box around it sets the height.
            html.Div(
                dcc.Graph(
                    id={"type": "graph", **key},
                    figure=drawn.figure,
                    config=_graph_config(view.kiosk),
                ),
                className="panel-graph",
            ),
            dcc.Store(id={"type": "meta", **key}, data=drawn.meta),
        ],
        className="panel",
        id=f"panel-{panel.id}",
    )


def _controls(board: Board, dashboard: Dashboard, view: ViewState) -> Component:
    preset = view.start if view.end == "now" and view.start in dict(PRESETS) else CUSTOM
    ranges = [{"label": label, "value": value} for value, label in PRESETS]
    ranges.append({"label": "Absolute", "value": CUSTOM})
    controls: list[Component] = [
        dcc.Dropdown(
            ranges, preset, id=_control("preset", view), clearable=False, className="range"
        ),
        dcc.Input(id=_control("from", view), value=view.start, debounce=True, className="from"),
        dcc.Input(id=_control("to", view), value=view.end, debounce=True, className="to"),
    ]
    for variable in dashboard.variables:
        values = board.tag_values(variable.metrics, variable.tag)
        options = [{"label": f"All {variable.label.lower()}s", "value": ALL_VALUES}]
        options += [{"label": v, "value": v} for v in values]
        controls.append(
            html.Label(
                [
                    variable.label,
                    dcc.Dropdown(
                        options,
                        view.variables.get(variable.name, ALL_VALUES),
                        id=_control("variable", view, name=variable.name),
                        clearable=False,
                        className="variable",
                    ),
                ]
            )
        )
    wall = ViewState(**{**_fields(view), "kiosk": True})
    controls.append(html.A("Wall screen", href=wall.href(), className="kiosk-link"))
    controls.append(
        html.Form(
            html.Button("Sign out", type="submit"),
            action="/signout",
            method="POST",
            className="signout",
        )
    )
    return html.Div(controls, className="controls", id="controls")


def _control(kind: str, view: ViewState, name: str = "") -> dict[str, str]:
    """A control's id, unique to the view: a new URL mounts new controls, so no control can
    report a value left over from the previous view (which would navigate back to it)."""
    return {"type": "control", "kind": kind, "name": name, "view": view.href()}


def _fields(view: ViewState) -> dict[str, Any]:
    return {name: getattr(view, name) for name in ViewState.__slots__}


def _change(annotation: Annotation) -> Component:
    """One entry of the change list. Dash escapes every string: nothing typed here runs."""
    extra = annotation.extra
    parts: list[Component] = [
        html.Div(
            [
                html.Span(annotation.kind, className=f"badge badge-{annotation.kind}"),
                html.Span(annotation.title, className="change-title"),
            ]
        ),
        html.Div(f"{annotation.who} · {time_text(annotation.start_ns)}", className="change-meta"),
    ]
    if annotation.kind == "deploy":
        status = deploy_status(annotation)
        parts.append(html.Div(status.replace("_", " "), className=f"status status-{status}"))
        if lines := verdict_lines(annotation):  # the summary, every metric in its hover
            verdict = verdict_status(annotation)
            parts.append(
                html.Div(lines[0], title="\n".join(lines), className=f"verdict verdict-{verdict}")
            )
    elif annotation.kind == "alert":
        state = "firing" if annotation.end_ns is None else "resolved"
        parts.append(html.Div(alert_state(annotation), className=f"status status-{state}"))
        if labels := alert_labels(annotation):
            parts.append(html.Div(labels, className="change-labels"))
    if annotation.body:
        parts.append(html.P(annotation.body, className="change-body"))
    for label, field in (("Watch", "watch"), ("Risk", "risk"), ("Rollback", "rollback")):
        value = extra.get(field)
        if value:
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(html.Div([html.B(f"{label}: "), text], className=f"change-{field}"))
    if url := safe_url(extra.get("url")):
        parts.append(html.A("change set", href=url, target="_blank", rel="noopener"))
    return html.Li(
        parts, className=f"change change-{annotation.kind}", id=f"change-{annotation.id}"
    )


def _changes(board: Board, dashboard: Dashboard, view: ViewState, span: TimeRange) -> Component:
    overlays = tuple(dict.fromkeys(o for p in dashboard.panels() for o in p.overlays))
    found = board.annotations(overlays, view.variables, span)
    items = [_change(a) for a in reversed(found)]
    return html.Aside(
        [html.H2("What changed"), html.Ul(items or [html.Li("Nothing in this range.")])],
        className="changes",
        id="changes",
    )


def layout(slug: str | None = None, **query: str) -> Component:
    """The whole page, every panel drawn: one request, and the browser draws as it arrives."""
    board = current_board()
    catalog = board.catalog()
    dashboard = catalog.dashboards.get(slug or "")
    if dashboard is None:
        return html.Div(
            [html.H1("No such dashboard"), dcc.Link("All dashboards", href="/")], id="missing"
        )
    view = ViewState.from_query(dashboard, query)
    span, problem = view.time_range(board.clock())
    rows = [
        html.Section(
            [
                html.H2(row.title, className="row-title") if row.title else None,
                html.Div(
                    [
                        _panel_card(p, view, _draw(board, dashboard, p, view, span))
                        for p in row.panels
                    ],
                    className="row-panels",
                    style={"gridTemplateColumns": f"repeat({len(row.panels)}, minmax(0, 1fr))"},
                ),
            ],
            className="row",
        )
        for row in dashboard.rows
    ]
    notices = [html.Div(problem, className="notice")] if problem else []
    notices += [html.Div(str(e), className="notice spec-error") for e in catalog.errors]
    body: list[Component] = [html.Div(rows, className="rows")]
    if not view.kiosk:
        body.append(_changes(board, dashboard, view, span))
    header: list[Component] = [html.H1(dashboard.title)]
    if not view.kiosk:
        header = [dcc.Link("Shipboard", href="/", className="home"), *header]
        header.append(_controls(board, dashboard, view))
    refresh_ms = view.refresh_ms(dashboard)
    live = span.is_live and (view.kiosk or bool(view.refresh))
    store = {
        "view": _fields(view) | {"playlist": list(view.playlist)},
        "next": view.next_in_playlist(),
    }
    return html.Div(
        [
            dcc.Store(id="view", data=store),
            # A live page reloads itself every hour: a wall screen left on for a week keeps
            # the memory of one hour. Its lines keep only their range's points anyway
            # (panels.refresh_panel); what grows is the renderer's record of input changes,
            # a few dozen bytes a tick.
            dcc.Interval(
                id="tick",
                interval=refresh_ms,
                disabled=not live,
                max_intervals=max(1, HOUR_MS // refresh_ms) if live else -1,
            ),
            dcc.Interval(
                id="rotate", interval=view.rotate_s * 1000, disabled=store["next"] is None
            ),
            html.Header(header, className="top"),
            *notices,
            html.Main(body, className="board"),
        ],
        className="dashboard kiosk" if view.kiosk else "dashboard desk",
        style={"--rows": str(len(dashboard.rows))},
        id="dashboard",
    )


def _view(data: dict[str, Any]) -> ViewState:
    fields = dict(data["view"])
    fields["playlist"] = tuple(fields["playlist"])
    return ViewState(**fields)


def refresh(_: int, data: dict[str, Any], metas: Sequence[Meta | None]) -> Any:
    """Every live panel of the page brought up to date on a tick, in one request. A panel
    whose store fails now keeps what it shows until a later tick succeeds."""
    if not data:
        raise dash.exceptions.PreventUpdate
    board = current_board()
    view = _view(data)
    dashboard = board.dashboard(view.slug)
    if dashboard is None:
        raise dash.exceptions.PreventUpdate
    figures: list[Any] = []
    new_metas: list[Any] = []
    for meta in metas:
        panel = dashboard.panel(meta["panel"]) if meta else None
        if meta is None or panel is None:
            figures.append(no_update)
            new_metas.append(no_update)
            continue
        try:
            figure, new_meta = refresh_panel(
                board, dashboard, panel, view.variables, meta, kiosk=view.kiosk
            )
        except (QueryError, StorageError) as error:
            log.warning("refresh of %s/%s failed: %s", view.slug, panel.id, error)
            figures.append(no_update)
            new_metas.append(no_update)
            continue
        figures.append(figure)
        new_metas.append(new_meta if isinstance(figure, dict) else meta_changes(meta, new_meta))
    return figures, new_metas


def navigate(controls: list[str | None], data: dict[str, Any]) -> Any:
    """Any control becomes a new URL."""
    view = _view(data)
    trigger = dash.ctx.triggered_id
    if not isinstance(trigger, dict) or trigger["view"] != view.href():
        raise dash.exceptions.PreventUpdate
    fields = _fields(view)
    values = {
        (i["id"]["kind"], i["id"]["name"]): (v or "").strip()
        for i, v in zip(dash.ctx.inputs_list[0], controls, strict=True)
    }
    if trigger["kind"] == "preset":
        if values["preset", ""] == CUSTOM:
            raise dash.exceptions.PreventUpdate
        fields |= {"start": values["preset", ""], "end": "now"}
    elif trigger["kind"] in ("from", "to"):
        fields |= {"start": values["from", ""], "end": values["to", ""] or "now"}
    else:
        fields["variables"] = {
            name: v
            for (kind, name), v in values.items()
            if kind == "variable" and name and v and v != ALL_VALUES
        }
    return _go(view, fields)


def zoom(relayouts: list[dict[str, Any] | None], data: dict[str, Any]) -> Any:
    """A drag-to-zoom on any panel becomes a new URL. A callback of its own: Dash drops the
    answer of a callback that fires again before it answers, and plotly reports a relayout
    whenever a graph is drawn, which must not swallow a control's change."""
    view = _view(data)
    trigger = dash.ctx.triggered_id
    if not isinstance(trigger, dict):
        raise dash.exceptions.PreventUpdate
    ids = [i["id"] for i in dash.ctx.inputs_list[0]]
    zoomed = zoom_range(relayouts[ids.index(trigger)] or {})
    if zoomed is None:
        raise dash.exceptions.PreventUpdate
    return _go(view, _fields(view) | {"start": zoomed[0], "end": zoomed[1]})


def _go(view: ViewState, fields: dict[str, Any]) -> Any:
    target = ViewState(**fields).href()
    return target if target != view.href() else no_update


def register(app: dash.Dash) -> None:
    """Register the page and its callbacks on `app`."""
    dash.register_page(__name__, path_template="/d/<slug>", layout=layout, title="Shipboard")
    app.callback(
        Output({"type": "graph", "panel": ALL}, "figure"),
        Output({"type": "meta", "panel": ALL}, "data"),
        Input("tick", "n_intervals"),
        State("view", "data"),
        State({"type": "meta", "panel": ALL}, "data"),
        prevent_initial_call=True,
    )(refresh)
    app.callback(
        Output("nav", "href", allow_duplicate=True),
        Input({"type": "control", "kind": ALL, "name": ALL, "view": ALL}, "value"),
        State("view", "data"),
        prevent_initial_call=True,
    )(navigate)
    app.callback(
        Output("nav", "href", allow_duplicate=True),
        Input({"type": "graph", "panel": ALL}, "relayoutData"),
        State("view", "data"),
        prevent_initial_call=True,
    )(zoom)
    # The hourly reload and the playlist load a whole page, which frees everything drawn.
    app.clientside_callback(
        """function(n, data) {
            if (n && data && data.next) { window.location.assign(data.next); }
            return window.dash_clientside.no_update;
        }""",
        Output("rotate", "disabled"),
        Input("rotate", "n_intervals"),
        State("view", "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        """function(n, max) {
            if (n && max > 0 && n >= max) { window.location.reload(); }
            return window.dash_clientside.no_update;
        }""",
        Output("tick", "disabled"),
        Input("tick", "n_intervals"),
        State("tick", "max_intervals"),
        prevent_initial_call=True,
    )
