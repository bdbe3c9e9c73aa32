"""Whether Shipboard and VictoriaMetrics answer the query benchmark's queries alike.

The timed queries reach back from now, and the servers are asked minutes apart, so their answers
cannot be compared point for point. Both servers hold the same week of points, ending when the
benchmark began (`load_week_alike`); each query is asked once more over a fixed window of whole
buckets inside that week, and those answers are compared: series, points, and the one series'
values (q1).
"""

from __future__ import annotations

import math
from typing import Any

from bench.core import Options
from bench.ingest import Measured
from bench.procs import Server
from bench.queries import QUERIES, STEP_S, Query, get_json, query_latency

_VALUES_OF = "one_series_7d_1h_ms"  # the query whose every value is compared
_REL_TOLERANCE = 1e-9  # means of the same points, summed in another order


def fixed_window(query: Query, end_s: int) -> tuple[int, int]:
    """[start, end) of the whole `step` buckets of `query`'s span that lie before `end_s`."""
    stop = end_s // query.step_s * query.step_s
    start = -(-(end_s - query.span_s) // query.step_s) * query.step_s
    return start, stop


def answer(server: Server, query: Query, start_s: int, stop_s: int) -> dict[str, list[Any]]:
    """{host: [[bucket start in unix ms, value], ...]} of one server's answer over the window."""
    # Both servers end one second before `stop_s`, so a point at `stop_s` counts for neither.
    if server.name == "shipboard":
        reply = get_json(server, query.shipboard(str(start_s), str(stop_s - 1)))
        return {s["tags"]["host"]: s["points"] for s in reply["series"]}
    reply = get_json(server, query.victoria_between(start_s, stop_s))
    # VictoriaMetrics stamps a bucket with its last second: t + step - 1.
    back_s = query.step_s - 1
    return {
        r["metric"]["host"]: [[(int(t) - back_s) * 1000, float(v)] for t, v in r["values"]]
        for r in reply["data"]["result"]
    }


def fixed_answers(server: Server, end_s: int) -> dict[str, dict[str, Any]]:
    """Series and points of every query over its fixed window; for q1 its values too."""
    found: dict[str, dict[str, Any]] = {}
    for name, query in QUERIES.items():
        start_s, stop_s = fixed_window(query, end_s)
        series = answer(server, query, start_s, stop_s)
        found[name] = {
            "window_s": [start_s, stop_s],
            "series": len(series),
            "points": sum(len(points) for points in series.values()),
        }
        if name == _VALUES_OF:
            found[name]["values"] = [point for points in series.values() for point in points]
    return found


def checked_query_latency(server: Server, options: Options) -> Measured:
    """`query_latency`, then the same queries over fixed windows for `agreement`."""
    measured = query_latency(server, options)
    end_s = options.began_s // STEP_S * STEP_S
    measured.details["fixed"] = fixed_answers(server, end_s)
    return measured


def agreement(peer: list[dict[str, Any]], ours: list[dict[str, Any]]) -> dict[str, Any]:
    """Each query's fixed answer compared between the peer and Shipboard: `agree` when series
    and points are the same and q1's values equal within 1e-9 (relative)."""
    theirs, mine = (_fixed(details) for details in (peer, ours))
    verdicts: dict[str, Any] = {}
    for name in QUERIES:
        a, b = theirs[name], mine[name]
        verdict: dict[str, Any] = {
            "series": [a["series"], b["series"]],
            "points": [a["points"], b["points"]],
        }
        same = a["window_s"] == b["window_s"] and verdict["series"][0] == verdict["series"][1]
        same &= verdict["points"][0] == verdict["points"][1]
        if name == _VALUES_OF:
            verdict["values_differing"] = _differing(a["values"], b["values"])
            same &= verdict["values_differing"] == 0
        verdict["agree"] = same
        verdicts[name] = verdict
    return verdicts


def _fixed(details: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = next(d["fixed"] for d in details if "fixed" in d)
    return found


def _differing(theirs: list[list[float]], mine: list[list[float]]) -> int:
    """Points of one answer not in the other at the same time with an equal value."""
    by_time = {int(t): v for t, v in theirs}
    equal = sum(
        1
        for t, v in mine
        if int(t) in by_time and math.isclose(v, by_time[int(t)], rel_tol=_REL_TOLERANCE)
    )
    return len(theirs) + len(mine) - 2 * equal
