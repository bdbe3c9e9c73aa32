"""End to end on VictoriaMetrics: a real `shipboard run --store victoriametrics` against Debian's
victoria-metrics. StatsD, the line protocol and the query APIs work unchanged on top; timer
percentiles across hosts come from sketches VictoriaMetrics summed; no aggregator runs; an alert
rule fires and resolves on what it reads; writes made while VictoriaMetrics is down are spooled
and land once it is back."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.launcher import wait_for
from tests.receiver import Receiver
from tests.running import RunningShipboard
from tests.victoria import VictoriaMetrics

pytestmark = pytest.mark.slow  # server processes


HOT_CPU = """\
- name: HotCpu
  query: {metric: vm_cpu.user, agg: max, group_by: [host]}
  window: 3s
  op: ">"
  threshold: 50
  interval: 1s
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def shipboard(
    victoria: VictoriaMetrics, tmp_path: Path, receiver: Receiver
) -> Iterator[RunningShipboard]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "cpu.yaml").write_text(HOT_CPU)
    args = [
        "--store", "victoriametrics", "--vm-url", victoria.url, "--vm-latency-offset", "0",
        "--flush-interval", "1", "--no-agent", "--rules-dir", str(rules), "--rules-interval", "1",
        "--notify", receiver.url(), "--webhook-allowlist", "127.0.0.1", "--notify-retry", "0.2",
    ]  # fmt: skip
    running = RunningShipboard(tmp_path / "data", args).start()
    yield running
    assert running.stop() == 0, running.output()


def values_of(server: RunningShipboard, **params: str) -> list[float]:
    series = server.query(**{"from": "-10m", **params})["series"]
    return [value for s in series for _, value in s["points"]]


def test_statsd_timers_give_true_percentiles_across_hosts_from_victoria_metrics(
    shipboard: RunningShipboard, victoria: VictoriaMetrics
) -> None:
    rng = np.random.default_rng(11)
    fast, slow = rng.lognormal(3, 0.5, 2000).round(3), rng.lognormal(5, 0.5, 500).round(3)
    lines = [f"vm.latency:{v!r}|ms|#host:fast,service:api" for v in fast.tolist()]
    lines += [f"vm.latency:{v!r}|ms|#host:slow,service:api" for v in slow.tolist()]
    lines += ["vm.hits:3|c|#host:fast", "vm.hits:4|c|#host:slow"]
    with socket.create_connection(("127.0.0.1", shipboard.statsd_port)) as conn:
        conn.sendall(("\n".join(lines) + "\n").encode())
    query = {"metric": "vm.latency", "step": "1h", "group_by": "service"}
    wait_for(lambda: values_of(shipboard, **query, agg="count") == [2500.0], timeout_s=20)
    everything = np.concatenate([fast, slow])
    for agg, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)):
        [got] = values_of(shipboard, **query, agg=agg)
        assert abs(got / np.quantile(everything, q) - 1) < 0.0055, agg
    [mean] = values_of(shipboard, **query, agg="mean")
    assert mean == pytest.approx(everything.mean(), rel=1e-9)
    # The counter per flush, summed over an hour by VictoriaMetrics' own sum_over_time.
    hits = {"metric": "vm.hits.count", "step": "1h", "agg": "sum", "group_by": "*"}
    wait_for(lambda: values_of(shipboard, **hits) == [7.0], timeout_s=20)
    # The samples are VictoriaMetrics' own: it lists the series Shipboard wrote.
    listed = json.loads(victoria.get("/api/v1/label/__name__/values"))["data"]
    assert {"vm.latency.p99", "vm.hits.count", "~sketch:vm.latency"} <= set(listed)
    # Rollups are VictoriaMetrics' work: no aggregator runs and none lags.
    _, metrics = shipboard.get("/metrics")
    assert b"rollup_lag_1m_seconds" not in metrics
    assert "VictoriaMetrics computes rollups when read" in shipboard.output()


def test_line_protocol_and_promql_read_back_through_victoria_metrics(
    shipboard: RunningShipboard,
) -> None:
    now_s = int(time.time()) - 120
    body = "\n".join(
        f"vm_cpu,host={host} user={value} {now_s + i}"
        for i in range(60)
        for host, value in (("a", float(i)), ("b", 2.0 * i))
    )
    status, answer = shipboard.post("/write?precision=s", body.encode())
    assert status == 204, answer
    wait_for(lambda: len(values_of(shipboard, metric="vm_cpu.user", tags="host:a")) == 60)
    [mean_a] = values_of(shipboard, metric="vm_cpu.user", tags="host:a", step="1h", agg="mean")
    assert mean_a == pytest.approx(29.5)
    promql = urllib.parse.urlencode({"query": "sum(vm_cpu_user)", "time": str(now_s + 59)})
    status, answer = shipboard.get(f"/prometheus/api/v1/query?{promql}")
    assert status == 200, answer
    [sample] = json.loads(answer)["data"]["result"]
    assert float(sample["value"][1]) == 59.0 + 118.0


def test_writes_while_victoria_metrics_is_down_are_spooled_and_land_when_it_is_back(
    shipboard: RunningShipboard, victoria: VictoriaMetrics
) -> None:
    now_s = int(time.time()) - 60
    victoria.stop()
    try:
        status, answer = shipboard.post("/write?precision=s", f"vm_away v=42 {now_s}".encode())
        assert status == 204, answer  # acknowledged: it is in the spool, on disk
        wait_for(lambda: shipboard.metric_value("shipboard_spool_depth") >= 1)
    finally:
        victoria.start()
    wait_for(lambda: values_of(shipboard, metric="vm_away.v") == [42.0], timeout_s=20)
    assert shipboard.metric_value("shipboard_spool_depth") == 0


def test_an_alert_rule_fires_and_resolves_on_points_read_from_victoria_metrics(
    shipboard: RunningShipboard, receiver: Receiver
) -> None:
    def alerts() -> list[str]:
        return [text for text in receiver.texts() if text.startswith("[alert]")]

    def hot() -> bool:
        status, body = shipboard.post("/write", b"vm_cpu,host=web1 user=90")
        assert status == 204, body
        return len(alerts()) == 1

    wait_for(hot, timeout_s=30, interval_s=0.3)
    assert alerts()[0].startswith("[alert] FIRING HotCpu")
    wait_for(lambda: len(alerts()) == 2, timeout_s=30)  # nothing hot for the 3 s window
    assert alerts()[1].startswith("[alert] RESOLVED HotCpu")
