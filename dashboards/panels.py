"""A panel drawn whole, and a live panel brought up to date by appending only what is new."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from dash import Patch, no_update

from aggregator.errors import QueryError
from aggregator.query import QueryResult
from dashboards.data import Board, TimeRange
from dashboards.figures import (
    DARK,
    GAP_FACTOR,
    LIGHT,
    Figure,
    complete,
    deploy_status,
    panel_figure,
    problem_figure,
    rounded,
    series_key,
    spacing_ms,
)
from dashboards.spec import Dashboard, Panel
from dashboards.verdicts import verdict_status
from storage.errors import StorageError
from storage.records import NS_PER_MS

MIN_POINTS = 100
PANEL_CHROME_PX = 90  # axis labels and card padding: pixels of a panel's width with no points
MAX_TRIM = 32
"""Points a refresh removes from the start of a line one by one (a patch operation each);
past this, after a long pause, the panel is drawn again whole."""
PER_LINE = ("last", "count")  # the meta's maps from a line's key: a refresh patches their entries

Meta = dict[str, Any]


def points_for(width_px: int, per_row: int, max_points: int) -> int:
    """About one point per horizontal pixel of the panel, within [MIN_POINTS, max_points]."""
    usable = width_px // max(per_row, 1) - PANEL_CHROME_PX
    return max(MIN_POINTS, min(max_points, usable))


def _annotation_stamp(annotations: list[Any]) -> str:
    """Changes when an annotation appears, ends or changes status or verdict: then the panel
    redraws."""
    text = ";".join(
        f"{a.id}:{a.end_ns}:{deploy_status(a)}:{verdict_status(a)}" for a in annotations
    )
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def render_panel(
    board: Board,
    dashboard: Dashboard,
    panel: Panel,
    variables: Mapping[str, str],
    span: TimeRange,
    *,
    points: int,
    kiosk: bool,
) -> tuple[Figure, Meta]:
    """The panel's figure over `span` and the meta a later refresh needs to extend it. When the
    store or the query fails, a figure that says why and a meta with no lines, so the next
    refresh tries again: one failing panel never blanks a page."""
    theme = DARK if kiosk else LIGHT
    try:
        result = board.query(panel, variables, span, max_points=points)
        annotations = board.annotations(panel.overlays, variables, span)
    except (QueryError, StorageError) as error:
        figure = problem_figure(f"{panel.title}: {error}", theme=theme)
        return figure, _meta(panel, span, points, QueryResult((), 0, ""), [], "")
    if span.is_live:
        result = complete(result, board.clock())
    figure = panel_figure(
        result,
        annotations,
        panel,
        x_range_ms=(span.start_ns // NS_PER_MS, span.end_ns // NS_PER_MS),
        plot_width_px=points,  # about one point per pixel of the plot (points_for)
        theme=theme,
        revision=f"{dashboard.slug}/{panel.id}/{span.start}/{span.end}",
    )
    if kiosk:
        figure["layout"]["xaxis"]["fixedrange"] = True
        figure["layout"]["yaxis"]["fixedrange"] = True
    # The series' lines come first in the figure, in the result's order.
    counts = [len(trace["x"]) for trace in figure["data"][: len(result.series)]]
    return figure, _meta(panel, span, points, result, counts, _annotation_stamp(annotations))


def keep_for(span_ms: int, step_ms: int) -> int:
    """How many entries of a line a live panel keeps: a point per step of its range, one more
    for the bucket cut by the range's start, one for a gap's null. A line with gaps or sparser
    than the step has fewer points in view: it keeps some out of view, never more than this."""
    return span_ms // max(step_ms, 1) + 2


def _meta(
    panel: Panel,
    span: TimeRange,
    points: int,
    result: QueryResult,
    counts: list[int],
    stamp: str,
) -> Meta:
    """What a refresh needs to extend the panel: each line's last point, index, gap and how
    many entries (points and gaps' nulls) it holds, and how many it may keep."""
    keys = [series_key(s) for s in result.series]
    span_ms = (span.end_ns - span.start_ns) // NS_PER_MS
    return {
        "panel": panel.id,
        "step_ms": result.step_ms,
        "span_ms": span_ms,
        "points": points,
        "keep": keep_for(span_ms, result.step_ms),
        "last": {k: int(s.ts_ms[-1]) for k, s in zip(keys, result.series, strict=True)},
        "count": dict(zip(keys, counts, strict=True)),
        "gap_ms": {
            k: GAP_FACTOR * spacing_ms(s, result.step_ms)
            for k, s in zip(keys, result.series, strict=True)
        },
        "index": {k: i for i, k in enumerate(keys)},
        "annotations": stamp,
    }


def refresh_panel(
    board: Board,
    dashboard: Dashboard,
    panel: Panel,
    variables: Mapping[str, str],
    meta: Meta,
    *,
    kiosk: bool,
) -> tuple[Figure | Patch, Meta]:
    """New complete buckets appended to each line, as many of its oldest entries removed as it
    holds beyond the window's (`keep_for`: a wall left on for weeks holds what it shows, not
    every point since it was opened), and the window slid to now. A new series or a change in
    the annotations redraws the panel instead; so does a panel with no data, and a line that
    would lose more than MAX_TRIM entries at once (after a long pause)."""
    now_ns = board.clock()
    span_ns = int(meta["span_ms"]) * NS_PER_MS
    window = TimeRange(f"-{meta['span_ms']}ms", "now", now_ns - span_ns, now_ns)
    last: dict[str, int] = meta["last"]
    if not last or "count" not in meta:  # no data yet, or a page served before counts
        return render_panel(
            board, dashboard, panel, variables, window, points=meta["points"], kiosk=kiosk
        )
    step_ms = int(meta["step_ms"])
    tail_start_ns = (min(last.values()) + step_ms) * NS_PER_MS
    if tail_start_ns >= now_ns:
        tail = None
    else:
        tail_span = TimeRange("", "now", tail_start_ns, now_ns)
        tail = board.query(panel, variables, tail_span, step_ns=step_ms * NS_PER_MS)
        tail = complete(tail, now_ns)
    annotations = board.annotations(panel.overlays, variables, window)
    index: dict[str, int] = meta["index"]
    if _annotation_stamp(annotations) != meta["annotations"] or (
        tail is not None and any(series_key(s) not in index for s in tail.series)
    ):
        return render_panel(
            board, dashboard, panel, variables, window, points=meta["points"], kiosk=kiosk
        )
    patch = Patch()
    new_last = dict(last)
    counts: dict[str, int] = dict(meta["count"])
    keep = int(meta["keep"])
    for s in tail.series if tail is not None else ():
        key = series_key(s)
        fresh = s.ts_ms > last[key]
        if not fresh.any():
            continue
        x: list[int | None] = s.ts_ms[fresh].tolist()
        y = rounded(s.values[fresh])
        if x[0] is not None and x[0] - last[key] > meta["gap_ms"][key]:
            x.insert(0, None)  # a gap since the last point: break the line
            y.insert(0, float("nan"))
        trace = patch["data"][index[key]]
        trim = counts[key] + len(x) - keep
        if trim > MAX_TRIM:
            return render_panel(
                board, dashboard, panel, variables, window, points=meta["points"], kiosk=kiosk
            )
        for _ in range(max(trim, 0)):
            del trace["x"][0]
            del trace["y"][0]
        trace["x"].extend(x)
        trace["y"].extend(y)
        new_last[key] = int(s.ts_ms[-1])
        counts[key] = min(counts[key] + len(x), keep)
    patch["layout"]["xaxis"]["range"] = [
        (now_ns - span_ns) // NS_PER_MS,
        now_ns // NS_PER_MS,
    ]
    return patch, {**meta, "last": new_last, "count": counts}


def meta_changes(old: Meta, new: Meta) -> Patch | Any:
    """What a refresh changed in a panel's meta, as a patch (the meta of a hundred lines is
    ~9 KB; a refresh changes a few of its timestamps), or no update when nothing changed."""
    patch = Patch()
    changed = False
    for key, value in new.items():
        if key in PER_LINE and isinstance(old.get(key), dict):
            for name, entry in value.items():
                if old[key].get(name) != entry:
                    patch[key][name] = entry
                    changed = True
        elif old.get(key) != value:
            patch[key] = value
            changed = True
    return patch if changed else no_update
