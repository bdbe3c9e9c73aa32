"""The home page `/`: every dashboard, and every dashboard file that failed to load and why."""

from __future__ import annotations

import dash
from dash import dcc, html
from dash.development.base_component import Component

from dashboards import current_board


def layout(**query: str) -> Component:
    catalog = current_board().catalog()
    items = [
        html.Li(
            [
                dcc.Link(d.title, href=f"/d/{slug}", className="dashboard-link"),
                html.Span(f" {d.description}", className="description"),
            ]
        )
        for slug, d in sorted(catalog.dashboards.items(), key=lambda item: item[1].title)
    ]
    errors = [html.Li(str(error), className="spec-error") for error in catalog.errors]
    children: list[Component] = [html.H1("Shipboard dashboards"), html.Ul(items, id="catalog")]
    if errors:
        children += [html.H2("Dashboard files with errors"), html.Ul(errors, id="spec-errors")]
    return html.Div(children, className="home-page")


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path="/", layout=layout, title="Shipboard")
