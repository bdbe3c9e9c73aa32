"""StatsD listeners: UDP datagrams and newline-framed TCP, both feeding one aggregator."""

from __future__ import annotations

import asyncio
import logging
import socket

from collector.line_framing import LineFramer
from collector.stats import IngestStats
from collector.statsd_aggregate import StatsdAggregator

log = logging.getLogger(__name__)

_RECV_BUFFER_BYTES = 16 * 1024 * 1024  # absorbs bursts while the loop is busy parsing
_DATAGRAM_MAX_BYTES = 65_535
_READ_DELAY_S = 0.002  # a pass starts this long after a quiet socket becomes readable
_READ_MAX_BYTES = 1024 * 1024  # read per pass at most, so one pass never hogs the loop


class _UdpReader:
    """Reads a non-blocking UDP socket in passes, one chunk per pass.

    A readable socket arms a short timer instead of being read at once; the pass then reads
    every datagram queued by then until EAGAIN and parses them together. At high rates one
    wakeup and one parse serve hundreds of datagrams (a protocol callback would cost a wakeup
    and a call per datagram); flushes come every few seconds, so the delay costs nothing."""

    def __init__(self, sock: socket.socket, aggregator: StatsdAggregator) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._aggregator = aggregator
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
            if size >= _READ_MAX_BYTES:  # more is queued: read on without waiting
                self._pass = self._loop.call_soon(self._read)
            else:
                self._loop.add_reader(self._fd, self._readable)

    def close(self) -> None:
        if self._pass is not None:
            self._pass.cancel()
            self._pass = None
        self._loop.remove_reader(self._fd)
        self._sock.close()


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


class StatsdServer:
    """The running UDP endpoint and TCP server; `close()` stops both."""

    def __init__(self, udp: socket.socket, tcp: asyncio.Server, reader: _UdpReader) -> None:
        self._udp = reader
        self._tcp = tcp
        self.udp_port: int = udp.getsockname()[1]
        self.tcp_port: int = tcp.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._tcp.close()
        self._udp.close()
        await self._tcp.wait_closed()


def _udp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # SO_RCVBUFFORCE passes net.core.rmem_max when privileged; otherwise ask politely.
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        try:
            if force is None:
                raise PermissionError
            sock.setsockopt(socket.SOL_SOCKET, force, _RECV_BUFFER_BYTES)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER_BYTES)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def start_statsd(
    host: str, port: int, aggregator: StatsdAggregator, stats: IngestStats
) -> StatsdServer:
    """Listen for StatsD on UDP and TCP `port` (0: a free port each, see the server's ports)."""
    loop = asyncio.get_running_loop()
    udp = _udp_socket(host, port)
    try:
        tcp = await loop.create_server(lambda: _TcpProtocol(aggregator, stats), host, port)
    except OSError:
        udp.close()
        raise
    server = StatsdServer(udp, tcp, _UdpReader(udp, aggregator))
    log.info("StatsD listening on %s udp:%d tcp:%d", host, server.udp_port, server.tcp_port)
    return server
