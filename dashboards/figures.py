"""Plotly figures as plain dicts: panel series, deploy/flag/note/alert markers, refresh patches.

Figures are dicts (not `go.Figure`): no validation cost, lists rather than typed arrays so the
browser can extend them, x as epoch milliseconds, SVG scatter traces (see DASH-TESTING.md).
Every annotation text is HTML-escaped before plotly sees it: plotly renders a subset of HTML
in hover labels, and a deploy description is whatever its author typed.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from aggregator.query import QueryResult, ResultSeries
from annotations.control.notes import Annotation
from dashboards.spec import Panel
from dashboards.verdicts import verdict_color, verdict_hover, verdict_status
from storage.records import NS_PER_MS, FloatArray

Figure = dict[str, Any]

SIGNIFICANT_DIGITS = 6  # what a graph can show; keeps the payload short
DEPLOY_COLORS = {
    "succeeded": "#2e9d57",
    "running": "#3b7dd8",
    "failed": "#d9534f",
    "rolled_back": "#e8872e",
}
FLAG_COLOR = "#8e5bd8"
NOTE_COLOR = "#7a7f87"
ALERT_COLOR = "#c2255c"
OPEN_BAND_MS = 3_600_000
"""How far past the right edge a still-firing alert's band runs (the plot clips it): a live
panel slides to now for an hour before its page reloads, and the band keeps reaching now."""
MARKER_TRACE = "annotations"
_UNIT_AXES: dict[str, dict[str, Any]] = {
    "percent": {"ticksuffix": "%"},
    "bytes": {"tickformat": ".3s", "ticksuffix": "B"},
    "bytes/s": {"tickformat": ".3s", "ticksuffix": "B/s"},
    "ms": {"tickformat": ".3s", "ticksuffix": " ms"},
    "s": {"tickformat": ".3s", "ticksuffix": " s"},
    "req/s": {"tickformat": ".3s", "ticksuffix": "/s"},
    "ops/s": {"tickformat": ".3s", "ticksuffix": "/s"},
}


@dataclass(frozen=True, slots=True)
class Theme:
    name: str
    paper: str
    plot: str
    text: str
    grid: str
    font_size: int
    is_wall: bool


LIGHT = Theme("light", "#ffffff", "#ffffff", "#1f2328", "#e6e8eb", 12, False)
DARK = Theme("dark", "#111418", "#111418", "#e6e8eb", "#2a2f36", 16, True)


def series_key(series: ResultSeries) -> str:
    """A stable name for a line: what the legend shows and what refreshes match on."""
    if not series.tags:
        return series.metric
    return ",".join(f"{k}={v}" for k, v in sorted(series.tags.items()))


def trace_uid(key: str) -> str:
    """A trace's uid: plotly puts it in CSS selectors, so letters and digits only."""
    return "s" + hashlib.blake2b(key.encode(), digest_size=6).hexdigest()


def rounded(values: FloatArray) -> list[float]:
    """Values to SIGNIFICANT_DIGITS, as a list (NaN becomes null in JSON: a gap)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log10(np.abs(values)))
        scale = 10.0 ** (SIGNIFICANT_DIGITS - 1 - np.where(np.isfinite(magnitude), magnitude, 0))
        out = np.round(values * scale) / scale
    result: list[float] = out.tolist()
    return result


LINE_POINTS = 3
"""Series with fewer points are drawn with dots as well as a line."""

GAP_FACTOR = 2.5
"""Points further apart than this many times their usual spacing are a gap: the line breaks."""


def spacing_ms(series: ResultSeries, step_ms: int) -> int:
    """The usual distance between a series' points: the step, or more when the data is sparser
    than the step (10 s points on a 2 s step must not read as a gap after every point)."""
    if len(series.ts_ms) < 2:
        return step_ms
    return max(step_ms, int(np.median(np.diff(series.ts_ms))))


def with_gaps(series: ResultSeries, gap_ms: float) -> tuple[list[int | None], list[float]]:
    """x and y with a null where points are more than `gap_ms` apart, so lines break there."""
    ts, values = series.ts_ms, series.values
    gaps = np.flatnonzero(np.diff(ts) > gap_ms) + 1
    y = rounded(values)
    if not len(gaps):
        return ts.tolist(), y
    x: list[int | None] = ts.tolist()
    for i in reversed(gaps.tolist()):
        x.insert(i, None)
        y.insert(i, float("nan"))
    return x, y


def complete(result: QueryResult, now_ns: int) -> QueryResult:
    """The result without buckets that are still filling (a half bucket looks like a dip)."""
    limit_ms = now_ns // NS_PER_MS - result.step_ms
    kept = []
    for s in result.series:
        n = int(np.searchsorted(s.ts_ms, limit_ms, side="right"))
        if n:
            kept.append(ResultSeries(s.metric, s.tags, s.ts_ms[:n], s.values[:n]))
    return QueryResult(tuple(kept), result.step_ms, result.tier)


def time_text(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration_text(ns: int) -> str:
    seconds = round(ns / 1e9)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_url(url: object) -> str:
    """`url` if it is an http(s) link, else "" (no `javascript:` links from a deploy form)."""
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else ""


def deploy_status(annotation: Annotation) -> str:
    status = annotation.extra.get("status", "running")
    return status if status in DEPLOY_COLORS else "running"


def deploy_color(deploy: Annotation) -> str:
    """Its verdict's colour once it has a final one, else its status's."""
    return verdict_color(deploy) or DEPLOY_COLORS[deploy_status(deploy)]


def hover_text(annotation: Annotation) -> str:
    """Who, what, when, version or before -> after, and the change set: escaped, then marked up."""

    def e(text: str) -> str:
        return html.escape(text, quote=False)  # plotly decodes &lt; &gt; &amp; only

    lines = [f"<b>{e(_short(annotation.title, 120))}</b>"]
    when = time_text(annotation.start_ns)
    if annotation.end_ns is not None and annotation.end_ns > annotation.start_ns:
        when += f" to {time_text(annotation.end_ns)[11:]}"
        when += f" ({_duration_text(annotation.end_ns - annotation.start_ns)})"
    if annotation.kind == "deploy":
        version = str(annotation.extra.get("version", ""))
        lines.append(f"{deploy_status(annotation).replace('_', ' ')} · version {e(version)}")
        lines += verdict_hover(annotation)
    elif annotation.kind == "flag":
        lines.append(f"flag {e(annotation.tags.get('flag', ''))}")
    elif annotation.kind == "alert":
        lines.append(e(alert_state(annotation)))
        labels = alert_labels(annotation)
        if labels:
            lines.append(e(_short(labels, 200)))
        if annotation.end_ns is None:
            when += " (still firing)"
    lines.append(f"by {e(annotation.who)} · {when}")
    if url := safe_url(annotation.extra.get("url")):
        lines.append(f"change: {e(_short(url, 100))}")
    if annotation.body:
        lines.append(e(_short(annotation.body.replace("\n", " "))))
    return "<br>".join(lines)


def alert_labels(annotation: Annotation) -> str:
    """An alert's labels but its name (the title): `host=web-1, service=web`."""
    return ", ".join(f"{k}={v}" for k, v in sorted(annotation.tags.items()) if k != "alertname")


def alert_state(annotation: Annotation) -> str:
    """`firing · value 0.031 (> 0.02)`, or `resolved after 7m12s · value …` (the firing one)."""
    extra = annotation.extra
    state = "firing"
    if annotation.end_ns is not None:
        ended = "ended (rule removed)" if extra.get("state") == "removed" else "resolved"
        state = f"{ended} after {_duration_text(annotation.end_ns - annotation.start_ns)}"
    value = extra.get("value")
    if not isinstance(value, int | float):
        return state
    threshold = extra.get("threshold")
    if isinstance(threshold, int | float):
        return f"{state} · value {value:.4g} ({extra.get('op', '')} {threshold:g})"
    return f"{state} · value {value:.4g}"


def _marker_traces(annotations: Sequence[Annotation]) -> list[dict[str, Any]]:
    """One trace per kind in the strip above the plot (its own hidden axis), with hover text."""
    traces = []
    styles = {"deploy": "triangle-down", "flag": "diamond", "note": "circle", "alert": "square"}
    for kind, symbol in styles.items():
        chosen = [a for a in annotations if a.kind == kind]
        if not chosen:
            continue
        colors = [deploy_color(a) if kind == "deploy" else _kind_color(kind) for a in chosen]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{kind}s",
                "uid": f"{MARKER_TRACE}-{kind}",
                "x": [a.start_ns // NS_PER_MS for a in chosen],
                "y": [0.5] * len(chosen),
                "yaxis": "y2",
                "customdata": [a.id for a in chosen],
                "hovertext": [hover_text(a) for a in chosen],
                "hoverinfo": "text",
                "marker": {"symbol": symbol, "size": 12, "color": colors},
                "showlegend": False,
            }
        )
    return traces


def _kind_color(kind: str) -> str:
    return {"flag": FLAG_COLOR, "alert": ALERT_COLOR}.get(kind, NOTE_COLOR)


def _marker_shapes(annotations: Sequence[Annotation], open_end_ms: int) -> list[dict[str, Any]]:
    """A line at each event; a deploy also shades start to finish, an alert firing to
    resolved (to `open_end_ms` while it fires). A failed, rolled-back or regressed deploy is
    red or orange, dashed, more strongly shaded; a verdict colours it (dashboards.verdicts).
    Events of one look share one path shape: fifty deploys cost a few shapes, not a hundred."""
    lines: dict[tuple[str, float, str], list[str]] = {}
    regions: dict[tuple[str, float], list[str]] = {}
    for a in annotations:
        x0 = a.start_ns // NS_PER_MS
        if a.kind == "alert":
            x1 = open_end_ms if a.end_ns is None else a.end_ns // NS_PER_MS
            regions.setdefault((ALERT_COLOR, 0.15), []).append(f"M{x0},0H{x1}V1H{x0}Z")
            style = (ALERT_COLOR, 2.0, "solid")
        elif a.kind == "deploy":
            status = deploy_status(a)
            bad = status in ("failed", "rolled_back") or verdict_status(a) == "regressed"
            color = deploy_color(a)
            if a.end_ns is not None and a.end_ns > a.start_ns:
                x1 = a.end_ns // NS_PER_MS
                regions.setdefault((color, 0.22 if bad else 0.1), []).append(
                    f"M{x0},0H{x1}V1H{x0}Z"
                )
            style = (color, 2.0, "dash" if bad else "solid")
        else:
            style = (_kind_color(a.kind), 1.5, "dot")
        lines.setdefault(style, []).append(f"M{x0},0V1")
    shapes: list[dict[str, Any]] = [
        {
            "type": "path",
            "xref": "x",
            "yref": "paper",
            "path": "".join(parts),
            "fillcolor": color,
            "opacity": opacity,
            "line": {"width": 0},
            "layer": "below",
        }
        for (color, opacity), parts in regions.items()
    ]
    shapes += [
        {
            "type": "path",
            "xref": "x",
            "yref": "paper",
            "path": "".join(parts),
            "line": {"color": color, "width": width, "dash": dash},
        }
        for (color, width, dash), parts in lines.items()
    ]
    return shapes


def _threshold_shapes(panel: Panel) -> list[dict[str, Any]]:
    return [
        {
            "type": "line",
            "xref": "paper",
            "yref": "y",
            "x0": 0,
            "x1": 1,
            "y0": t.value,
            "y1": t.value,
            "line": {"color": t.color, "width": 1, "dash": "dash"},
        }
        for t in panel.thresholds
    ]


LEGEND_ROW_PX = 19  # one row of legend entries (plotly's minimum entry height plus its gap)
LEGEND_MAX_ROWS = 4  # past this the legend scrolls instead of taking the plot's height


def _legend(theme: Theme) -> dict[str, Any]:
    """Below the axis, from the figure's bottom edge (clear of the date labels), wrapped into
    rows: every line is named, on a wall screen too, where nobody can scroll a legend."""
    return {
        "orientation": "h",
        "yref": "container",
        "y": 0,
        "yanchor": "bottom",
        "font": {"size": 11 if theme.is_wall else theme.font_size - 2},
    }


def legend_rows(names: Sequence[str], width_px: int, font_px: int) -> int:
    """How many rows plotly wraps a legend of `names` into across `width_px`, estimated from
    the text lengths, so the margin under the axis is made that tall (a margin plotly had to
    grow itself would cost a second draw)."""
    rows, used = 1, 0.0
    for name in names:
        entry = 40 + 0.6 * font_px * len(name)  # the line sample, the gaps and the text
        if used and used + entry > width_px:
            rows, used = rows + 1, 0.0
        used += entry
    return min(rows, LEGEND_MAX_ROWS)


def _margin(theme: Theme, rows: int) -> dict[str, int]:
    """Fixed margins (plotly's automargin draws twice); the bottom holds the date labels and
    `rows` rows of legend."""
    font = theme.font_size
    axis = 3 * font if theme.is_wall else 2 * font + 25
    return {
        "l": (5 if theme.is_wall else 6) * font,
        "r": 16,
        "t": 20 if theme.is_wall else 26,
        "b": axis + rows * LEGEND_ROW_PX,
    }


def series_traces(result: QueryResult, panel: Panel) -> list[dict[str, Any]]:
    hover = "%{y:.4s}" if panel.unit not in ("percent", "") else "%{y:.4g}"
    traces = []
    for s in result.series:
        x, y = with_gaps(s, GAP_FACTOR * spacing_ms(s, result.step_ms))
        name = series_key(s)
        trace = {
            "type": "scatter",
            "mode": "lines",
            "name": name,
            "uid": trace_uid(name),
            "x": x,
            "y": y,
            "line": {"width": 1.5},
            "hovertemplate": f"{hover}{_UNIT_AXES.get(panel.unit, {}).get('ticksuffix', '')}"
            "<extra>%{fullData.name}</extra>",
        }
        if len(s.ts_ms) < LINE_POINTS:
            # One point draws no line and two a stub: a series just begun gets dots too, or a
            # newcomer's first minute would show empty panels.
            trace |= {"mode": "lines+markers", "marker": {"size": 6}}
        traces.append(trace)
    return traces


def panel_figure(
    result: QueryResult,
    annotations: Sequence[Annotation],
    panel: Panel,
    *,
    x_range_ms: tuple[int, int],
    plot_width_px: int = 600,
    theme: Theme = LIGHT,
    revision: str = "",
) -> Figure:
    """The whole figure of a panel: its series, then the annotation markers, on one time axis.
    `plot_width_px` is about how wide the plot is drawn, which decides how the legend wraps."""
    axis = {"gridcolor": theme.grid, "zeroline": False, "color": theme.text}
    traces = series_traces(result, panel)
    legend = _legend(theme)
    names = [t["name"] for t in traces] if len(traces) > 1 else []
    rows = legend_rows(names, plot_width_px, legend["font"]["size"]) if names else 0
    return {
        "data": traces + _marker_traces(annotations),
        "layout": {
            "uirevision": revision,
            # The top margin holds the mode bar, which would otherwise cover the markers.
            "margin": _margin(theme, rows),
            "paper_bgcolor": theme.paper,
            "plot_bgcolor": theme.plot,
            "font": {"color": theme.text, "size": theme.font_size},
            "hovermode": "closest",
            "hoverlabel": {"align": "left"},
            "showlegend": bool(names),
            "legend": legend,
            "xaxis": axis | {"type": "date", "range": list(x_range_ms)},
            # Markers get a strip of their own above the data, so they never hide a line.
            "yaxis": axis
            | {"rangemode": "tozero", "domain": [0, 0.9]}
            | _UNIT_AXES.get(panel.unit, {}),
            "yaxis2": {"domain": [0.91, 1], "range": [0, 1], "visible": False, "fixedrange": True},
            "shapes": _marker_shapes(annotations, x_range_ms[1] + OPEN_BAND_MS)
            + _threshold_shapes(panel),
        },
    }


def problem_figure(message: str, *, theme: Theme) -> Figure:
    """An empty panel that says, where its lines would be, why it could not be drawn."""
    return {
        "data": [],
        "layout": {
            "paper_bgcolor": theme.paper,
            "plot_bgcolor": theme.plot,
            "font": {"color": theme.text, "size": theme.font_size},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "annotations": [
                {
                    "text": html.escape(_short(message), quote=False),
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                    "showarrow": False,
                    "font": {"color": DEPLOY_COLORS["failed"]},
                }
            ],
        },
    }
