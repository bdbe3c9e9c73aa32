"""StatsD relay: routes each metric name to one collector by consistent hashing, so that one
node sees every value of a timer and its percentiles stay right."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Self

import mmh3
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from collector.line_framing import LineFramer
from storage.tasks import background

log = logging.getLogger(__name__)

VNODES = 160  # points per node on the ring, as etsy's statsd proxy uses
DATAGRAM_MAX_BYTES = 1400  # stays under a 1500-byte Ethernet MTU with IP and UDP headers
_ROUTE_CACHE_MAX = 100_000  # names remembered with their node; cleared when it fills


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) as a pair; ValueError when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not host:port: {text!r}")
    return host.strip("[]"), int(port)


class HashRing:
    """A ring of `vnodes` points per node, placed by MurmurHash3 of `node:i`; a name belongs
    to the node of the first point at or after its own hash. Removing a node moves only the
    names it held; every other name keeps its node."""

    def __init__(self, nodes: Iterable[str], vnodes: int = VNODES) -> None:
        points = sorted(
            (mmh3.hash(f"{node}:{i}", signed=False), node) for node in nodes for i in range(vnodes)
        )
        self._hashes = [h for h, _ in points]
        self._nodes = [node for _, node in points]

    def node_for(self, name: bytes) -> str | None:
        """The node that owns `name`, None on an empty ring."""
        if not self._hashes:
            return None
        at = bisect.bisect_left(self._hashes, mmh3.hash(name, signed=False))
        return self._nodes[at % len(self._nodes)]


@dataclass
class RelayStats:
    """The relay's own counters: lines relayed per node, lines dropped by reason."""

    relayed: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    datagrams: int = 0


class RelayCollector(Collector):
    """The relay's counters and node states for `/metrics`, read at scrape time (the routing
    path only bumps plain counters)."""

    def __init__(self, stats: RelayStats, up: Mapping[str, bool]) -> None:
        self._stats = stats
        self._up = up

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        relayed = CounterMetricFamily(
            "shipboard_relay_relayed", "Lines forwarded, by node.", labels=["node"]
        )
        for node in sorted(self._up):
            relayed.add_metric([node], self._stats.relayed[node])
        yield relayed
        dropped = CounterMetricFamily(
            "shipboard_relay_dropped", "Lines dropped, by reason.", labels=["reason"]
        )
        for reason, count in sorted(self._stats.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
        yield CounterMetricFamily(
            "shipboard_relay_datagrams", "Datagrams sent to nodes.", value=self._stats.datagrams
        )
        up = GaugeMetricFamily(
            "shipboard_relay_node_up",
            "Whether the node passed its last health check.",
            labels=["node"],
        )
        for node, alive in sorted(self._up.items()):
            up.add_metric([node], int(alive))
        yield up


SendFn = Callable[[str, bytes], None]
"""Sends one datagram to a node."""


class Router:
    """Splits StatsD lines by name onto the live nodes and sends them as datagrams of at most
    DATAGRAM_MAX_BYTES, several lines each. Synchronous apart from the send callback."""

    def __init__(self, nodes: Sequence[str], send: SendFn, stats: RelayStats) -> None:
        if not nodes:
            raise ValueError("a relay needs at least one node")
        self.up = dict.fromkeys(nodes, True)
        self._send = send
        self._stats = stats
        self._ring = HashRing(nodes)
        self._routes: dict[bytes, str | None] = {}

    def set_up(self, node: str, up: bool) -> None:
        """Mark a node live or dead; a change rebuilds the ring over the live nodes."""
        if self.up[node] == up:
            return
        self.up[node] = up
        log.warning("node %s is %s", node, "back up" if up else "down: its names move")
        self._ring = HashRing(n for n, alive in self.up.items() if alive)
        self._routes.clear()

    def node_for(self, name: bytes) -> str | None:
        node = self._routes.get(name, "")
        if node == "":
            if len(self._routes) >= _ROUTE_CACHE_MAX:
                self._routes.clear()
            node = self._routes[name] = self._ring.node_for(name)
        return node

    def route(self, chunk: bytes) -> None:
        """Forward every line of `chunk` (newline separated) to its node."""
        batches: dict[str, list[bytes]] = {}
        for line in chunk.split(b"\n"):
            line = line.strip()
            if not line:
                continue
            name, sep, _ = line.partition(b":")
            if not sep or not name:
                self._stats.dropped["bad_line"] += 1
                continue
            if len(line) > DATAGRAM_MAX_BYTES:
                self._stats.dropped["line_too_long"] += 1
                continue
            node = self.node_for(name)
            if node is None:
                self._stats.dropped["no_live_node"] += 1
                continue
            batches.setdefault(node, []).append(line)
        for node, lines in batches.items():
            self._stats.relayed[node] += len(lines)
            for datagram in pack(lines):
                self._stats.datagrams += 1
                self._send(node, datagram)


def pack(lines: Sequence[bytes], limit: int = DATAGRAM_MAX_BYTES) -> list[bytes]:
    """Join lines with newlines into as few payloads of at most `limit` bytes as greedy
    packing gives; each line must fit on its own."""
    datagrams: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        grown = size + len(line) + (1 if current else 0)
        if current and grown > limit:
            datagrams.append(b"\n".join(current))
            current, grown = [], len(line)
        current.append(line)
        size = grown
    if current:
        datagrams.append(b"\n".join(current))
    return datagrams


class _UdpIn(asyncio.DatagramProtocol):
    def __init__(self, router: Router) -> None:
        self._router = router

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._router.route(data)


class _TcpIn(asyncio.Protocol):
    """Newline-framed lines; a partial line waits for the next read, up to MAX_LINE_BYTES."""

    def __init__(self, router: Router, stats: RelayStats) -> None:
        self._framer = LineFramer(router.route, self._drop_too_long)
        self._stats = stats

    def data_received(self, data: bytes) -> None:
        self._framer.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._framer.finish()

    def _drop_too_long(self, count: int) -> None:
        self._stats.dropped["line_too_long"] += count


class _UdpOut(asyncio.DatagramProtocol):
    def __init__(self, stats: RelayStats) -> None:
        self._stats = stats

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a node that went away: the health check will notice.
        self._stats.dropped["send_error"] += 1


class Relay:
    """The relay, running while in `async with`: UDP and TCP in on host:`port` (0: a free port
    each), UDP out, and a health check of every node every `check_interval_s` (a TCP connect
    to its StatsD port, which collectors also serve)."""

    def __init__(
        self,
        nodes: Sequence[str],
        host: str,
        port: int,
        *,
        check_interval_s: float = 2.0,
        check_timeout_s: float = 1.0,
    ) -> None:
        self.stats = RelayStats()
        self.router = Router(nodes, self._send, self.stats)
        self.registry = CollectorRegistry()
        self.registry.register(RelayCollector(self.stats, self.router.up))
        self.host = host
        self.port = port
        self.udp_port = 0
        self.tcp_port = 0
        self._targets = {node: parse_address(node) for node in nodes}
        self._resolved: dict[str, tuple[str, int]] = {}
        self._check_interval_s = check_interval_s
        self._check_timeout_s = check_timeout_s
        self._out: asyncio.DatagramTransport | None = None
        self._running = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        """Listen, after a first health check; what was started is stopped again if a later
        step fails."""
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:
            await self.check_all()
            self._out, _ = await loop.create_datagram_endpoint(
                lambda: _UdpOut(self.stats), family=socket.AF_INET
            )
            stack.callback(self._out.close)
            udp_in, _ = await loop.create_datagram_endpoint(
                lambda: _UdpIn(self.router), local_addr=(self.host, self.port)
            )
            stack.callback(udp_in.close)
            tcp_in = await loop.create_server(
                lambda: _TcpIn(self.router, self.stats), self.host, self.port
            )
            await stack.enter_async_context(tcp_in)
            self.udp_port = udp_in.get_extra_info("sockname")[1]
            self.tcp_port = tcp_in.sockets[0].getsockname()[1]
            await stack.enter_async_context(background(self._check_forever()))
            self._running = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop checking, stop listening, then stop sending."""
        await self._running.aclose()

    def _send(self, node: str, datagram: bytes) -> None:
        address = self._resolved.get(node)
        if self._out is None or address is None:
            self.stats.dropped["unresolved"] += 1
            return
        self._out.sendto(datagram, address)

    async def check(self, node: str) -> bool:
        """Whether `node` accepts a TCP connection now; remembers its resolved address."""
        host, port = self._targets[node]
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self._check_timeout_s
            )
        except (OSError, TimeoutError):
            return False
        peer = writer.get_extra_info("peername")
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self._resolved[node] = (peer[0], peer[1])
        return True

    async def check_all(self) -> None:
        nodes = list(self._targets)
        results = await asyncio.gather(*(self.check(node) for node in nodes))
        for node, up in zip(nodes, results, strict=True):
            self.router.set_up(node, up)

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval_s)
            await self.check_all()
