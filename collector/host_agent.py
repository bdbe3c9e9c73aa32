"""The host agent: CPU, memory, load, disk and network of this host, sampled with psutil.

`HostSampler.sample()` is synchronous (psutil reads /proc): run it in a thread from async code.
Rates (disk and network bytes per second) are computed between two samples, so the first sample
has none.
"""

from __future__ import annotations

import os
import socket
import time

import psutil

from storage.influx_codec import key_text, line_prefix
from storage.records import Samples, Series

_NET_SKIP = ("lo",)


class HostSampler:
    """Samples this host into `Samples` tagged with `host`."""

    def __init__(self, host: str | None = None, disk_paths: tuple[str, ...] = ("/",)) -> None:
        self.host = host or socket.gethostname()
        self._disk_paths = disk_paths
        self._last_ns: int | None = None
        self._last_disk: tuple[int, int] | None = None
        self._last_net: dict[str, tuple[int, int]] = {}
        psutil.cpu_times_percent(None)  # primes the CPU counters: the next call covers the gap

    def sample(self, now_ns: int | None = None) -> Samples:
        now_ns = time.time_ns() if now_ns is None else now_ns
        points: list[tuple[Series, int, float]] = []

        def add(metric: str, value: float, **tags: str) -> None:
            points.append((Series.of(metric, {"host": self.host, **tags}), now_ns, float(value)))

        cpu = psutil.cpu_times_percent(None)
        for field in ("user", "system", "iowait", "idle"):
            add(f"cpu.{field}", getattr(cpu, field, 0.0))
        memory = psutil.virtual_memory()
        add("mem.used", memory.used)
        add("mem.available", memory.available)
        add("mem.percent", memory.percent)
        for minutes, load in zip((1, 5, 15), os.getloadavg(), strict=True):
            add(f"load.{minutes}m", load)
        for path in self._disk_paths:
            usage = psutil.disk_usage(path)
            add("disk.used_percent", usage.percent, path=path)
            add("disk.free", usage.free, path=path)

        elapsed_s = (now_ns - self._last_ns) / 1e9 if self._last_ns is not None else 0.0
        io = psutil.disk_io_counters()
        if io is not None:
            current = (io.read_bytes, io.write_bytes)
            if self._last_disk is not None and elapsed_s > 0:
                add("disk.read_bytes_per_s", (current[0] - self._last_disk[0]) / elapsed_s)
                add("disk.write_bytes_per_s", (current[1] - self._last_disk[1]) / elapsed_s)
            self._last_disk = current
        for interface, counters in psutil.net_io_counters(pernic=True).items():
            if interface in _NET_SKIP:
                continue
            current = (counters.bytes_recv, counters.bytes_sent)
            previous = self._last_net.get(interface)
            if previous is not None and elapsed_s > 0:
                recv = (current[0] - previous[0]) / elapsed_s
                add("net.recv_bytes_per_s", recv, interface=interface)
                add(
                    "net.sent_bytes_per_s",
                    (current[1] - previous[1]) / elapsed_s,
                    interface=interface,
                )
            self._last_net[interface] = current
        self._last_ns = now_ns
        return Samples.from_points(points)


def to_line_protocol(samples: Samples) -> bytes:
    """Samples as InfluxDB line protocol: metric `a.b` becomes measurement `a`, field `b`."""
    lines = []
    for series, ts_ns, value in samples.points():
        measurement, _, field = series.metric.rpartition(".")
        if not measurement:
            measurement, field = series.metric, "value"
        lines.append(f"{line_prefix(series, measurement)} {key_text(field)}={value!r} {ts_ns}")
    return ("\n".join(lines) + "\n").encode()
