"""StatsD listeners: UDP datagrams and newline-framed TCP, both feeding one aggregator.

Offered more UDP than it can take, the collector keeps serving: the kernel drops what no
longer fits in the socket's receive buffer, and those datagrams are counted as
`shipboard_dropped_total{protocol="statsd",reason="overload"}` (datagrams, not lines: the
kernel drops them unread) from the socket's own drop counter. TCP senders are slowed down
instead (the connection's flow control), nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from collector.line_framing import LineFramer
from collector.stats import IngestStats
from collector.statsd_aggregate import StatsdAggregator

log = logging.getLogger(__name__)

RECEIVE_BUFFER_BYTES = 16 * 1024 * 1024  # absorbs bursts while the loop is busy parsing
_DATAGRAM_MAX_BYTES = 65_535
_READ_DELAY_S = 0.002  # a pass starts this long after a quiet socket becomes readable
# Read per pass at most: a pass parses in a few ms, so under overload HTTP requests and flushes
# wait a few ms between passes, not tens.
_READ_MAX_BYTES = 256 * 1024
# Linux's SO_MEMINFO: the socket's memory counters as u32, the ninth (SK_MEMINFO_DROPS) the
# datagrams dropped so far, mostly because the receive buffer was full (the `drops` column of
# /proc/net/udp).
_SO_MEMINFO = 55
_MEMINFO = struct.Struct("=9I")
_DROPS_FIELD = 8
_U32 = 1 << 32


def socket_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped on `sock` so far (wrapping at 2**32), or None where the
    system does not say."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size)
    except OSError:
        return None
    if len(raw) < _MEMINFO.size:
        return None
    return int(_MEMINFO.unpack(raw)[_DROPS_FIELD])


class _UdpReader:
    """Reads a non-blocking UDP socket in passes, one chunk per pass.

    A readable socket arms a short timer instead of being read at once; the pass then reads
    every datagram queued by then until EAGAIN and parses them together. At high rates one
    wakeup and one parse serve hundreds of datagrams (a protocol callback would cost a wakeup
    and a call per datagram); flushes come every few seconds, so the delay costs nothing.

    After each pass the kernel's drop counter is read (one system call): a datagram is dropped
    only while the buffer is full, and a full buffer always has a pass coming, so every drop is
    counted by the pass after it."""

    def __init__(
        self, sock: socket.socket, aggregator: StatsdAggregator, stats: IngestStats
    ) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._aggregator = aggregator
        self._stats = stats
        self._drops = socket_drops(sock)
        self._loop = asyncio.get_running_loop()
        self._pass: asyncio.Handle | None = None
        self._loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        self._loop.remove_reader(self._fd)
        self._pass = self._loop.call_later(_READ_DELAY_S, self._read)

    def _read(self) -> None:
        self._pass = None
        recv = self._sock.recv
        datagrams: list[bytes] = []
        size = 0
        try:
            while size < _READ_MAX_BYTES:
                data = recv(_DATAGRAM_MAX_BYTES)
                datagrams.append(data)
                size += len(data) + 1
        except BlockingIOError:
            pass
        except OSError as e:
            log.warning("StatsD UDP error: %s", e)
        try:
            if datagrams:
                self._aggregator.ingest(b"\n".join(datagrams))
        finally:
            self._count_drops()
            if size >= _READ_MAX_BYTES:  # more is queued: read on without waiting
                self._pass = self._loop.call_soon(self._read)
            else:
                self._loop.add_reader(self._fd, self._readable)

    def _count_drops(self) -> None:
        if self._drops is None:
            return
        drops = socket_drops(self._sock)
        if drops is None:
            return
        if dropped := (drops - self._drops) % _U32:
            self._stats.add_dropped("statsd", "overload", dropped)
        self._drops = drops

    def close(self) -> None:
        if self._pass is not None:
            self._pass.cancel()
            self._pass = None
        self._loop.remove_reader(self._fd)


class _TcpProtocol(asyncio.Protocol):
    """Newline-framed lines; a partial line waits for the next read, up to MAX_LINE_BYTES."""

    def __init__(self, aggregator: StatsdAggregator, stats: IngestStats) -> None:
        self._framer = LineFramer(
            aggregator.ingest, lambda count: stats.add_dropped("statsd", "line_too_long", count)
        )

    def data_received(self, data: bytes) -> None:
        self._framer.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        # A client may close right after its last line without a newline.
        self._framer.finish()


@dataclass(frozen=True, slots=True)
class StatsdListener:
    """Where the running listeners are: the ports they took (0 asked for a free one each)."""

    udp_port: int
    tcp_port: int


def _udp_socket(host: str, port: int, receive_buffer_bytes: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # SO_RCVBUFFORCE passes net.core.rmem_max when privileged; otherwise ask politely.
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        try:
            if force is None:
                raise PermissionError
            sock.setsockopt(socket.SOL_SOCKET, force, receive_buffer_bytes)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def statsd_listener(
    host: str,
    port: int,
    aggregator: StatsdAggregator,
    stats: IngestStats,
    *,
    receive_buffer_bytes: int = RECEIVE_BUFFER_BYTES,
) -> AsyncIterator[StatsdListener]:
    """Listen for StatsD on UDP and TCP `port` (0: a free port each, see the listener's ports)
    for the life of the block. The UDP receive buffer holds `receive_buffer_bytes` (Linux
    doubles it for its overhead); beyond what it holds while the loop is busy, datagrams are
    dropped and counted."""
    loop = asyncio.get_running_loop()
    with contextlib.closing(_udp_socket(host, port, receive_buffer_bytes)) as udp:
        tcp = await loop.create_server(lambda: _TcpProtocol(aggregator, stats), host, port)
        async with tcp:  # closed last, once its connections are gone
            reader = _UdpReader(udp, aggregator, stats)
            try:
                listener = StatsdListener(udp.getsockname()[1], tcp.sockets[0].getsockname()[1])
                log.info(
                    "StatsD listening on %s udp:%d tcp:%d",
                    host,
                    listener.udp_port,
                    listener.tcp_port,
                )
                yield listener
            finally:
                reader.close()
