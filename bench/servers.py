"""How to start Shipboard and each peer in a temporary directory, and read what each accepted."""

from __future__ import annotations

import json
import pickle
import re
import socket
import struct
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench.procs import HOST, SERVER_CPU, Server, free_port, http_get, http_ok, pinned, tcp_open
from tests.backends import influxd_config

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
ETSY_STATSD = BENCH / ".peers" / "node_modules" / "statsd" / "stats.js"
SHIPBOARD = REPO / ".venv" / "bin" / "shipboard"
FLUSH_INTERVAL_S = 1  # both StatsD servers flush every second during the benchmarks
DB = "bench"


def shipboard(workdir: Path, extra_args: Sequence[str] = ()) -> Server:
    # The metric path only: no dashboards process (--dash-port 0); queries need no token.
    ports = {name: free_port() for name in ("http", "statsd", "graphite")}
    argv = [
        str(SHIPBOARD), "run", "--data-dir", str(workdir / "data"),
        "--http-port", str(ports["http"]), "--statsd-port", str(ports["statsd"]),
        "--graphite-port", str(ports["graphite"]), "--dash-port", "0", "--anonymous-read",
        "--no-agent", "--flush-interval", str(FLUSH_INTERVAL_S), *extra_args,
    ]  # fmt: skip
    server = Server("shipboard", pinned(argv, SERVER_CPU), workdir, ports)
    server.start()
    server.wait_until(lambda: http_ok(f"http://{HOST}:{ports['http']}/healthz"), timeout_s=60)
    return server


def etsy_statsd(workdir: Path) -> Server:
    ports = {"statsd": free_port(), "mgmt": free_port()}
    config = {
        "address": HOST,
        "port": ports["statsd"],
        "mgmt_address": HOST,
        "mgmt_port": ports["mgmt"],
        "flushInterval": FLUSH_INTERVAL_S * 1000,
        "percentThreshold": [90, 95, 99],
        "backends": [str(BENCH / "statsd_count_backend.js")],
    }
    config_path = workdir / "statsd-config.js"
    config_path.write_text(f"({json.dumps(config, indent=2)})\n")
    argv = ["node", str(ETSY_STATSD), str(config_path)]
    server = Server("etsy-statsd", pinned(argv, SERVER_CPU), workdir, ports)
    server.start()
    server.wait_until(lambda: tcp_open(ports["mgmt"]))
    # The count backend sees statsd's live counters from the first flush on.
    time.sleep(FLUSH_INTERVAL_S * 1.5)
    return server


def carbon_cache(workdir: Path) -> Server:
    ports = {"graphite": free_port(), "pickle": free_port(), "query": free_port()}
    storage = workdir / "storage"
    (storage / "whisper").mkdir(parents=True)
    (workdir / "log").mkdir()
    # Debian's shipped settings, except paths, ports, self-metrics every second, and no tag
    # database or per-update logging (no graphite-web here to take tags; logs would slow it).
    (workdir / "carbon.conf").write_text(
        f"""[cache]
STORAGE_DIR = {storage}/
LOCAL_DATA_DIR = {storage}/whisper/
WHITELISTS_DIR = {storage}/lists/
CONF_DIR = {workdir}/
LOG_DIR = {workdir}/log/
PID_DIR = {workdir}/
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 500
MAX_CREATES_PER_MINUTE = 50
LINE_RECEIVER_INTERFACE = {HOST}
LINE_RECEIVER_PORT = {ports["graphite"]}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = {HOST}
PICKLE_RECEIVER_PORT = {ports["pickle"]}
CACHE_QUERY_INTERFACE = {HOST}
CACHE_QUERY_PORT = {ports["query"]}
USE_FLOW_CONTROL = True
CACHE_WRITE_STRATEGY = sorted
WHISPER_AUTOFLUSH = False
CARBON_METRIC_INTERVAL = 1
ENABLE_TAGS = False
LOG_UPDATES = False
LOG_CREATES = False
LOG_CACHE_HITS = False
LOG_LISTENER_CONNECTIONS = False
"""
    )
    (workdir / "storage-schemas.conf").write_text(
        "[carbon]\npattern = ^carbon\\.\nretentions = 1s:1d\n\n"
        "[default]\npattern = .*\nretentions = 10s:1d,5m:30d,1h:3y\n"
    )
    argv = ["carbon-cache", f"--config={workdir / 'carbon.conf'}", "--nodaemon", "start"]
    server = Server("carbon-cache", pinned(argv, SERVER_CPU), workdir, ports)
    server.extra["self_metric"] = (
        f"carbon.agents.{socket.gethostname().replace('.', '_')}-a.metricsReceived"
    )
    server.start()
    server.wait_until(lambda: tcp_open(ports["graphite"]) and tcp_open(ports["query"]))
    return server


def influxd(workdir: Path) -> Server:
    ports = {"http": free_port(), "rpc": free_port()}
    (workdir / "influxdb.conf").write_text(
        influxd_config(workdir, HOST, ports["http"], ports["rpc"])
    )
    argv = ["influxd", "run", "-config", str(workdir / "influxdb.conf")]
    server = Server("influxd", pinned(argv, SERVER_CPU), workdir, ports)
    server.start()
    server.wait_until(lambda: http_ok(f"http://{HOST}:{ports['http']}/ping"))
    query = urllib.parse.urlencode({"q": f"CREATE DATABASE {DB}"})
    http_get(f"http://{HOST}:{ports['http']}/query?{query}")
    return server


def victoria_metrics(workdir: Path) -> Server:
    # Debian's victoria-metrics with its defaults but for paths, the address, a retention that
    # keeps the benchmarks' week-old samples, and for queries no response cache (a repeated
    # query must be answered, not replayed) and no latency offset (the last 30 s are shown,
    # as Shipboard shows them).
    ports = {"http": free_port()}
    argv = ["victoria-metrics", f"-storageDataPath={workdir / 'data'}",
            f"-httpListenAddr={HOST}:{ports['http']}", "-retentionPeriod=1y",
            "-search.disableCache", "-search.latencyOffset=0s"]  # fmt: skip
    server = Server("victoria-metrics", pinned(argv, SERVER_CPU), workdir, ports)
    server.start()
    server.wait_until(lambda: http_ok(f"http://{HOST}:{ports['http']}/health"))
    return server


STARTERS = {
    "shipboard": shipboard,
    "etsy-statsd": etsy_statsd,
    "carbon-cache": carbon_cache,
    "influxd": influxd,
    "victoria-metrics": victoria_metrics,
}


@contextmanager
def running(name: str, workdir: Path, shipboard_args: Sequence[str] = ()) -> Iterator[Server]:
    """The named server, started in its own directory and stopped by PID however the block ends;
    `shipboard_args` go to Shipboard's command line when it is the one started."""
    home = workdir / name
    home.mkdir(parents=True)
    server: Server | None = None
    try:
        server = shipboard(home, shipboard_args) if name == "shipboard" else STARTERS[name](home)
        yield server
    finally:
        if server is not None:
            server.stop()


def write_url(server: Server) -> str:
    """Where line protocol goes; Shipboard's v2 endpoint answers once the points are durable."""
    base = f"http://{HOST}:{server.ports['http']}"
    if server.name == "shipboard":
        return f"{base}/api/v2/write?bucket={DB}&org={DB}&precision=s"
    return f"{base}/write?db={DB}&precision=s"


def metrics_url(server: Server) -> str:
    """Where Shipboard and VictoriaMetrics show their own counters."""
    return f"http://{HOST}:{server.ports['http']}/metrics"


def remote_write_url(server: Server) -> str:
    """Where Prometheus remote write goes: `/api/v1/write` on both Shipboard and VictoriaMetrics."""
    return f"http://{HOST}:{server.ports['http']}/api/v1/write"


# --- what each server says it accepted ------------------------------------------------------

_PROM_LINE = re.compile(r'^shipboard_received_total\{protocol="(\w+)"\}\s+([0-9.e+]+)', re.M)


_LAG_LINE = re.compile(r"^shipboard_rollup_lag_(\w+)_seconds\s+([0-9.e+-]+)", re.M)
_DIRTY_LINE = re.compile(r"^shipboard_rollup_dirty_(\w+)_buckets\s+([0-9.e+-]+)", re.M)


def rollup_lags_s(server: Server) -> dict[str, float]:
    """How far behind now each of Shipboard's rollup tiers is, from its /metrics."""
    text = http_get(f"http://{HOST}:{server.ports['http']}/metrics").decode()
    return {tier: float(value) for tier, value in _LAG_LINE.findall(text)}


def rollup_dirty(server: Server) -> dict[str, float]:
    """Buckets of each of Shipboard's rollup tiers still to be rolled up again (late points)."""
    text = http_get(f"http://{HOST}:{server.ports['http']}/metrics").decode()
    return {tier: float(value) for tier, value in _DIRTY_LINE.findall(text)}


def received(server: Server, protocol: str) -> int:
    """Metrics (StatsD), lines (Graphite) or points (Influx) the server counted as accepted."""
    if server.name == "shipboard":
        text = http_get(f"http://{HOST}:{server.ports['http']}/metrics").decode()
        counts = {name: float(value) for name, value in _PROM_LINE.findall(text)}
        return int(counts.get(protocol, 0))
    if server.name == "etsy-statsd":
        return _etsy_received(server.ports["mgmt"])
    if server.name == "carbon-cache":
        return carbon_received(server)
    raise ValueError(f"{server.name} does not count {protocol}")


def _etsy_received(mgmt_port: int) -> int:
    with socket.create_connection((HOST, mgmt_port), timeout=5) as sock:
        sock.sendall(b"stats\n")
        reply = b""
        while b"END" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    match = re.search(rb"benchcount\.metrics_received: (\d+)", reply)
    if match is None:
        raise RuntimeError(f"statsd management port gave no count: {reply[:200]!r}")
    return int(match[1])


def carbon_received(server: Server) -> int:
    """Sum of carbon's `metricsReceived` self-metric: whisper file plus what is still cached."""
    name = server.extra["self_metric"]
    points = _carbon_cached(server.ports["query"], name)
    path = server.workdir / "storage" / "whisper" / (name.replace(".", "/") + ".wsp")
    if path.exists():
        for ts, value in read_whisper(path.read_bytes()):
            points.setdefault(ts, value)
    return round(sum(points.values()))


def _carbon_cached(port: int, metric: str) -> dict[int, float]:
    request = pickle.dumps({"type": "cache-query", "metric": metric}, protocol=2)
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(struct.pack("!L", len(request)) + request)
        size = struct.unpack("!L", _recv_exactly(sock, 4))[0]
        # The reply comes from the carbon-cache this harness started on 127.0.0.1.
        reply = pickle.loads(_recv_exactly(sock, size))
    return {int(ts): float(value) for ts, value in reply.get("datapoints", [])}


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("carbon closed the cache-query connection")
        data += chunk
    return data


_WHISPER_HEADER = struct.Struct("!2LfL")
_WHISPER_ARCHIVE = struct.Struct("!3L")
_WHISPER_POINT = struct.Struct("!Ld")


def read_whisper(data: bytes) -> list[tuple[int, float]]:
    """The written points of a whisper file's finest archive, as (ts_s, value)."""
    archive_count = _WHISPER_HEADER.unpack_from(data, 0)[3]
    if archive_count == 0:
        return []
    offset, _seconds_per_point, count = _WHISPER_ARCHIVE.unpack_from(data, _WHISPER_HEADER.size)
    points = []
    for i in range(count):
        ts, value = _WHISPER_POINT.unpack_from(data, offset + i * _WHISPER_POINT.size)
        if ts:
            points.append((ts, value))
    return points
