"""The harness's own pure parts: payload builders and the whisper reader (`pytest bench`)."""

from __future__ import annotations

import struct

from cramjam import snappy
from hypothesis import given
from hypothesis import strategies as st

from bench.payloads import (
    FleetBodies,
    LineBodies,
    RemoteWriteBodies,
    StampedBodies,
    graphite_chunks,
    statsd_packets,
)
from bench.servers import read_whisper
from collector.prompb import WriteRequest


def test_statsd_packets_hold_every_name_once_within_the_size() -> None:
    packets, metrics = statsd_packets(3000)
    lines = [line for packet in packets for line in packet.split(b"\n")]
    assert metrics == len(lines) == len(set(lines)) == 3000
    assert max(len(packet) for packet in packets) <= 1400
    assert 35 <= metrics / len(packets) <= 45  # "about 40 metrics in about 1,400 bytes"
    kinds = {line.rsplit(b"|", 1)[1] for line in lines}
    assert kinds == {b"c", b"ms", b"g"}


def test_graphite_chunks_are_whole_lines() -> None:
    chunks, count = graphite_chunks(3000, 1_700_000_000, chunk_bytes=4096)
    assert all(chunk.endswith(b"\n") and len(chunk) <= 4096 for chunk in chunks)
    lines = b"".join(chunks).splitlines()
    assert len(lines) == count == 3000
    assert all(line.endswith(b" 1700000000") for line in lines)


@given(
    hosts=st.integers(1, 50),
    lines_per_body=st.integers(1, 200),
    ticks=st.integers(0, 60),
)
def test_line_bodies_cover_each_host_and_time_once_before_the_end(
    hosts: int, lines_per_body: int, ticks: int
) -> None:
    start_s, step_s = 1_000, 10
    bodies = LineBodies(hosts, lines_per_body, start_s, start_s + ticks * step_s, step_s)
    keys = []
    for index in range(bodies.count):
        body = bodies.body(index)
        assert 0 < len(body.splitlines()) <= lines_per_body
        for line in body.splitlines():
            series, _field, ts = line.split(b" ")
            keys.append((series, int(ts)))
    assert len(keys) == len(set(keys)) == hosts * ticks
    assert all(start_s <= ts < start_s + ticks * step_s for _, ts in keys)


def test_stamped_bodies_advance_time_after_every_block() -> None:
    bodies = StampedBodies(hosts=10, lines_per_body=5, start_s=100, step_s=10)
    first, second, third = (bodies.body(i).splitlines() for i in range(3))
    assert len(first) == len(second) == 5
    assert {line.split()[-1] for line in first + second} == {b"100"}
    assert {line.split()[-1] for line in third} == {b"110"}
    assert first[0].startswith(b"mem,host=m000000 ")
    assert third[0] == first[0][:-3] + b"110"


@given(st.lists(st.tuples(st.integers(1, 2**32 - 1), st.floats(allow_nan=False)), max_size=20))
def test_read_whisper_returns_the_written_points_of_the_first_archive(
    points: list[tuple[int, float]],
) -> None:
    slots = len(points) + 3  # unwritten slots (timestamp 0) are skipped
    header = struct.pack("!2LfL", 1, slots, 0.5, 1)
    offset = len(header) + 12
    archive = struct.pack("!3L", offset, 1, slots)
    data = b"".join(struct.pack("!Ld", ts, value) for ts, value in points)
    data += struct.pack("!Ld", 0, 0.0) * 3
    assert read_whisper(header + archive + data) == points


def test_remote_write_bodies_are_the_write_requests_they_say() -> None:
    bodies = RemoteWriteBodies(series=40, samples_per_body=20, start_ms=1_700_000_000_000)
    for index in range(5):
        request = WriteRequest.FromString(bytes(snappy.decompress_raw(bodies.body(index))))
        block, tick = index % 2, index // 2
        hosts = range(block * 20, block * 20 + 20)
        assert [
            (
                {label.name: label.value for label in ts.labels},
                [(s.value, s.timestamp) for s in ts.samples],
            )
            for ts in request.timeseries
        ] == [
            (
                {
                    "__name__": f"bench_metric_{h % 10}",
                    "instance": f"host{h // 10:05d}:9100",
                    "job": "node",
                },
                [(h % 1000 + 0.25, 1_700_000_000_000 + tick * 10_000)],
            )
            for h in hosts
        ]


@given(
    blocks=st.integers(1, 6),
    lines_per_body=st.integers(1, 50),
    ts_s=st.integers(0, 2**32),
)
def test_fleet_bodies_give_every_host_its_own_series_once(
    blocks: int, lines_per_body: int, ts_s: int
) -> None:
    series = blocks * lines_per_body
    first, second = (FleetBodies(series, lines_per_body, ts_s + 10 * p, p) for p in (0, 1))
    assert first.count == second.count == blocks
    lines = [
        [line.split(b" ") for i in range(b.count) for line in b.body(i).splitlines()]
        for b in (first, second)
    ]
    for bodies, parsed in zip((first, second), lines, strict=True):
        assert [key for key, _, _ in parsed] == [b"card,host=h%07d" % h for h in range(series)]
        assert {ts for _, _, ts in parsed} == {b"%d" % bodies.ts_s}
        assert [float(v.removeprefix(b"v=")) for _, v, _ in parsed] == [
            bodies.value(h) for h in range(series)
        ]
        assert all(0 <= bodies.value(h) < 1000 for h in range(series))
    # The second point's bodies are the first's but for value and time.
    assert [k for k, _, _ in lines[0]] == [k for k, _, _ in lines[1]]


def test_fleet_values_differ_between_hosts_and_points() -> None:
    first, second = (FleetBodies(100_000, 5000, 1_700_000_000, p) for p in (0, 1))
    values = [first.value(h) for h in range(100_000)]
    assert len(set(values)) > 60_000  # spread, not a handful repeated
    assert all(first.value(h) != second.value(h) for h in range(1000))
    assert first.body(3).splitlines()[0] == b"card,host=h0015000 v=%.2f 1700000000" % values[15000]
