"""`POST /api/v1/write`: Prometheus remote write 1.0, as a Prometheus server sends it.

Answers as the remote-write spec asks of a receiver: 204 once every point kept is durable; 400
for a body that is not snappy or not a WriteRequest, and for invalid series (the rest of the
body is kept, and the answer names the first), which the sender drops and does not retry; 503
while the store cannot hold writes, which it retries; 413 over the body limit (`--max-body`,
compressed or decompressed); 415 for another encoding or remote write 2.0.

Bodies are decoded on a thread of their own, never on the event loop. The body limit, the store
writer and the counters are the InfluxDB ingest's (collector.http_ingest).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from collector.otlp_sketches import CumulativeStreams, Histogram
from collector.remote_write import PROTOCOL, Decoded, RemoteWriteError, decode
from collector.stats import IngestStats
from collector.store_writer import StoreWriter
from storage.base import WriteResult
from storage.errors import SpoolFullError
from storage.records import Series, Sketches

BodyReader = Callable[[web.Request, int], Awaitable[bytes]]
V1_MESSAGE = "prometheus.WriteRequest"


def unsupported(headers: CIMultiDictProxy[str]) -> str | None:
    """Why a body of this Content-Encoding and Content-Type is not remote write 1.0, if so.
    Both may be left out (a body is then taken as snappy-compressed protobuf)."""
    encoding = headers.get("Content-Encoding", "snappy").strip().lower()
    if encoding != "snappy":
        return f"Content-Encoding {encoding!r} is not taken: remote write bodies are snappy"
    media, *parameters = headers.get("Content-Type", "application/x-protobuf").split(";")
    if media.strip().lower() != "application/x-protobuf":
        return f"Content-Type {media.strip()!r} is not taken: send application/x-protobuf"
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        message = value.strip().strip('"')
        if key.strip().lower() == "proto" and message != V1_MESSAGE:
            return (
                f"remote write message {message!r} is not taken: Shipboard takes remote write"
                f" 1.0 ({V1_MESSAGE}; protobuf_message: {V1_MESSAGE} in Prometheus' remote_write)"
            )
    return None


def _error(status: int, message: str) -> web.Response:
    # Prometheus logs the answer's body: the message says what to change.
    body = orjson.dumps({"error": message})
    return web.Response(status=status, body=body, content_type="application/json")


@dataclass
class RemoteWriteIngest:
    writer: StoreWriter
    stats: IngestStats
    max_body_bytes: int
    read_body: BodyReader
    _decoder: ThreadPoolExecutor | None = field(default=None, init=False)
    # Native histograms are stored as increases over each series' last stored one: bodies with
    # histograms are written one at a time, each series' state taken once its write is durable.
    _streams: CumulativeStreams = field(default_factory=CumulativeStreams, init=False)
    _histograms_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def decoder_thread(self, app: web.Application) -> AsyncIterator[None]:
        """The thread that decodes every body, from startup to cleanup."""
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="remote-write-decode")
        try:
            yield
        finally:
            await asyncio.to_thread(self._decoder.shutdown)

    async def write(self, request: web.Request) -> web.Response:
        """`POST /api/v1/write`."""
        stats, limit = self.stats, self.max_body_bytes
        refused_media = unsupported(request.headers)
        if refused_media is not None:
            answer = _error(415, refused_media)
            answer.force_close()  # the body is left unread (it may not even inflate)
            return answer
        try:
            body = await self.read_body(request, limit)
        except web.HTTPRequestEntityTooLarge:
            stats.add_dropped(PROTOCOL, "too_large")
            return _error(
                413,
                f"body is over the {limit}-byte limit (--max-body): lower"
                " max_samples_per_send in remote_write's queue_config",
            )
        except web.RequestPayloadError as error:  # a chunked body broken off, say
            stats.add_dropped(PROTOCOL, "bad_body")
            answer = _error(400, f"the body could not be read: {error}")
            answer.force_close()  # the rest of the body cannot be read: the answer must be last
            return answer
        try:
            decoded = await asyncio.get_running_loop().run_in_executor(
                self._decoder, decode, body, limit
            )
        except RemoteWriteError as error:  # nothing of this body is kept
            stats.add_dropped(PROTOCOL, error.reason)
            return _error(error.status, str(error))
        for reason, count in decoded.dropped.items():
            stats.add_dropped(PROTOCOL, reason, count)
        problems = []
        if decoded.first_error is not None:
            problems.append(
                f"{decoded.invalid} invalid samples dropped, the first: {decoded.first_error}"
            )
        try:
            written = await self._store(decoded)
        except SpoolFullError as error:  # the sender retries the whole body
            return _error(error.status, str(error))
        stats.add_received(PROTOCOL, written.accepted + len(decoded.histograms))
        if written.refused_points:
            problems.append(
                f"the series limit (--max-series) is reached: {written.refused_points} samples"
                " of new series dropped; raise --max-series or send fewer new label values"
            )
        if written.too_old:
            problems.append(
                f"{written.too_old} samples older than every tier keeps (the longest is"
                " --retention-1h) dropped"
            )
        if problems:
            return _error(400, "partial write: " + "; ".join(problems))
        return web.Response(status=204)

    async def _store(self, decoded: Decoded) -> WriteResult:
        """Write the body's samples and its histograms' increases, durably."""
        histograms = bool(decoded.histograms)
        async with self._histograms_lock if histograms else contextlib.nullcontext():
            sketches, pending = Sketches.empty(), dict[Series, Histogram]()
            if histograms:
                sketches, pending = self._streams.increases(decoded.histograms)
            if not len(decoded.samples) and not len(sketches):
                return WriteResult(0)
            written = await self.writer.write(decoded.samples, PROTOCOL, sketches)
            self._streams.commit(pending)
            return written


def add_remote_write_route(
    app: web.Application,
    writer: StoreWriter,
    stats: IngestStats,
    max_body_bytes: int,
    read_body: BodyReader,
) -> None:
    ingest = RemoteWriteIngest(writer, stats, max_body_bytes, read_body)
    app.cleanup_ctx.append(ingest.decoder_thread)
    app.router.add_post("/api/v1/write", ingest.write)
