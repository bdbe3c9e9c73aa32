"""StatsD listeners on real UDP and TCP sockets at 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from collector.line_framing import MAX_LINE_BYTES
from collector.stats import IngestStats
from collector.statsd_aggregate import StatsdAggregator
from collector.statsd_server import StatsdListener, statsd_listener
from tests.launcher import free_port

HOST = "127.0.0.1"


async def wait_received(stats: IngestStats, count: int) -> None:
    for _ in range(500):
        if stats.received["statsd"] >= count:
            return
        await asyncio.sleep(0.01)
    assert stats.received["statsd"] >= count


class Listener:
    def __init__(self, server: StatsdListener, aggregator: StatsdAggregator, stats: IngestStats):
        self.server = server
        self.aggregator = aggregator
        self.stats = stats

    async def received(self, count: int) -> None:
        """Wait until `count` metrics were taken in (UDP on loopback does not drop here)."""
        await wait_received(self.stats, count)
        await asyncio.sleep(0.05)  # anything more would be a bug: let it arrive

    def flushed(self) -> dict[str, float]:
        return {str(s): v for s, _, v in self.aggregator.flush(1).samples.points()}


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    stats = IngestStats()
    aggregator = StatsdAggregator(stats, flush_interval_s=10.0)
    async with statsd_listener(HOST, 0, aggregator, stats) as server:
        yield Listener(server, aggregator, stats)


async def send_udp(port: int, *datagrams: bytes) -> None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for data in datagrams:
            await loop.sock_sendto(sock, data, (HOST, port))


async def send_tcp(port: int, *writes: bytes) -> None:
    _, writer = await asyncio.open_connection(HOST, port)
    for data in writes:
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_udp_multi_metric_datagrams_are_aggregated(listener: Listener) -> None:
    assert listener.server.udp_port > 0
    await send_udp(
        listener.server.udp_port,
        b"hits:1|c\nhits:2|c|@0.5\nlat:5|ms|#env:prod",
        b"g:3|g\ng:+1|g",
        b"users:a|s\nusers:b|s",
    )
    await listener.received(7)
    got = listener.flushed()
    assert got["hits.count"] == 5.0
    assert got["lat.upper{env=prod}"] == 5.0
    assert got["g"] == 4.0
    assert got["users.count"] == 2.0


async def test_udp_garbage_datagrams_are_counted_and_later_ones_kept(listener: Listener) -> None:
    await send_udp(
        listener.server.udp_port,
        b"\xff\xfe\x00garbage",
        b"",
        b"a:nan|c\na:1|c",
        b"x" * 60_000,
        b"a:2|c",
    )
    await listener.received(2)
    assert listener.flushed()["a.count"] == 3.0
    dropped = {reason: n for (_, reason), n in listener.stats.dropped.items()}
    assert dropped == {"bad_format": 2, "bad_value": 1}


async def test_tcp_lines_split_across_writes_are_joined(listener: Listener) -> None:
    await send_tcp(listener.server.tcp_port, b"a:1|c\na:", b"2|c\nb:4", b"|ms\r\n", b"c:7|g")
    await listener.received(4)
    got = listener.flushed()
    assert (got["a.count"], got["b.sum"], got["c"]) == (3.0, 4.0, 7.0)


async def test_tcp_line_over_the_limit_is_dropped_and_the_next_kept(listener: Listener) -> None:
    long_line = b"a" * (MAX_LINE_BYTES + 10) + b":1|c"
    await send_tcp(
        listener.server.tcp_port,
        b"ok:1|c\n" + long_line[:40_000],
        long_line[40_000:],
        b"\nok:1|c\n" + long_line + b"\nok:1|c\n",
    )
    await listener.received(3)
    assert listener.flushed()["ok.count"] == 3.0
    assert listener.stats.dropped[("statsd", "line_too_long")] == 2


async def test_many_tcp_connections_at_once(listener: Listener) -> None:
    lines = b"".join(b"c%d:1|c\n" % (i % 10) for i in range(200))
    await asyncio.gather(*(send_tcp(listener.server.tcp_port, lines) for _ in range(50)))
    await listener.received(50 * 200)
    got = listener.flushed()
    assert sum(got[f"c{i}.count"] for i in range(10)) == 10_000


async def test_udp_and_tcp_share_a_fixed_port() -> None:
    # Free for both kinds: a port free for UDP may be some TCP connection's local port.
    port = free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
    stats = IngestStats()
    aggregator = StatsdAggregator(stats, flush_interval_s=1.0)
    async with statsd_listener(HOST, port, aggregator, stats) as server:
        assert server.udp_port == server.tcp_port == port
        await send_udp(port, b"u:1|c")
        await send_tcp(port, b"t:1|c\n")
        await wait_received(stats, 2)


async def test_udp_burst_beyond_the_buffer_is_counted_and_the_listener_recovers() -> None:
    stats = IngestStats()
    aggregator = StatsdAggregator(stats, flush_interval_s=10.0)
    # A small buffer (Linux makes it 128 KiB): a burst sent without yielding to the loop,
    # which reads only between our sends, cannot fit.
    async with statsd_listener(
        HOST, 0, aggregator, stats, receive_buffer_bytes=64 * 1024
    ) as server:
        lines_per_datagram = 20
        datagram = b"\n".join([b"burst:1|c"] * lines_per_datagram)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect((HOST, server.udp_port))
            sent = 0
            for _ in range(2000):
                try:
                    sock.send(datagram)
                    sent += 1
                except BlockingIOError:  # our own send buffer full: not sent, not counted
                    pass
        sent_lines = sent * lines_per_datagram

        def accounted() -> int:
            dropped = stats.dropped["statsd", "overload"]
            return stats.received["statsd"] + dropped * lines_per_datagram

        for _ in range(500):
            if accounted() >= sent_lines:
                break
            await asyncio.sleep(0.01)
        dropped = stats.dropped["statsd", "overload"]
        assert dropped > sent // 2
        assert accounted() == sent_lines
        # What was taken in is aggregated, every line of it.
        burst = {str(s): v for s, _, v in aggregator.flush(1).samples.points()}
        assert burst["burst.count"] == stats.received["statsd"] == sent_lines - dropped * 20
        # Afterwards the listener takes everything again, and counts no more drops.
        received_before = stats.received["statsd"]
        await send_udp(server.udp_port, *[b"after:1|c\nafter:2|c"] * 10)
        await wait_received(stats, received_before + 20)
        got = {str(s): v for s, _, v in aggregator.flush(2).samples.points()}
        assert got["after.count"] == 30.0
        assert stats.dropped["statsd", "overload"] == dropped
