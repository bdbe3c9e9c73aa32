"""StatsD relay: the hash ring, datagram packing, routing, health checks, and timers through a
real relay in front of three real collectors, one of them killed and brought back mid-run."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.relay import DATAGRAM_MAX_BYTES, HashRing, Relay, RelayStats, Router, pack
from tests.launcher import wait_for
from tests.running import RunningShipboard
from tests.running_relay import RunningRelay

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

NAMES = [f"app.timer.{i}".encode() for i in range(3000)]


def test_ring_spreads_names_over_every_node():
    ring = HashRing(["a:1", "b:1", "c:1"])
    shares = Counter(ring.node_for(name) for name in NAMES)
    assert set(shares) == {"a:1", "b:1", "c:1"}
    assert all(0.2 < count / len(NAMES) < 0.47 for count in shares.values()), shares


def test_removing_a_node_moves_only_its_names_and_adding_it_back_restores_them():
    full = HashRing(["a:1", "b:1", "c:1"])
    without_b = HashRing(["a:1", "c:1"])
    for name in NAMES:
        before = full.node_for(name)
        after = without_b.node_for(name)
        assert after in {"a:1", "c:1"}
        if before != "b:1":
            assert after == before
    assert HashRing(["c:1", "b:1", "a:1"]).node_for(b"x") == full.node_for(b"x")
    assert HashRing([]).node_for(b"x") is None


statsd_lines = st.builds(
    lambda name, value: f"{name}:{value}|ms".encode(),
    st.text("abcdefghij.", min_size=1, max_size=200),
    st.integers(0, 10**9),
)


@given(st.lists(statsd_lines, max_size=200))
def test_pack_keeps_every_line_in_order_in_datagrams_under_the_limit(lines: list[bytes]):
    datagrams = pack(lines)
    assert all(len(d) <= DATAGRAM_MAX_BYTES for d in datagrams)
    assert [line for d in datagrams for line in d.split(b"\n")] == lines
    # Greedy: the first line of each datagram did not fit in the one before.
    assert all(
        len(a) + 1 + len(b.split(b"\n")[0]) > DATAGRAM_MAX_BYTES
        for a, b in itertools.pairwise(datagrams)
    )


@given(st.binary(max_size=3000))
def test_router_takes_arbitrary_bytes_and_accounts_for_every_line(chunk: bytes):
    sent: list[tuple[str, bytes]] = []
    stats = RelayStats()
    router = Router(["a:1", "b:1"], lambda node, data: sent.append((node, data)), stats)
    router.route(chunk)
    lines = [line.strip() for line in chunk.split(b"\n") if line.strip()]
    assert sum(stats.relayed.values()) + sum(stats.dropped.values()) == len(lines)
    for node, datagram in sent:
        assert len(datagram) <= DATAGRAM_MAX_BYTES
        for line in datagram.split(b"\n"):
            assert router.node_for(line.partition(b":")[0]) == node


def test_router_drops_lines_with_no_live_node_and_sends_again_when_one_returns():
    sent: list[tuple[str, bytes]] = []
    stats = RelayStats()
    router = Router(["a:1"], lambda node, data: sent.append((node, data)), stats)
    router.set_up("a:1", False)
    router.route(b"x:1|c\nnot a line\n")
    assert stats.dropped == Counter({"no_live_node": 1, "bad_line": 1})
    router.set_up("a:1", True)
    router.route(b"x:1|c")
    assert sent == [("a:1", b"x:1|c")]


class _Node(asyncio.DatagramProtocol):
    """A real StatsD-like listener: UDP datagrams kept, a TCP port for the health check."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.datagrams.append(data)


async def _start_node() -> tuple[str, _Node, asyncio.DatagramTransport, asyncio.Server]:
    loop = asyncio.get_running_loop()
    node = _Node()
    udp, _ = await loop.create_datagram_endpoint(lambda: node, local_addr=("127.0.0.1", 0))
    port = udp.get_extra_info("sockname")[1]
    tcp = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    return f"127.0.0.1:{port}", node, udp, tcp


async def test_relay_batches_per_node_and_moves_a_dead_nodes_share():
    a_name, a, a_udp, a_tcp = await _start_node()
    b_name, b, b_udp, b_tcp = await _start_node()
    loop = asyncio.get_running_loop()
    try:
        async with Relay([a_name, b_name], "127.0.0.1", 0, check_interval_s=0.1) as relay:
            client, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=("127.0.0.1", relay.udp_port)
            )
            with contextlib.closing(client):
                lines = [b"svc.timer.%d:%d|ms" % (i, i) for i in range(400)]
                for start in range(0, len(lines), 50):  # 50 lines a datagram in, about 1.2 kB
                    client.sendto(b"\n".join(lines[start : start + 50]))
                await _until(
                    lambda: sum(len(d.split(b"\n")) for d in a.datagrams + b.datagrams) == 400
                )
                ring = HashRing([a_name, b_name])
                for name, node in ((a_name, a), (b_name, b)):
                    got = [line for d in node.datagrams for line in d.split(b"\n")]
                    assert got == [
                        line for line in lines if ring.node_for(line.split(b":")[0]) == name
                    ]
                    assert all(len(d) <= DATAGRAM_MAX_BYTES for d in node.datagrams)
                assert relay.stats.datagrams < 400 / 10  # many lines per datagram out

                b_tcp.close()
                b_udp.close()
                await _until(lambda: not relay.router.up[b_name])
                a.datagrams.clear()
                client.sendto(b"\n".join(lines[:50]))
                await _until(lambda: sum(len(d.split(b"\n")) for d in a.datagrams) == 50)
                assert relay.stats.relayed[a_name] + relay.stats.relayed[b_name] == 450
    finally:
        for server in (a_tcp, b_tcp):
            server.close()
        a_udp.close()


async def _until(predicate: object, timeout_s: float = 5.0) -> None:
    assert callable(predicate)
    deadline = loop_time() + timeout_s
    while not predicate():
        assert loop_time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def loop_time() -> float:
    return asyncio.get_running_loop().time()


# --- Through a real relay to real collectors --------------------------------------------------

VALUES_PER_NAME = 40  # p90, p95, p99 are then the 36th, 38th and 40th smallest values
NAMES_PER_PHASE = 30


@pytest.fixture
def collectors(tmp_path: Path) -> Iterator[list[RunningShipboard]]:
    nodes = [
        RunningShipboard(
            tmp_path / f"node{i}",
            [
                "--flush-interval",
                "0.5",
                "--idle-flushes",
                "0",
                "--no-agent",
                "--graphite-port",
                "0",
            ],
        ).start()
        for i in range(3)
    ]
    yield nodes
    for node in nodes:
        node.stop(signal.SIGKILL)


def _send_timers(relay: RunningRelay, phase: str, seed: int) -> dict[str, list[float]]:
    """Each name's values in one datagram (so one node and one flush take them all)."""
    rng = random.Random(seed)
    sent: dict[str, list[float]] = {}
    for i in range(NAMES_PER_PHASE):
        name = f"{phase}.t{i}"
        values = [float(rng.randrange(1, 10_000)) for _ in range(VALUES_PER_NAME)]
        relay.send(b"\n".join(f"{name}:{v:g}|ms".encode() for v in values))
        sent[name] = values
    return sent


def _timers_seen(node: RunningShipboard, phase: str) -> dict[str, dict[str, float]]:
    """name -> {count, p90, p95, p99, upper}, from every point the node holds for the phase."""
    seen: dict[str, dict[str, float]] = {}
    for field in ("count", "p90", "p95", "p99", "upper"):
        result = node.query(metric=f"{phase}.*.{field}", **{"from": "-10m", "step": "1s"})
        for series in result["series"]:
            points = [value for _, value in series["points"] if value is not None]
            name = series["metric"].rsplit(".", 1)[0]
            assert len(points) == 1, (name, field, points)  # one flush held every value
            seen.setdefault(name, {})[field] = points[0]
    return seen


def _check_phase(
    nodes: dict[str, RunningShipboard], phase: str, sent: dict[str, list[float]], ring: HashRing
) -> None:
    def complete() -> bool:
        return sum(len(_timers_seen(node, phase)) for node in nodes.values()) == len(sent)

    wait_for(complete, timeout_s=20)
    for address, node in nodes.items():
        for name, got in _timers_seen(node, phase).items():
            assert ring.node_for(name.encode()) == address, name
            ordered = sorted(sent[name])
            assert got == {
                "count": VALUES_PER_NAME,
                "p90": ordered[35],
                "p95": ordered[37],
                "p99": ordered[39],
                "upper": ordered[39],
            }, name


def test_timers_through_the_relay_keep_right_percentiles_when_a_node_dies_and_returns(
    tmp_path: Path, collectors: list[RunningShipboard]
):
    addresses = [f"127.0.0.1:{node.statsd_port}" for node in collectors]
    by_address = dict(zip(addresses, collectors, strict=True))
    relay = RunningRelay(tmp_path / "relay.log", addresses).start()
    try:
        ring = HashRing(addresses)
        _check_phase(by_address, "before", _send_timers(relay, "before", 1), ring)

        dead = addresses[1]
        collectors[1].stop(signal.SIGKILL)
        wait_for(lambda: not relay.node_up(dead), timeout_s=10)
        live = {a: n for a, n in by_address.items() if a != dead}
        sent = _send_timers(relay, "while_down", 2)
        assert any(HashRing(addresses).node_for(name.encode()) == dead for name in sent)
        _check_phase(live, "while_down", sent, HashRing(live))

        collectors[1].start()  # same data dir and ports
        wait_for(lambda: relay.node_up(dead), timeout_s=10)
        _check_phase(by_address, "after", _send_timers(relay, "after", 3), ring)

        samples = relay.metrics()
        relayed = sum(s.value for s in samples if s.name == "shipboard_relay_relayed_total")
        assert relayed == 3 * NAMES_PER_PHASE * VALUES_PER_NAME
        datagrams = [s.value for s in samples if s.name == "shipboard_relay_datagrams_total"]
        assert datagrams == [3 * NAMES_PER_PHASE]
    finally:
        assert relay.stop() == 0
