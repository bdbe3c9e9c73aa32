"""End to end over real sockets against a real `shipboard run`: every protocol in, the API out."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.launcher import wait_for
from tests.running import SHIPBOARD, RunningShipboard

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningShipboard]:
    running = RunningShipboard(
        tmp_path_factory.mktemp("e2e") / "data",
        ["--flush-interval", "1", "--no-agent", "--max-body", "200000"],
    ).start()
    yield running
    assert running.stop() == 0, running.output()


def points_of(server: RunningShipboard, metric: str, **params: str) -> list[list[float]]:
    result = server.query(metric=metric, **{"from": "-10m", **params})
    series = result["series"]
    assert isinstance(series, list)
    if not series:
        return []
    assert len(series) == 1, series
    points: list[list[float]] = series[0]["points"]
    return points


def values_of(server: RunningShipboard, metric: str, **params: str) -> list[float]:
    return [value for _, value in points_of(server, metric, **params)]


def send_udp(port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, ("127.0.0.1", port))


def test_statsd_udp_counter_timer_gauge_set_are_aggregated_per_flush(server: RunningShipboard):
    send_udp(
        server.statsd_port,
        b"e2e.hits:3|c\ne2e.hits:1|c|@0.5\ne2e.lat:10|ms\ne2e.lat:30|ms\n"
        b"e2e.temp:20|g\ne2e.temp:+5|g\ne2e.users:alice|s\ne2e.users:bob|s\ne2e.users:alice|s",
    )
    wait_for(lambda: values_of(server, "e2e.hits.count", agg="sum", step="1h"))
    assert values_of(server, "e2e.hits.count", agg="sum", step="1h") == [5.0]
    assert values_of(server, "e2e.lat.mean", agg="max", step="1h") == [20.0]
    assert values_of(server, "e2e.lat.upper", agg="max", step="1h") == [30.0]
    assert values_of(server, "e2e.temp", agg="max", step="1h") == [25.0]
    assert values_of(server, "e2e.users.count", agg="max", step="1h") == [2.0]


def test_statsd_tcp_with_dogstatsd_tags_becomes_tagged_series(server: RunningShipboard):
    with socket.create_connection(("127.0.0.1", server.statsd_port)) as conn:
        conn.sendall(b"e2e.req:2|c|#service:web,env:prod\ne2e.req:4|c|#service:api\n")
    wait_for(lambda: len(server.query(metric="e2e.req.count", **{"from": "-10m"})["series"]) == 2)
    result = server.query(
        metric="e2e.req.count", tags="service:web", agg="sum", step="1h", **{"from": "-10m"}
    )
    (series,) = result["series"]
    assert series["tags"] == {"env": "prod", "service": "web"}
    assert [v for _, v in series["points"]] == [2.0]


def test_statsd_garbage_is_counted_and_the_listener_keeps_serving(server: RunningShipboard):
    before = server.metric_value("shipboard_dropped_total", protocol="statsd", reason="bad_value")
    send_udp(server.statsd_port, b"\xff\xfe\x00garbage\ne2e.after:x|c\ne2e.after_ok:7|c")
    send_udp(server.statsd_port, b"e2e.after_ok:1|c")
    wait_for(lambda: values_of(server, "e2e.after_ok.count", agg="sum", step="1h") == [8.0])
    dropped = sum(
        server.metric_value("shipboard_dropped_total", protocol="statsd", reason=reason)
        for reason in ("bad_value", "bad_line", "bad_type", "bad_name", "bad_utf8")
    )
    assert dropped >= before + 1


def test_graphite_plaintext_and_tags(server: RunningShipboard):
    now = int(time.time())
    with socket.create_connection(("127.0.0.1", server.graphite_port)) as conn:
        conn.sendall(
            f"e2e.g.load 0.5 {now - 2}\nthis is not graphite\n"
            f"e2e.g.load 1.5 {now - 1}\ne2e.g.disk;host=a;dc=x 42 {now}\n".encode()
        )
    wait_for(lambda: len(values_of(server, "e2e.g.load")) == 2)
    assert values_of(server, "e2e.g.load") == [0.5, 1.5]
    result = server.query(metric="e2e.g.disk", tags="host:a", **{"from": "-10m"})
    (series,) = result["series"]
    assert series["tags"] == {"dc": "x", "host": "a"}
    assert [v for _, v in series["points"]] == [42.0]


def test_influx_v1_write_is_durable_and_queryable(server: RunningShipboard):
    now = int(time.time())
    body = f"e2e_cpu,host=h1 usage_user=12.5,usage_system=3i {now}\n".encode()
    status, _ = server.post("/write?db=x&precision=s", body)
    assert status == 204
    assert values_of(server, "e2e_cpu.usage_user", tags="host:h1") == [12.5]
    assert values_of(server, "e2e_cpu.usage_system") == [3.0]


def test_influx_v2_gzip_write(server: RunningShipboard):
    now_ms = int(time.time() * 1000)
    body = gzip.compress(f"e2e_v2,host=h2 temp=21.25 {now_ms}\n".encode())
    status, _ = server.post(
        "/api/v2/write?bucket=b&org=o&precision=ms",
        body,
        {"Content-Encoding": "gzip", "Authorization": "Token anything"},
    )
    assert status == 204
    # Points come at the start of their step bucket (1 s steps here, for a 10-minute range).
    result = server.query(metric="e2e_v2.temp", step="1s", **{"from": "-10m"})
    assert result["step_ms"] == 1000
    assert result["series"][0]["points"] == [[now_ms - now_ms % 1000, 21.25]]


def test_partial_write_keeps_good_lines_and_names_the_first_bad_one(server: RunningShipboard):
    now = int(time.time())
    body = (
        f"e2e_partial v=1 {now - 2}\ne2e_partial v=oops {now - 1}\n"
        f"e2e_partial v=3 {now}\ne2e_partial\n"
    ).encode()
    status, answer = server.post("/write?precision=s", body)
    assert status == 400
    error = json.loads(answer)["error"]
    assert "partial write" in error
    assert "v=oops" in error
    assert "dropped=2" in error
    assert values_of(server, "e2e_partial.v") == [1.0, 3.0]


def test_body_over_the_limit_gets_413(server: RunningShipboard):
    status, answer = server.post("/write", b"e2e_big v=1\n" * 20000)
    assert status == 413
    assert "--max-body" in json.loads(answer)["error"]


def test_metrics_and_series_listing(server: RunningShipboard):
    status, _ = server.post("/write", b"e2e_list,host=a v=1\ne2e_list,host=b v=2\n")
    assert status == 204
    status, body = server.get("/api/v1/metrics?match=e2e_list.*")
    assert status == 200
    assert json.loads(body)["metrics"] == ["e2e_list.v"]
    status, body = server.get("/api/v1/series?metric=e2e_list.v")
    assert json.loads(body)["series"] == [
        {"metric": "e2e_list.v", "tags": {"host": "a"}},
        {"metric": "e2e_list.v", "tags": {"host": "b"}},
    ]


def test_prometheus_metrics_and_healthz(server: RunningShipboard):
    assert server.get("/healthz")[0] == 200
    status, body = server.get("/metrics")
    assert status == 200
    families = {family.name for family in text_string_to_metric_families(body.decode())}
    assert families >= {
        "shipboard_received",
        "shipboard_dropped",
        "shipboard_series",
        "shipboard_flush_duration_seconds",
        "shipboard_store_write_seconds",
    }
    assert server.metric_value("shipboard_series") > 0


def test_query_csv_and_bad_query(server: RunningShipboard):
    now = int(time.time())
    assert server.post("/write?precision=s", f"e2e_csv v=4 {now}\n".encode())[0] == 204
    status, body = server.get("/api/v1/query?metric=e2e_csv.v&from=-5m&format=csv")
    assert status == 200
    lines = body.decode().strip().splitlines()
    assert lines[0].startswith("metric,tags,time_ms")
    assert lines[1].startswith("e2e_csv.v,")
    assert lines[1].endswith(",4.0")
    status, body = server.get("/api/v1/query?metric=e2e_csv.v&agg=median")
    assert status == 400
    assert "agg" in json.loads(body)["error"]


def test_a_repeated_query_answers_the_same_and_sees_every_new_point(server: RunningShipboard):
    """A query asked again (run on the event loop once it is known to be quick) answers as the
    first time, byte for byte, and from the store as it is then: no answer is kept."""
    now = int(time.time())
    assert server.post("/write?precision=s", f"e2e_again v=1 {now - 20}\n".encode())[0] == 204
    path = "/api/v1/query?metric=e2e_again.v&from=-5m&step=10s&agg=max"
    bodies = [server.get(path) for _ in range(4)]
    assert bodies[0][0] == 200
    assert bodies == [bodies[0]] * 4
    assert [v for _, v in json.loads(bodies[0][1])["series"][0]["points"]] == [1.0]
    assert server.post("/write?precision=s", f"e2e_again v=2 {now - 10}\n".encode())[0] == 204
    points = json.loads(server.get(path)[1])["series"][0]["points"]
    assert [v for _, v in points] == [1.0, 2.0]


def test_shipboard_query_command_prints_the_series(server: RunningShipboard):
    now = int(time.time())
    assert server.post("/write?precision=s", f"e2e_cli,host=z v=9.5 {now}\n".encode())[0] == 204
    out = subprocess.run(
        [str(SHIPBOARD), "query", "e2e_cli.v", "--url", server.url, "--from", "-5m"],
        capture_output=True, text=True, timeout=30, check=True,
        env={**os.environ, "SHIPBOARD_TOKEN": server.token},
    ).stdout  # fmt: skip
    assert "e2e_cli.v{host=z}" in out
    assert "9.5" in out


def test_real_client_libraries_push_and_read_back_exact_values(server: RunningShipboard):
    import statsd
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write.point import Point
    from influxdb_client.client.write_api import SYNCHRONOUS
    from influxdb_client.domain.write_precision import WritePrecision

    client = statsd.StatsClient("127.0.0.1", server.statsd_port, prefix="lib")
    client.incr("orders", 7)
    client.gauge("queue", 12.5)
    client.timing("render", 42)
    client.close()
    wait_for(lambda: values_of(server, "lib.orders.count", agg="sum", step="1h") == [7.0])
    assert values_of(server, "lib.queue", agg="last", step="1h") == [12.5]
    assert values_of(server, "lib.render.mean", agg="max", step="1h") == [42.0]

    now_ns = time.time_ns()
    with InfluxDBClient(url=server.url, token="t", org="o") as influx:
        influx.write_api(write_options=SYNCHRONOUS).write(
            bucket="b",
            record=Point("libcpu")
            .tag("host", "h9")
            .field("idle", 97.25)
            .time(now_ns, WritePrecision.NS),
        )
    points = points_of(server, "libcpu.idle", tags="host:h9", step="1s")
    assert points == [[now_ns // 1_000_000_000 * 1000, 97.25]]


def test_host_agent_in_run_reports_cpu_and_memory(tmp_path: Path):
    running = RunningShipboard(tmp_path / "data", ["--agent-interval", "1"]).start()
    try:
        wait_for(lambda: running.query(metric="cpu.idle", **{"from": "-5m"})["series"])
        for metric in ("cpu.user", "cpu.system", "mem.used", "mem.percent", "load.1m"):
            (series,) = running.query(metric=metric, **{"from": "-5m"})["series"]
            assert series["tags"]["host"] == socket.gethostname()
            assert series["points"]
        wait_for(lambda: running.query(metric="net.recv_bytes_per_s", **{"from": "-5m"})["series"])
    finally:
        assert running.stop() == 0


def test_series_beyond_the_limit_get_a_clear_error_and_old_series_keep_working(tmp_path: Path):
    running = RunningShipboard(tmp_path / "data", ["--no-agent", "--max-series", "50"]).start()
    try:
        assert running.post("/write", b"card_old v=1\n")[0] == 204
        lines = "".join(f"card,id=c{i} v=1\n" for i in range(100)).encode()
        status, answer = running.post("/write", lines)
        assert status == 400
        assert "--max-series" in json.loads(answer)["error"]
        refused = running.metric_value(
            "shipboard_dropped_total", protocol="influx", reason="series_limit"
        )
        assert refused == 51  # 49 of the 100 new series fit beside card_old.v
        assert running.metric_value("shipboard_series") == 50
        assert running.post("/write", b"card_old v=2\n")[0] == 204
        assert running.get("/healthz")[0] == 200
    finally:
        assert running.stop() == 0


def test_shipboard_agent_pushes_this_host_over_line_protocol(server: RunningShipboard):
    subprocess.run(
        [str(SHIPBOARD), "agent", "--once", "--url", server.url, "--host-tag", "agent-e2e"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result = server.query(metric="cpu.*", tags="host:agent-e2e", **{"from": "-5m"})
    metrics = {series["metric"] for series in result["series"]}
    assert metrics == {"cpu.user", "cpu.system", "cpu.iowait", "cpu.idle"}
    (idle,) = [s for s in result["series"] if s["metric"] == "cpu.idle"]
    assert 0.0 <= idle["points"][0][1] <= 100.0
    assert server.query(metric="net.recv_bytes_per_s", tags="host:agent-e2e", **{"from": "-5m"})[
        "series"
    ]


def test_timer_percentiles_come_from_merged_sketches_of_every_host(server: RunningShipboard):
    import numpy as np

    rng = np.random.default_rng(3)
    fast, slow = rng.lognormal(3, 0.5, 3000).round(3), rng.lognormal(5, 0.5, 1000).round(3)
    lines = [f"e2e.latency:{v!r}|ms|#host:fast,service:api" for v in fast.tolist()]
    lines += [f"e2e.latency:{v!r}|ms|@0.5|#host:slow,service:api" for v in slow.tolist()]
    with socket.create_connection(("127.0.0.1", server.statsd_port)) as conn:
        conn.sendall(("\n".join(lines) + "\n").encode())
    expected_count = len(fast) + 2 * len(slow)  # @0.5 counts each value twice
    wait_for(
        lambda: (
            values_of(server, "e2e.latency", agg="count", step="1h", group_by="service")
            == [float(expected_count)]
        )
    )
    # The slow host's values count twice, as its sample rate says.
    everything = np.concatenate([fast, slow, slow])
    for agg, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)):
        [got] = values_of(server, "e2e.latency", agg=agg, step="1h", group_by="service")
        assert abs(got / np.quantile(everything, q) - 1) < 0.0055, agg
    per_host = server.query(metric="e2e.latency", agg="p99", step="1h", **{"from": "-10m"})
    by_host = {s["tags"]["host"]: s["points"][0][1] for s in per_host["series"]}
    assert abs(by_host["fast"] / np.quantile(fast, 0.99) - 1) < 0.0055
    assert abs(by_host["slow"] / np.quantile(slow, 0.99) - 1) < 0.0055
    status, body = server.get("/api/v1/query?metric=e2e.latency&agg=p1000")
    assert status == 400
    assert b"percentile" in body
