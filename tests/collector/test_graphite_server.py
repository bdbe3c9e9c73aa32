"""Graphite TCP listener on a real socket: framing, many connections, garbage kept out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from collector.graphite_server import GraphiteListener, graphite_listener
from collector.stats import IngestStats
from storage.records import NS_PER_S, Samples, Series

NOW = 1_700_000_000 * NS_PER_S


class Listener:
    def __init__(self, server: GraphiteListener, batches: list[Samples], stats: IngestStats):
        self.batches = batches
        self.stats = stats
        self.port = server.port

    def points(self) -> list[tuple[Series, int, float]]:
        return Samples.concat(self.batches).points()

    async def send(self, *chunks: bytes, pause_s: float = 0.0) -> None:
        await send(self.port, *chunks, pause_s=pause_s)


async def send(port: int, *chunks: bytes, pause_s: float = 0.0) -> None:
    """Send chunks on one connection (pausing between them), then half-close and wait for the
    listener to close too: it has then handled every byte."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
        if pause_s:
            await asyncio.sleep(pause_s)
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    batches: list[Samples] = []
    stats = IngestStats()
    async with graphite_listener(
        "127.0.0.1", 0, batches.append, stats, clock=lambda: NOW, max_line_bytes=1024
    ) as server:
        yield Listener(server, batches, stats)


async def test_good_lines_reach_the_sink_with_exact_values(listener: Listener) -> None:
    await listener.send(b"a.b 1.25 1700000001\nc;host=x -3 1700000002\nd 7\n")
    assert listener.points() == [
        (Series("a.b"), 1_700_000_001 * NS_PER_S, 1.25),
        (Series("c", (("host", "x"),)), 1_700_000_002 * NS_PER_S, -3.0),
        (Series("d"), NOW, 7.0),
    ]
    assert listener.stats.received["graphite"] == 3


async def test_line_split_across_reads_is_joined(listener: Listener) -> None:
    await listener.send(b"split.me", b"tric 4", b"2 1", b"0\nnext 1 1\n", pause_s=0.05)
    assert listener.points() == [
        (Series("split.metric"), 10 * NS_PER_S, 42.0),
        (Series("next"), NS_PER_S, 1.0),
    ]


async def test_last_line_without_newline_counts_at_close(listener: Listener) -> None:
    await listener.send(b"a 1 1\nb 2 2")
    assert [v for _, _, v in listener.points()] == [1.0, 2.0]


async def test_garbage_in_the_stream_is_dropped_and_counted_the_rest_kept(
    listener: Listener,
) -> None:
    await listener.send(
        b"good.1 1 1\n\xff\xfe\x00garbage\n",
        b"good.2 2 2\na nan 3\n\x00\x01\x02\n",
        b"good.3 3 3\n",
        pause_s=0.05,
    )
    assert [str(s) for s, _, _ in listener.points()] == ["good.1", "good.2", "good.3"]
    assert dict(listener.stats.dropped) == {
        ("graphite", "bad_format"): 2,
        ("graphite", "non_finite"): 1,
    }
    assert listener.stats.received["graphite"] == 3


async def test_over_long_line_is_dropped_and_the_connection_keeps_working(
    listener: Listener,
) -> None:
    long_path = b"x" * 3000
    await listener.send(
        b"before 1 1\n" + long_path[:1500],
        long_path[1500:] + b" 1 1\nafter 2 2\n",
        b"y" * 2000 + b" 1 1\nlast 3 3\n",
        pause_s=0.05,
    )
    assert [str(s) for s, _, _ in listener.points()] == ["before", "after", "last"]
    assert listener.stats.dropped[("graphite", "line_too_long")] == 2


async def test_many_connections_at_once_all_arrive(listener: Listener) -> None:
    async def client(n: int) -> None:
        body = b"".join(b"conn.%d %d %d\n" % (n, i, i + 1) for i in range(200))
        await listener.send(body[:1000], body[1000:], pause_s=0.01)

    await asyncio.gather(*(client(n) for n in range(20)))
    points = listener.points()
    assert len(points) == 4000
    for n in range(20):
        mine = [(ts, v) for s, ts, v in points if s == Series(f"conn.{n}")]
        assert mine == [((i + 1) * NS_PER_S, float(i)) for i in range(200)]


async def test_a_failing_sink_is_counted_and_the_server_keeps_serving() -> None:
    stats = IngestStats()
    kept: list[Samples] = []

    def sink(samples: Samples) -> None:
        if samples.points()[0][0] == Series("boom"):
            raise RuntimeError("store unavailable")
        kept.append(samples)

    async with graphite_listener("127.0.0.1", 0, sink, stats) as server:
        await send(server.port, b"boom 1 1\n")
        await send(server.port, b"fine 2 2\n")
    assert stats.dropped[("graphite", "sink_error")] == 1
    assert Samples.concat(kept).points() == [(Series("fine"), 2 * NS_PER_S, 2.0)]
