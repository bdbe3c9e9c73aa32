"""Graphite plaintext listener: a TCP server that parses each read's complete lines at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from collector.graphite import parse_graphite
from collector.line_framing import MAX_LINE_BYTES, LineFramer
from collector.stats import IngestStats
from storage.records import Samples

logger = logging.getLogger(__name__)

_PROTOCOL = "graphite"


@dataclass(frozen=True, slots=True)
class GraphiteListener:
    """Where the running listener is: the port it took (0 asked for a free one)."""

    port: int


@contextlib.asynccontextmanager
async def graphite_listener(
    host: str,
    port: int,
    sink: Callable[[Samples], None],
    stats: IngestStats,
    *,
    clock: Callable[[], int] = time.time_ns,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> AsyncIterator[GraphiteListener]:
    """Listen on host:port (0 picks a free port) for the life of the block; every batch of
    good points goes to `sink`."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: GraphiteProtocol(sink, stats, clock, max_line_bytes), host, port
    )
    async with server:
        yield GraphiteListener(server.sockets[0].getsockname()[1])


class GraphiteProtocol(asyncio.Protocol):
    """One connection: newline framing with a bounded partial line carried across reads.

    A line longer than `max_line_bytes` is dropped (`line_too_long`) and the rest of it up to
    the next newline discarded; bad lines are dropped and counted by the parser's reason. The
    connection stays open whatever it is sent."""

    def __init__(
        self,
        sink: Callable[[Samples], None],
        stats: IngestStats,
        clock: Callable[[], int],
        max_line_bytes: int,
    ) -> None:
        self._sink = sink
        self._stats = stats
        self._clock = clock
        self._max_line_bytes = max_line_bytes
        self._framer = LineFramer(self._parse, self._drop_too_long, max_line_bytes)
        self._peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._peer = str(transport.get_extra_info("peername"))

    def data_received(self, data: bytes) -> None:
        self._framer.feed(data)

    def eof_received(self) -> bool:
        # A last line without its newline still counts, as `printf 'a 1 2' | nc` expects.
        self._framer.finish()
        return False

    def _parse(self, complete: bytes) -> None:
        result = parse_graphite(complete, self._clock())
        for reason, count in result.dropped.items():
            self._stats.add_dropped(_PROTOCOL, reason, count)
        if result.first_error is not None:
            logger.debug(
                "graphite: dropped %d bad lines from %s, first: %s",
                sum(result.dropped.values()),
                self._peer,
                result.first_error,
            )
        if not len(result.samples):
            return
        try:
            self._sink(result.samples)
        except Exception:
            # The sink is ours, not the client's: log loudly, count, keep serving.
            logger.exception("graphite: sink failed, %d points lost", len(result.samples))
            self._stats.add_dropped(_PROTOCOL, "sink_error", len(result.samples))
            return
        self._stats.add_received(_PROTOCOL, len(result.samples))

    def _drop_too_long(self, count: int) -> None:
        self._stats.add_dropped(_PROTOCOL, "line_too_long", count)
        logger.debug(
            "graphite: dropped %d lines over %d bytes from %s",
            count,
            self._max_line_bytes,
            self._peer,
        )
