"""Graphite plaintext listener: a TCP server that parses each read's complete lines at once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from collector.graphite import parse_graphite
from collector.stats import IngestStats
from storage.records import Samples

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
_PROTOCOL = "graphite"


async def start_graphite(
    host: str,
    port: int,
    sink: Callable[[Samples], None],
    stats: IngestStats,
    *,
    clock: Callable[[], int] = time.time_ns,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> asyncio.Server:
    """Listen on host:port (0 picks a free port); every batch of good points goes to `sink`."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: GraphiteProtocol(sink, stats, clock, max_line_bytes), host, port
    )


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
        self._partial = b""
        self._discarding = False  # inside an over-long line, waiting for its newline
        self._peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._peer = str(transport.get_extra_info("peername"))

    def data_received(self, data: bytes) -> None:
        if self._partial:
            data = self._partial + data
            self._partial = b""
        cut = data.rfind(b"\n") + 1
        complete, rest = data[:cut], data[cut:]
        if self._discarding and cut:
            complete = complete[complete.index(b"\n") + 1 :]
            self._discarding = False
        if not self._discarding:
            if len(rest) > self._max_line_bytes:
                self._drop_too_long(1)
                self._discarding = True
            else:
                self._partial = rest
        if complete:
            self._parse(complete)

    def eof_received(self) -> bool:
        # A last line without its newline still counts, as `printf 'a 1 2' | nc` expects.
        if self._partial and not self._discarding:
            self._parse(self._partial)
        self._partial = b""
        return False

    def _parse(self, complete: bytes) -> None:
        if len(complete) > self._max_line_bytes:
            complete = self._without_long_lines(complete)
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

    def _without_long_lines(self, complete: bytes) -> bytes:
        lines = complete.split(b"\n")
        kept = [line for line in lines if len(line) <= self._max_line_bytes]
        if len(kept) == len(lines):
            return complete
        self._drop_too_long(len(lines) - len(kept))
        return b"\n".join(kept)

    def _drop_too_long(self, count: int) -> None:
        self._stats.add_dropped(_PROTOCOL, "line_too_long", count)
        logger.debug(
            "graphite: dropped %d lines over %d bytes from %s",
            count,
            self._max_line_bytes,
            self._peer,
        )
