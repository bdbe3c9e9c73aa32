"""The bytes the load generators send: StatsD packets, Graphite chunks, line-protocol and
Prometheus remote-write bodies."""

from __future__ import annotations

import math
import struct

from cramjam import snappy

from tests.collector.prompb_wire import nested, varint

# Metric names look like an application's: a few services, many endpoints.
_KINDS = (("requests", "c"), ("latency", "ms"), ("queue", "g"))


def statsd_lines(names: int) -> list[bytes]:
    """One StatsD line per name, a third each counters, timers and gauges, ~35 bytes each."""
    lines = []
    for i in range(names):
        suffix, kind = _KINDS[i % len(_KINDS)]
        value = 1 if kind == "c" else (i * 7919) % 1000
        lines.append(f"shipbench.s{i % 16:02d}.ep{i:05d}.{suffix}:{value}|{kind}".encode())
    return lines


def statsd_packets(names: int, max_bytes: int = 1400) -> tuple[list[bytes], int]:
    """Multi-metric packets (newline separated, at most `max_bytes`) covering every name once.

    Returns the packets and how many metrics they hold in all."""
    packets: list[bytes] = []
    current: list[bytes] = []
    size = 0
    lines = statsd_lines(names)
    for line in lines:
        if current and size + 1 + len(line) > max_bytes:
            packets.append(b"\n".join(current))
            current, size = [], 0
        size += len(line) + (1 if current else 0)
        current.append(line)
    if current:
        packets.append(b"\n".join(current))
    return packets, len(lines)


def graphite_chunks(names: int, ts_s: int, chunk_bytes: int = 65536) -> tuple[list[bytes], int]:
    """Plaintext lines `path value ts` for every name, cut into chunks of whole lines.

    Returns the chunks and how many lines they hold in all."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for i in range(names):
        line = f"shipbench.host{i % 50:02d}.disk_{i:05d}.used {i % 977}.5 {ts_s}\n".encode()
        if size + len(line) > chunk_bytes:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        chunks.append(b"".join(current))
    return chunks, names


class LineBodies:
    """Line-protocol bodies `cpu,host=hN usage=V TS` every `step_s` from `start_s` until `end_s`.

    Lines go time by time, every host at each time; body i holds lines [i*L, (i+1)*L), so no two
    lines share (series, time) and nothing lies at or after `end_s`."""

    def __init__(self, hosts: int, lines_per_body: int, start_s: int, end_s: int,
                 step_s: int = 10) -> None:  # fmt: skip
        self.hosts = hosts
        self.lines_per_body = lines_per_body
        self.start_s = start_s
        self.step_s = step_s
        ticks = max(0, (end_s - start_s + step_s - 1) // step_s)
        self.total_lines = ticks * hosts
        self._prefixes = [f"cpu,host=h{h:06d} usage=".encode() for h in range(hosts)]

    @property
    def count(self) -> int:
        """How many bodies hold every line."""
        return math.ceil(self.total_lines / self.lines_per_body)

    def body(self, index: int) -> bytes:
        first = index * self.lines_per_body
        parts = []
        for n in range(first, min(first + self.lines_per_body, self.total_lines)):
            host, tick = n % self.hosts, n // self.hosts
            value = 50.0 + 40.0 * math.sin(tick / 360.0 + host)
            parts.append(
                b"%s%.2f %d\n" % (self._prefixes[host], value, self.start_s + tick * self.step_s)
            )
        return b"".join(parts)


class StampedBodies:
    """Fast line-protocol bodies for write throughput: hosts in blocks of `lines_per_body`.

    Body i carries one block of hosts at one time; the time advances by `step_s` each time every
    block has been sent. Only the timestamp is formatted per body, so a sender on one core keeps
    up with any server here."""

    def __init__(self, hosts: int, lines_per_body: int, start_s: int, step_s: int = 10) -> None:
        if hosts % lines_per_body:
            raise ValueError("hosts must be a multiple of lines per body")
        self.blocks = [
            [f"mem,host=m{h:06d} used={h % 1000}.25".encode() for h in range(b, b + lines_per_body)]
            for b in range(0, hosts, lines_per_body)
        ]
        self.start_s = start_s
        self.step_s = step_s

    def body(self, index: int) -> bytes:
        block = self.blocks[index % len(self.blocks)]
        sep = b" %d\n" % (self.start_s + (index // len(self.blocks)) * self.step_s)
        return sep.join(block) + sep


class RemoteWriteBodies:
    """Prometheus remote-write bodies (snappy-compressed `WriteRequest`s) as a Prometheus server
    sends them: one sample per series, `samples_per_body` series per body, series in blocks.

    Series h is `bench_metric_<h % 10>{instance="host<h // 10>:9100", job="node"}`. Body i
    carries one block at one time, the time advancing by `step_ms` each time every block was
    sent. Each series' protobuf bytes up to its timestamp are built once, and the timestamp
    (a varint of the same length for every series of a body) is what joins them."""

    def __init__(self, series: int, samples_per_body: int, start_ms: int, step_ms: int = 10_000):
        if series % samples_per_body:
            raise ValueError("series must be a multiple of samples per body")
        self.start_ms = start_ms
        self.step_ms = step_ms
        width = len(varint(start_ms))
        self.blocks = [
            [self._head(h, width) for h in range(b, b + samples_per_body)]
            for b in range(0, series, samples_per_body)
        ]

    @staticmethod
    def _head(h: int, ts_width: int) -> bytes:
        labels = (("__name__", f"bench_metric_{h % 10}"), ("instance", f"host{h // 10:05d}:9100"),
                  ("job", "node"))  # fmt: skip
        label_bytes = b"".join(
            nested(1, nested(1, name.encode()) + nested(2, value.encode()))
            for name, value in labels
        )
        # Sample: value (1, double) then timestamp (2, varint) last, so the time ends it.
        sample = b"\x09" + struct.pack("<d", h % 1000 + 0.25) + b"\x10"
        sample_field = b"\x12" + varint(len(sample) + ts_width) + sample
        series = label_bytes + sample_field
        return b"\x0a" + varint(len(series) + ts_width) + series

    def encoded(self, index: int) -> bytes:
        """Body `index` before compression."""
        block = self.blocks[index % len(self.blocks)]
        ts_ms = self.start_ms + (index // len(self.blocks)) * self.step_ms
        stamp = varint(ts_ms)
        if len(stamp) != len(varint(self.start_ms)):
            raise ValueError("timestamps must keep the width of the first")
        return stamp.join(block) + stamp

    def body(self, index: int) -> bytes:
        return bytes(snappy.compress_raw(self.encoded(index)))


class FleetBodies:
    """A fleet of agents, every line its own series: `card,host=hNNNNNNN v=R TS` for `series`
    hosts in bodies of `lines_per_body`, all at one time `ts_s`.

    `point` 0 creates the series; point 1 sends a second point to each in the same bodies but
    for value and time. R is a pseudo-random 0.00-999.99 of (host, point), written with two
    decimals, so `value` is exactly what a server parses and an answer can be checked."""

    def __init__(self, series: int, lines_per_body: int, ts_s: int, point: int) -> None:
        if series % lines_per_body:
            raise ValueError("series must be a multiple of lines per body")
        if series > 10_000_000:
            raise ValueError("host names have seven digits")
        self.series = series
        self.lines_per_body = lines_per_body
        self.ts_s = ts_s
        self.point = point

    @property
    def count(self) -> int:
        return self.series // self.lines_per_body

    def hundredths(self, host: int) -> int:
        # Knuth's multiplicative hash spreads the values; the point shifts them.
        return ((host * 2_654_435_761) % 2**32 + self.point * 40_503) % 100_000

    def value(self, host: int) -> float:
        return self.hundredths(host) / 100

    def body(self, index: int) -> bytes:
        first = index * self.lines_per_body
        stamp = self.ts_s
        return b"".join(
            b"card,host=h%07d v=%d.%02d %d\n" % (host, *divmod(self.hundredths(host), 100), stamp)
            for host in range(first, first + self.lines_per_body)
        )
