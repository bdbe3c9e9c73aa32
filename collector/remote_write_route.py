"""`POST /api/v1/write`: Prometheus remote write 1.0, as a Prometheus server sends it.

Answers as the remote-write spec asks of a receiver: 204 once every point kept is durable; 400
for a body that is not snappy or not a WriteRequest, and for invalid series (the rest of the
body is kept, and the answer names the first), which the sender drops and does not retry; 503
while the store cannot hold writes, which it retries; 413 over the body limit (`--max-body`,
compressed or decompressed); 415 for another encoding or remote write 2.0.

The body limit, the parser thread, the store writer and the counters are the InfluxDB ingest's
(collector.http_ingest), which routes `/api/v1/write` here: its names are read per call.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from multidict import CIMultiDictProxy

from collector import http_ingest
from collector.remote_write import PROTOCOL, RemoteWriteError, decode
from storage.errors import SpoolFullError

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


async def remote_write(request: web.Request) -> web.Response:
    app = request.app
    stats, limit = app[http_ingest.INGEST_STATS], app[http_ingest.MAX_BODY_BYTES]
    refused_media = unsupported(request.headers)
    if refused_media is not None:
        return http_ingest._error(415, refused_media, "unsupported")
    try:
        body = await http_ingest._read_body(request, limit)
    except web.HTTPRequestEntityTooLarge:
        stats.add_dropped(PROTOCOL, "too_large")
        message = f"body is over the {limit}-byte limit (--max-body): lower max_samples_per_send"
        return http_ingest._error(413, message, "too large")
    try:
        decoded = await asyncio.get_running_loop().run_in_executor(
            app[http_ingest.PARSER], decode, body, limit
        )
    except RemoteWriteError as error:  # nothing of this body is kept
        stats.add_dropped(PROTOCOL, error.reason)
        return http_ingest._error(error.status, str(error), "invalid")
    for reason, count in decoded.dropped.items():
        stats.add_dropped(PROTOCOL, reason, count)
    problems = []
    if decoded.first_error is not None:
        problems.append(
            f"{decoded.invalid} invalid samples dropped, the first: {decoded.first_error}"
        )
    if len(decoded.samples):
        try:
            written = await app[http_ingest.STORE_WRITER].write(decoded.samples, PROTOCOL)
        except SpoolFullError as error:  # the sender retries the whole body
            return http_ingest._error(error.status, str(error), "unavailable")
        stats.add_received(PROTOCOL, written.accepted)
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
        return http_ingest._error(400, "partial write: " + "; ".join(problems), "invalid")
    return web.Response(status=204)
