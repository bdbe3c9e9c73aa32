"""Read endpoints of the metric path: `/api/v1/query`, `/api/v1/metrics`, `/api/v1/series`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson
from aiohttp import web

from aggregator.errors import QueryError
from aggregator.query import QueryRequest, result_csv, result_json, run_query
from storage.base import StoreReader
from storage.records import Tier

STORE = web.AppKey("store", StoreReader)
TIERS = web.AppKey("tiers", Sequence[Tier])
MAX_POINTS = web.AppKey("max_points", int)


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
    result = await asyncio.to_thread(run_query, app[STORE], app[TIERS], query_request)
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
    app.router.add_get("/api/v1/query", query)
    app.router.add_get("/api/v1/metrics", metrics)
    app.router.add_get("/api/v1/series", series)
