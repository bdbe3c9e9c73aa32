"""OTLP/HTTP metrics in: `POST /v1/metrics`, protobuf or JSON, gzip-compressed or not.

OpenTelemetry SDKs' and the Collector's OTLP HTTP exporters send here unchanged. A request is
answered 200 with an `ExportMetricsServiceResponse` in the request's encoding once every value
it kept is durable; its `partial_success` counts the data points that were rejected (malformed,
beyond the series limit or retention) and says why. A body that does not decode is a 400
(the exporter drops it) and nothing of it is stored; another Content-Type is a 415; a request
the store cannot hold (the spool full) is a 503, which exporters retry. Errors carry a
`google.rpc.Status` in the request's encoding, as OTLP asks.

Bodies are decoded and mapped (`collector.otlp_points`) on a thread of their own. Requests are
mapped and written one at a time: a cumulative exponential histogram's increase is taken
against its stream's previous export, which must be stored before the next one is read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from collector.otlp_points import Mapped, map_request
from collector.otlp_sketches import CumulativeStreams
from collector.stats import IngestStats
from collector.store_writer import StoreWriter
from storage.base import WriteResult
from storage.errors import SpoolFullError

PROTOCOL = "otlp"
PROTOBUF, JSON = "application/x-protobuf", "application/json"
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE = 3, 8, 14  # google.rpc.Code

BodyReader = Callable[[web.Request, int], Awaitable[bytes]]


def _status_class() -> type[Message]:
    """google.rpc.Status (code, message), the body of OTLP's error answers, built in a pool of
    its own so that it never clashes with googleapis-common-protos' copy."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="shipboard/rpc_status.proto", package="google.rpc", syntax="proto3"
    )
    status = proto.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=5, label=1, json_name="code")  # int32
    status.field.add(name="message", number=2, type=9, label=1, json_name="message")  # string
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


STATUS = _status_class()


def _answer(message: Message, content_type: str, status: int = 200) -> web.Response:
    if content_type == JSON:
        body = json_format.MessageToJson(message, indent=None).encode()
    else:
        body = message.SerializeToString()
    return web.Response(status=status, body=body, content_type=content_type)


def _error(http_status: int, code: int, message: str, content_type: str) -> web.Response:
    status_message = STATUS()
    status_message.code, status_message.message = code, message  # type: ignore[attr-defined]
    return _answer(status_message, content_type, http_status)


class UndecodableError(ValueError):
    """A body that is not an ExportMetricsServiceRequest in its Content-Type's encoding."""


def decode(body: bytes, content_type: str) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    try:
        if content_type == JSON:
            json_format.Parse(body, request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except (DecodeError, json_format.ParseError, ValueError, RecursionError) as error:
        encoding = "OTLP JSON" if content_type == JSON else "OTLP protobuf"
        raise UndecodableError(
            f"the body is not an ExportMetricsServiceRequest in {encoding}: {error}"
        ) from None
    return request


@dataclass
class OtlpIngest:
    writer: StoreWriter
    stats: IngestStats
    max_body_bytes: int
    read_body: BodyReader

    def __post_init__(self) -> None:
        self._streams = CumulativeStreams()
        self._one_at_a_time = asyncio.Lock()
        self._decoder: ThreadPoolExecutor | None = None

    async def decoder_thread(self, app: web.Application) -> AsyncIterator[None]:
        """The thread that decodes and maps every body, from startup to cleanup."""
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="otlp-decode")
        try:
            yield
        finally:
            await asyncio.to_thread(self._decoder.shutdown)

    def _map(self, body: bytes, content_type: str, now_ns: int) -> Mapped:
        return map_request(decode(body, content_type), now_ns, self._streams)

    async def write(self, request: web.Request) -> web.Response:
        """`POST /v1/metrics`."""
        content_type = request.content_type
        if content_type not in (PROTOBUF, JSON):
            return web.Response(
                status=415,
                text=f"Content-Type {content_type!r} is not OTLP/HTTP's: send {PROTOBUF} or {JSON}",
            )
        limit = self.max_body_bytes
        try:
            body = await self.read_body(request, limit)
        except web.HTTPRequestEntityTooLarge:
            message = (
                f"body is larger than the {limit}-byte limit (--max-body): export less at once"
            )
            return _error(413, RESOURCE_EXHAUSTED, message, content_type)
        except web.RequestPayloadError as error:  # e.g. Content-Encoding: gzip, but not gzip
            self.stats.add_dropped(PROTOCOL, "undecodable")
            answer = _error(
                400, INVALID_ARGUMENT, f"the body does not decode: {error}", content_type
            )
            answer.force_close()  # the rest of the body cannot be read: the answer must be last
            return answer
        loop = asyncio.get_running_loop()
        async with self._one_at_a_time:
            try:
                mapped = await loop.run_in_executor(
                    self._decoder, self._map, body, content_type, time.time_ns()
                )
            except UndecodableError as error:
                self.stats.add_dropped(PROTOCOL, "undecodable")
                return _error(400, INVALID_ARGUMENT, str(error), content_type)
            written = WriteResult(0)
            if len(mapped.samples) or len(mapped.sketches):
                try:
                    written = await self.writer.write(mapped.samples, PROTOCOL, mapped.sketches)
                except SpoolFullError as error:  # nothing was kept: the exporter retries
                    return _error(error.status, UNAVAILABLE, str(error), content_type)
            self._streams.commit(mapped.pending)
        for reason, count in mapped.rejected.items():  # once stored: a retried request counts once
            self.stats.add_dropped(PROTOCOL, reason, count)
        self.stats.add_received(PROTOCOL, written.accepted + mapped.sketch_count)
        return _answer(_response(mapped, written), content_type)


def _response(mapped: Mapped, written: WriteResult) -> ExportMetricsServiceResponse:
    """Empty when everything was kept; else partial_success with what was rejected and why."""
    response = ExportMetricsServiceResponse()
    reasons = [mapped.first_error] if mapped.first_error else []
    if written.refused_points:
        reasons.append(
            f"{written.refused_points} values of new series refused: the series limit "
            "(--max-series) is reached; raise it or send fewer attribute values"
        )
    if written.too_old:
        reasons.append(
            f"{written.too_old} values older than every tier keeps (--retention-1h) refused"
        )
    rejected = mapped.rejected.total() + written.refused_points + written.too_old
    if rejected:
        response.partial_success.rejected_data_points = rejected
        response.partial_success.error_message = "; ".join(reasons)
    return response


def add_otlp_routes(
    app: web.Application,
    writer: StoreWriter,
    stats: IngestStats,
    max_body_bytes: int,
    read_body: BodyReader,
) -> None:
    ingest = OtlpIngest(writer, stats, max_body_bytes, read_body)
    app.cleanup_ctx.append(ingest.decoder_thread)
    app.router.add_post("/v1/metrics", ingest.write)
