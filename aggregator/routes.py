"""Read endpoints of the metric path: `/api/v1/query`, `/api/v1/metrics`, `/api/v1/series`."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence

import orjson
from aiohttp import web

from aggregator.errors import QueryError
from aggregator.query import QueryRequest, QueryResult, result_csv, result_json, run_query
from storage.base import StoreReader
from storage.records import Tier

STORE = web.AppKey("store", StoreReader)
TIERS = web.AppKey("tiers", Sequence[Tier])
MAX_POINTS = web.AppKey("max_points", int)


class QuickQueries:
    """The queries (by their parameters, as a dashboard repeats them) whose last run took under
    `limit_s`: they run on the event loop, without the hop to a worker thread and back, which
    was a fifth of a one-series query's time. Any other query, or one not seen lately, runs
    in a thread, so that a long one never holds up the server (a quick one that has become
    slow does so once: it is then timed again)."""

    def __init__(self, limit_s: float = 0.001, size: int = 1024) -> None:
        self._limit_s = limit_s
        self._size = size
        self._quick: OrderedDict[tuple[tuple[str, str], ...], None] = OrderedDict()

    def is_quick(self, key: tuple[tuple[str, str], ...]) -> bool:
        return key in self._quick

    def note(self, key: tuple[tuple[str, str], ...], seconds: float) -> None:
        if seconds >= self._limit_s:
            self._quick.pop(key, None)
            return
        self._quick[key] = None
        self._quick.move_to_end(key)
        if len(self._quick) > self._size:
            self._quick.popitem(last=False)


QUICK = web.AppKey("quick_queries", QuickQueries)


def _json(payload: object) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        body=orjson.dumps({"error": message}), content_type="application/json"
    )


async def query(request: web.Request) -> web.Response:
    app = request.app
    try:
        query_request = QueryRequest.from_params(request.query, time.time_ns(), app[MAX_POINTS])
    except QueryError as error:
        raise _bad_request(str(error)) from error
    key = tuple(sorted(request.query.items()))

    def timed() -> tuple[QueryResult, float]:
        started = time.perf_counter()
        found = run_query(app[STORE], app[TIERS], query_request)
        return found, time.perf_counter() - started

    quick = app[QUICK]
    result, seconds = timed() if quick.is_quick(key) else await asyncio.to_thread(timed)
    quick.note(key, seconds)
    if request.query.get("format") == "csv":
        return web.Response(
            text=result_csv(result),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="query.csv"'},
        )
    return web.Response(body=result_json(result), content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    pattern = request.query.get("match", "*")
    names = await asyncio.to_thread(request.app[STORE].metrics, pattern)
    return _json({"metrics": names})


async def series(request: web.Request) -> web.Response:
    metric = request.query.get("metric")
    if not metric:
        raise _bad_request("metric is required (?metric=name)")
    found = await asyncio.to_thread(request.app[STORE].series, metric)
    return _json({"series": [{"metric": s.metric, "tags": dict(s.tags)} for s in found]})


def add_query_routes(
    app: web.Application, store: StoreReader, tiers: Sequence[Tier], max_points: int
) -> None:
    app[STORE] = store
    app[TIERS] = tuple(tiers)
    app[MAX_POINTS] = max_points
    app[QUICK] = QuickQueries()
    app.router.add_get("/api/v1/query", query)
    app.router.add_get("/api/v1/metrics", metrics)
    app.router.add_get("/api/v1/series", series)
