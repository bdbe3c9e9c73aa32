"""InfluxDB-compatible HTTP ingest: `POST /write` (v1) and `POST /api/v2/write` (v2).

Telegraf and influxdb-client push here unchanged. A write is answered 204 only once every point
it kept is durable; a body with bad lines keeps the good ones and is answered 400 naming the first
bad line and how many were dropped, as InfluxDB does with a partial write. A write the store
cannot hold (InfluxDB away and the spool full) is refused whole with 503.

Bodies are parsed on one thread of their own, never on the event loop: a 5,000-line body of
new series takes 0.1-0.2 s to parse, and queries, `/metrics` and the other listeners keep being
answered meanwhile. One thread, because the parser's caches expect one caller at a time; it
also bounds the CPU that ingest takes from the queries to one thread's worth.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import orjson
from aiohttp import web

from collector.influx_line import PRECISION_NS, parse_influx
from collector.otlp import add_otlp_routes
from collector.remote_write_route import add_remote_write_route
from collector.stats import IngestStats
from collector.store_writer import StoreWriter
from storage.errors import SpoolFullError

STORE_WRITER = web.AppKey("store_writer", StoreWriter)
INGEST_STATS = web.AppKey("ingest_stats", IngestStats)
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
PARSER = web.AppKey("parser", ThreadPoolExecutor)


def _error(status: int, message: str, code: str) -> web.Response:
    # `error` is Shipboard's and InfluxDB 1.x's shape; `code`/`message` are what v2 clients print.
    body = {"error": message, "code": code, "message": message}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, at most `limit` bytes once decompressed: aiohttp inflates `Content-Encoding:
    gzip` as it streams, so a small compressed body cannot expand past the limit unseen."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


async def _write(request: web.Request, precision: str) -> web.Response:
    app = request.app
    limit = app[MAX_BODY_BYTES]
    if precision not in PRECISION_NS:
        return _error(400, f"precision {precision!r} is not one of ns, us, ms, s, m, h", "invalid")
    try:
        body = await _read_body(request, limit)
    except web.HTTPRequestEntityTooLarge:
        return _error(
            413, f"body is larger than the {limit}-byte limit (--max-body): split it", "too large"
        )
    except ValueError as error:
        return _error(400, str(error), "invalid")
    stats = app[INGEST_STATS]
    result = await asyncio.get_running_loop().run_in_executor(
        app[PARSER], parse_influx, body, time.time_ns(), precision
    )
    dropped = sum(result.dropped.values())
    for reason, count in result.dropped.items():
        stats.add_dropped("influx", reason, count)
    if result.skipped_strings:
        stats.add_dropped("influx", "string_field", result.skipped_strings)
    refused = too_old = 0
    if len(result.samples):
        try:
            written = await app[STORE_WRITER].write(result.samples, "influx")
        except SpoolFullError as error:  # nothing of this body was kept: the client retries
            return _error(error.status, str(error), "unavailable")
        stats.add_received("influx", written.accepted)
        refused, too_old = written.refused_points, written.too_old
    if result.first_error is not None:
        return _error(400, f"partial write: {result.first_error} dropped={dropped}", "invalid")
    if refused:
        return _error(
            400,
            f"partial write: the series limit (--max-series) is reached: {refused} points of "
            "new series dropped; raise --max-series or stop sending new tag values",
            "invalid",
        )
    if too_old:
        return _error(
            400,
            f"partial write: points beyond retention policy dropped={too_old}: they are older "
            "than every tier keeps (the longest is --retention-1h)",
            "invalid",
        )
    return web.Response(status=204)


async def write_v1(request: web.Request) -> web.Response:
    """`POST /write?db=…&precision=…`: the `db` is accepted and ignored (one namespace)."""
    return await _write(request, request.query.get("precision", "ns"))


async def write_v2(request: web.Request) -> web.Response:
    """`POST /api/v2/write?bucket=…&org=…&precision=…`: bucket and org are accepted and ignored."""
    if "bucket" not in request.query:
        return _error(400, "bucket is required (?bucket=…)", "invalid")
    return await _write(request, request.query.get("precision", "ns"))


async def _parser_thread(app: web.Application) -> AsyncIterator[None]:
    """The thread that parses every body, from startup to cleanup."""
    executor = ThreadPoolExecutor(1, thread_name_prefix="influx-parse")
    app[PARSER] = executor
    try:
        yield
    finally:
        await asyncio.to_thread(executor.shutdown)


def add_ingest_routes(
    app: web.Application, writer: StoreWriter, stats: IngestStats, max_body_bytes: int
) -> None:
    app[STORE_WRITER] = writer
    app[INGEST_STATS] = stats
    app[MAX_BODY_BYTES] = max_body_bytes
    app.cleanup_ctx.append(_parser_thread)
    app.router.add_post("/write", write_v1)
    app.router.add_post("/api/v2/write", write_v2)
    add_otlp_routes(app, writer, stats, max_body_bytes, _read_body)
    add_remote_write_route(app, writer, stats, max_body_bytes, _read_body)
