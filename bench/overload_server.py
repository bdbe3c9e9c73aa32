"""The overload benchmark's server (`shipboard run`, stopped by PID) and its probes."""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from bench.procs import HOST, SERVER_CPU, Server, free_port, http_get, http_ok, pinned
from bench.servers import FLUSH_INTERVAL_S, SHIPBOARD

MAX_SECONDS = 150.0  # no sender or probe runs longer than this, whatever it is asked
QUERY_EVERY_S = 0.02
PROBE_EVERY_S = 0.05


@contextmanager
def shipboard(workdir: Path, *extra: str) -> Iterator[Server]:
    """`shipboard run` with the benchmarks' flags (as `bench.servers.shipboard`) plus `extra`,
    stopped by PID however the block ends."""
    workdir.mkdir(parents=True)
    ports = {name: free_port() for name in ("http", "statsd", "graphite")}
    argv = [
        str(SHIPBOARD), "run", "--data-dir", str(workdir / "data"),
        "--http-port", str(ports["http"]), "--statsd-port", str(ports["statsd"]),
        "--graphite-port", str(ports["graphite"]), "--dash-port", "0", "--anonymous-read",
        "--no-agent", "--flush-interval", str(FLUSH_INTERVAL_S), *extra,
    ]  # fmt: skip
    server = Server("shipboard", pinned(argv, SERVER_CPU), workdir, ports)
    try:
        server.start()
        server.wait_until(lambda: http_ok(f"http://{HOST}:{ports['http']}/healthz"), timeout_s=60)
        yield server
    finally:
        server.stop()


def base_url(server: Server) -> str:
    return f"http://{HOST}:{server.ports['http']}"


def metric_values(server: Server, name: str) -> dict[str, float]:
    """Every sample of `name` on `/metrics`, by its label text (`protocol="influx",...`)."""
    text = http_get(f"{base_url(server)}/metrics").decode()
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})?\s+(\S+)$", re.M)
    return {labels: float(value) for labels, value in pattern.findall(text)}


def counted(server: Server, name: str, labels: str = "") -> int:
    return int(metric_values(server, name).get(labels, 0.0))


# --- probes that run beside the load, in this process ---------------------------------------


@dataclass
class Timings:
    """Latencies of requests made every `every_s` while the load runs, and what went wrong."""

    ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.ms)
        return {
            "requests": len(ordered),
            "p50_ms": quantile(ordered, 0.50),
            "p99_ms": quantile(ordered, 0.99),
            "max_ms": ordered[-1] if ordered else None,
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
        }


def quantile(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Sampling:
    """A thread that runs `_run` while in `with` (it stops at `_stop`, or after MAX_SECONDS)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(MAX_SECONDS)


class Probe(_Sampling):
    """GETs `paths` in turn over one keep-alive connection every `every_s`, in a thread, until
    stopped (at most `MAX_SECONDS`); a request that fails is an error and a new connection."""

    def __init__(self, server: Server, paths: Sequence[str], every_s: float) -> None:
        self._port = server.ports["http"]
        self._paths = paths
        self._every_s = every_s
        self.timings = Timings()
        super().__init__()

    def _run(self) -> None:
        conn = http.client.HTTPConnection(HOST, self._port, timeout=30)
        deadline = time.monotonic() + MAX_SECONDS
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            path = self._paths[i % len(self._paths)]
            i += 1
            started = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                elapsed_ms = (time.perf_counter() - started) * 1000
                if response.status == 200:
                    self.timings.ms.append(elapsed_ms)
                else:
                    self.timings.errors.append(f"{response.status} {body[:120]!r}")
            except (OSError, http.client.HTTPException) as error:
                self.timings.errors.append(repr(error))
                conn.close()
                conn = http.client.HTTPConnection(HOST, self._port, timeout=30)
            self._stop.wait(self._every_s)
        conn.close()


class RssPeak(_Sampling):
    """The server's resident memory, sampled every `every_s` in a thread: peak and last."""

    def __init__(self, server: Server, every_s: float = 0.25) -> None:
        self._server = server
        self._every_s = every_s
        self.peak = self.last = server.rss_bytes()
        self.every_10_s: list[int] = []  # the samples 10 s apart, to see it level off
        super().__init__()

    def _run(self) -> None:
        started = time.monotonic()
        deadline = started + MAX_SECONDS
        while not self._stop.wait(self._every_s) and time.monotonic() < deadline:
            self.last = self._server.rss_bytes()
            self.peak = max(self.peak, self.last)
            if time.monotonic() - started >= 10 * (len(self.every_10_s) + 1):
                self.every_10_s.append(self.last)


def mib(size: int) -> float:
    return round(size / 2**20, 1)
