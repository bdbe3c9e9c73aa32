"""Prometheus' HTTP query API under /prometheus/api/v1/: query, query_range, series, labels,
label/<name>/values, metadata, query_exemplars (none are kept) and status/buildinfo, with
Prometheus' JSON and error shapes.

These are reads, so the viewer role may make them; a POST's form body is read as the same
query by GET (what Grafana and promtool send when a query is long).

`series`, `labels` and `label/<name>/values` with a `start` or `end` answer from the series that
have data in [start, end] (a missing bound is open), with or without `match[]`; with neither,
from every series the store lists (its listing: the fast way). A series has data there when it
has a raw point with start <= ts <= end, or, before the raw retention floor, a row of the
coarsest rollup tier whose bucket overlaps the range (its raw points are gone and were somewhere
in that bucket; on VictoriaMetrics, which rolls up from raw points within one retention, only
they count): `StoreReader.series_with_data`, which reads no points. Prometheus decides more
coarsely: `series` by chunk (a series answers when one of its chunks' [first, last] sample times
overlaps the range, though it may have no sample in it), the label lists by block and head
(every label of one that overlaps the range). End before start is no error in either: Shipboard
answers nothing, as Prometheus' `series` does (its label lists may still answer from its head).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable, Mapping

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiDict, MultiMapping

from aggregator.promql.engine import Evaluator, value_type
from aggregator.promql.labels import stored_label_names, stored_label_values
from aggregator.promql.names import LABEL_NAME, Labels, series_labels
from aggregator.promql.params import (
    MAX_TIME_MS,
    MIN_TIME_MS,
    BadParam,
    format_value,
    matrix_json,
    parse_duration_ms,
    parse_time_ms,
    vector_json,
)
from aggregator.promql.series import EvalError, Points, QueryTimeout, Sample, matching_series
from aggregator.promql.syntax import LabelMatcher, PromQLError, Selector, parse
from storage.base import StoreReader
from storage.records import NS_PER_MS, Series
from storage.series_index import sort_key
from storage.stale_markers import STALE_METRIC

PREFIX = "/prometheus/api/v1/"
MAX_POINTS = 11_000  # per series of a range query, as Prometheus
MAX_TIMEOUT_S = 120.0  # Prometheus' --query.timeout default
STORE = web.AppKey("promql_store", StoreReader)
BUILD_INFO = {  # the Prometheus whose query semantics these answers follow
    "version": "2.42.0",
    "revision": "shipboard",
    "branch": "shipboard",
    "buildUser": "shipboard",
    "buildDate": "",
    "goVersion": "",
}
_POST_READS = frozenset(
    PREFIX + p for p in ("query", "query_range", "series", "labels", "query_exemplars")
)


class ApiError(Exception):
    def __init__(self, kind: str, message: str, status: int) -> None:
        super().__init__(message)
        self.kind, self.status = kind, status


def _respond(data: object) -> web.Response:
    return web.Response(
        body=orjson.dumps({"status": "success", "data": data}), content_type="application/json"
    )


def _error(error: ApiError) -> web.Response:
    body = {"status": "error", "errorType": error.kind, "error": str(error)}
    return web.Response(
        status=error.status, body=orjson.dumps(body), content_type="application/json"
    )


def bad_data(message: str) -> ApiError:
    return ApiError("bad_data", message, 400)


def _query_error(error: Exception) -> ApiError:
    if isinstance(error, QueryTimeout):
        return ApiError("timeout", str(error), 503)
    if isinstance(error, PromQLError):
        return bad_data(f'invalid parameter "query": {error}')
    return ApiError("execution", str(error), 422)


def _time(params: Mapping[str, str], name: str, default: int) -> int:
    text = params.get(name)
    return default if text is None or text == "" else parse_time_ms(name, text)


def _deadline(params: Mapping[str, str]) -> float:
    """When the query stops: after its `timeout`, at most Prometheus' default 2 minutes."""
    text = params.get("timeout")
    seconds = MAX_TIMEOUT_S if not text else parse_duration_ms("timeout", text) / 1000
    return time.monotonic() + min(seconds, MAX_TIMEOUT_S)


def instant_query(store: StoreReader, params: Mapping[str, str], now_ms: int) -> object:
    ts = _time(params, "time", now_ms)
    deadline = _deadline(params)
    try:
        node = parse(params.get("query", ""))
        store.refresh()
        value = Evaluator(store, ts, ts, deadline=deadline).eval(node, ts)
    except (PromQLError, EvalError) as error:
        raise _query_error(error) from error
    kind = value_type(node)
    if isinstance(value, float):
        return {"resultType": "scalar", "result": [ts / 1000, format_value(value)]}
    if isinstance(value, str):
        return {"resultType": "string", "result": [ts / 1000, value]}
    if kind == "matrix":
        return {"resultType": "matrix", "result": matrix_json(value)}  # type: ignore[arg-type]
    return {"resultType": "vector", "result": vector_json(value, ts)}  # type: ignore[arg-type]


def range_query(store: StoreReader, params: Mapping[str, str]) -> object:
    start = parse_time_ms("start", params.get("start", ""))
    end = parse_time_ms("end", params.get("end", ""))
    if end < start:
        raise BadParam("end", "end timestamp must not be before start time")
    step = parse_duration_ms("step", params.get("step", ""))
    if step <= 0:
        raise BadParam(
            "step",
            "zero or negative query resolution step widths are not accepted. "
            "Try a positive integer",
        )
    if (end - start) // step > MAX_POINTS:
        raise bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )
    try:
        node = parse(params.get("query", ""))
        kind = value_type(node)
        if kind not in ("scalar", "vector"):
            raise PromQLError(
                f'invalid expression type "{"range vector" if kind == "matrix" else kind}" '
                "for range query, must be Scalar or instant Vector"
            )
        store.refresh()
        evaluator = Evaluator(store, start, end, deadline=_deadline(params))
        rows: dict[Labels, tuple[list[int], list[float]]] = {}
        for ts in range(start, end + 1, step):
            evaluator.check_time()
            value = evaluator.eval(node, ts)
            vector = [Sample((), value)] if isinstance(value, float) else value
            for s in vector:
                assert isinstance(s, Sample)
                times, values = rows.setdefault(s.labels, ([], []))
                times.append(ts)
                values.append(s.value)
    except (PromQLError, EvalError) as error:
        raise _query_error(error) from error
    series = [Points(labels, t, v) for labels, (t, v) in sorted(rows.items())]
    return {"resultType": "matrix", "result": matrix_json(series)}


def matched_labels(store: StoreReader, params: MultiMapping[str]) -> list[Labels] | None:
    """The label sets of the series any `match[]` selects (every series: without one) that
    have a point in [`start`, `end`]; None when there is neither a match[] nor a start or
    end (every series the store lists answers, the fast way)."""
    window = _window_ns(params)
    selectors = params.getall("match[]", [])
    if not selectors and window is None:
        return None
    matchers = []
    for text in selectors:
        try:
            matchers.append(parse_selector(text))
        except PromQLError as error:
            raise bad_data(str(error)) from error
    store.refresh()
    found: list[Series] | None = None  # None: every series
    if matchers:
        found = sorted({s for m in matchers for s in matching_series(store, m)}, key=sort_key)
    if window is not None:
        found = store.series_with_data(found, *window)
    return sorted({series_labels(s) for s in found or () if s.metric != STALE_METRIC})


def _window_ns(params: Mapping[str, str]) -> tuple[int, int] | None:
    """[start, end + 1 ms) in ns, the stores' range for `start` and `end` (each included, a
    missing one open); None when neither is given. End before start: an empty range."""
    start = _time(params, "start", MIN_TIME_MS)
    end = _time(params, "end", MAX_TIME_MS)
    if not params.get("start") and not params.get("end"):
        return None
    return _ns(start), _ns(end + 1)


def _ns(ms: int) -> int:
    """`ms` in ns, within what the stores' int64 times hold."""
    return min(max(ms * NS_PER_MS, -(2**63) + 1), 2**63 - 1)


def parse_selector(text: str) -> tuple[LabelMatcher, ...]:
    """A `match[]` selector's matchers: a bare selector, as Prometheus' ParseMetricSelector."""
    node = parse(text)
    if not isinstance(node, Selector) or node.offset_ms or node.at:
        raise PromQLError(f"parse error: {text!r} is not a series selector")
    return node.matchers


def series(store: StoreReader, params: MultiMapping[str]) -> object:
    if not params.getall("match[]", []):
        raise bad_data("no match[] parameter provided")
    return [dict(labels) for labels in matched_labels(store, params) or []]


def label_names(store: StoreReader, params: MultiMapping[str]) -> object:
    matched = matched_labels(store, params)
    if matched is None:
        store.refresh()
        return sorted(stored_label_names(store))
    return sorted({name for labels in matched for name, _ in labels})


def label_values(store: StoreReader, params: MultiMapping[str], name: str) -> object:
    if not LABEL_NAME.match(name):
        raise bad_data(f'invalid label name: "{name}"')
    matched = matched_labels(store, params)
    if matched is None:
        store.refresh()
        return sorted(stored_label_values(store, name))
    return sorted({value for labels in matched for key, value in labels if key == name})


Answer = Callable[[StoreReader, MultiMapping[str], web.Request], object]


async def _params(request: web.Request) -> MultiDict[str]:
    """The parameters as Go's FormValue reads them: a form body's, then the URL's."""
    params: MultiDict[str] = MultiDict()
    if request.content_type == "application/x-www-form-urlencoded":
        body = (await request.read()).decode("utf-8", "replace")
        params.extend(urllib.parse.parse_qsl(body, keep_blank_values=True))
    params.extend(request.rel_url.query)
    return params


def exemplars(store: StoreReader, params: MultiMapping[str]) -> object:
    """Shipboard keeps no exemplars: the query is checked, the answer is empty."""
    _time(params, "start", MIN_TIME_MS)
    _time(params, "end", MAX_TIME_MS)
    try:
        parse(params.get("query", ""))
    except PromQLError as error:
        raise _query_error(error) from error
    return []


def _handler(answer: Answer) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        params = await _params(request)
        try:
            data = await asyncio.to_thread(answer, request.app[STORE], params, request)
        except BadParam as error:
            return _error(bad_data(str(error)))
        except ApiError as error:
            return _error(error)
        return _respond(data)

    return handle


async def _post_as_get(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A POST of a read goes on as a GET (its form body still to read), so that the auth
    middleware asks of it a viewer's role, as of the same query by GET."""
    if request.method != "POST" or request.rel_url.path not in _POST_READS:
        return await handler(request)
    return await handler(request.clone(method="GET"))


def add_prometheus_routes(app: web.Application, store: StoreReader) -> None:
    """Serve the API on `app` (whose auth middleware covers it) over `store`."""
    app[STORE] = store
    app.middlewares.insert(0, web.middleware(_post_as_get))
    handlers: dict[str, Handler] = {
        "query": _handler(lambda s, p, _: instant_query(s, p, round(time.time() * 1000))),
        "query_range": _handler(lambda s, p, _: range_query(s, p)),
        "series": _handler(lambda s, p, _: series(s, p)),
        "labels": _handler(lambda s, p, _: label_names(s, p)),
        "query_exemplars": _handler(lambda s, p, _: exemplars(s, p)),
    }
    for path, handle in handlers.items():
        app.router.add_get(PREFIX + path, handle)
        app.router.add_post(PREFIX + path, handle)
    app.router.add_get(
        PREFIX + "label/{name}/values",
        _handler(lambda s, p, r: label_values(s, p, r.match_info["name"])),
    )
    app.router.add_get(PREFIX + "metadata", _handler(lambda s, p, r: {}))
    app.router.add_get(PREFIX + "status/buildinfo", _handler(lambda s, p, r: BUILD_INFO))
