"""Several nodes as one system, as docker-compose runs them, here as plain processes on loopback:
a real influxd, the PostgreSQL server, the relay, two collectors and two API nodes (and a real
IRC server for the one chat bot among them)."""

from __future__ import annotations

import json
import random
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotations.chat.irc_protocol import IrcMessage
from collector.relay import HashRing
from shipboard.node_lock import NodeLock
from tests.annotations.chat.ircd import Watcher, make_ircd
from tests.backends import Influxd
from tests.launcher import wait_for
from tests.running import RunningShipboard
from tests.running_relay import RunningRelay

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    collectors: list[RunningShipboard]
    apis: list[RunningShipboard]
    relay: RunningRelay


@pytest.fixture
def cluster(tmp_path: Path, influxd: Influxd, control_schema: str) -> Iterator[Cluster]:
    shared = [
        "--store", "influxdb", "--influx-api", "v1", "--influx-url", influxd.url,
        "--influx-db", influxd.new_database(), "--control-db", control_schema,
        "--no-agent", "--flush-interval", "0.5", "--idle-flushes", "0",
    ]  # fmt: skip
    collectors = [
        RunningShipboard(tmp_path / f"collector{i}", [*shared, "--role", "collector"])
        for i in range(2)
    ]
    apis = [RunningShipboard(tmp_path / f"api{i}", [*shared, "--role", "api"]) for i in range(2)]
    started: list[RunningShipboard] = []
    try:
        for node in [apis[0], apis[1], *collectors]:  # the first API node makes the admin token
            started.append(node.start())
        for node in [apis[1], *collectors]:
            node.token = apis[0].token
        relay = RunningRelay(
            tmp_path / "relay.log", [f"127.0.0.1:{node.statsd_port}" for node in collectors]
        ).start()
        yield Cluster(collectors, apis, relay)
        assert relay.stop() == 0
    finally:
        for node in started:
            node.stop(signal.SIGKILL)


def _values(node: RunningShipboard, metric: str) -> list[float]:
    result = node.query(metric=metric, **{"from": "-10m", "step": "1s"})
    return [v for series in result["series"] for _, v in series["points"] if v is not None]


def test_a_point_written_through_one_node_is_read_through_the_others(cluster: Cluster):
    a, b = cluster.collectors
    now_s = int(time.time())
    for i, node in enumerate((a, b)):
        status, body = node.post(
            "/write?precision=s", f"topo,host=n{i} load={i + 0.5} {now_s}".encode()
        )
        assert status == 204, body
    for api in cluster.apis:
        wait_for(lambda api=api: sorted(_values(api, "topo.load")) == [0.5, 1.5])
    # A collector serves ingest and health, not the query API.
    assert a.get("/api/v1/query?metric=topo.load")[0] == 404
    assert a.get("/healthz")[0] == 200


def test_timers_through_the_relay_are_each_aggregated_by_one_collector(cluster: Cluster):
    rng = random.Random(7)
    sent = {f"topo.t{i}": [float(rng.randrange(1, 1000)) for _ in range(20)] for i in range(12)}
    for name, values in sent.items():
        cluster.relay.send(b"\n".join(f"{name}:{v:g}|ms".encode() for v in values))
    api = cluster.apis[1]
    wait_for(lambda: len(_values(api, "topo.*.count")) == len(sent), timeout_s=20)
    ring = HashRing(cluster.relay.nodes)
    assert {ring.node_for(name.encode()) for name in sent} == set(cluster.relay.nodes)
    for name, values in sent.items():
        assert _values(api, f"{name}.count") == [20.0]
        assert _values(api, f"{name}.p90") == [sorted(values)[17]]  # round(0.9 * 20) = 18th
        assert _values(api, f"{name}.upper") == [max(values)]


def _snapshot_etag(node: RunningShipboard) -> str:
    request = urllib.request.Request(
        node.url + "/api/v1/flags/snapshot?environment=prod",
        headers={"Authorization": f"Bearer {node.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["ETag"])


def test_deploys_and_flag_changes_on_one_api_node_are_seen_on_the_other_at_once(
    cluster: Cluster,
):
    a, b = cluster.apis
    deploy = {"service": "web", "environment": "prod", "version": "3f2c1a9"}
    status, body = a.post("/api/v1/deploys", json.dumps(deploy).encode())
    assert status == 201, body
    status, body = b.get("/api/v1/deploys?service=web")
    assert status == 200
    assert [d["version"] for d in json.loads(body)["deploys"]] == ["3f2c1a9"]

    before = _snapshot_etag(a)
    assert _snapshot_etag(b) == before
    flag = {"key": "new-search", "environments": {"prod": {"enabled": True, "percentage": 5}}}
    status, body = a.post("/api/v1/flags", json.dumps(flag).encode())
    assert status == 201, body
    after = _snapshot_etag(b)
    assert after != before
    assert _snapshot_etag(a) == after


def test_exactly_one_aggregator_holds_the_lock_with_postgresql(control_schema: str, tmp_path: Path):
    first = NodeLock("aggregator", control_schema, tmp_path / "a")
    second = NodeLock("aggregator", control_schema, tmp_path / "b")
    try:
        assert first.try_acquire()
        assert first.try_acquire()  # still held: the session is alive
        assert not second.try_acquire()
        first.release()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()


def test_exactly_one_aggregator_holds_the_lock_on_one_machine_with_sqlite(tmp_path: Path):
    first = NodeLock("aggregator", "", tmp_path)
    second = NodeLock("aggregator", "", tmp_path)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        first.release()
        assert second.try_acquire()
    finally:
        first.release()
        second.release()


def test_an_aggregator_node_starts_beside_a_lock_holder_and_opens_no_ingest_port(
    tmp_path: Path, control_schema: str
):
    holder = NodeLock("aggregator", control_schema, tmp_path)
    assert holder.try_acquire()
    node = RunningShipboard(
        tmp_path / "aggregator", ["--role", "aggregator", "--control-db", control_schema]
    )
    try:
        node.start()
        assert node.get("/healthz") == (200, b'{"status": "ok", "role": "aggregator"}')
        with socket.socket() as probe:  # an aggregator opens no StatsD or Graphite port
            assert probe.connect_ex(("127.0.0.1", node.graphite_port)) != 0
    finally:
        node.stop()
        holder.release()


def test_one_api_node_keeps_the_chat_bot_and_another_takes_over_when_it_dies(
    tmp_path: Path, control_schema: str
):
    (tmp_path / "irc").mkdir()
    ircd = make_ircd(tmp_path / "irc")
    alice = Watcher(ircd.port, "alice", "#ship")
    shared = [
        "--role", "api", "--control-db", control_schema, "--no-agent",
        "--notify", f"irc://shipbot@127.0.0.1:{ircd.port}/#ship", "--notify-retry", "0.2",
    ]  # fmt: skip
    nodes = [RunningShipboard(tmp_path / f"api{i}", shared) for i in range(2)]
    try:
        for node in nodes:
            node.start()
        nodes[1].token = nodes[0].token
        alice.wait_for(lambda m: m.command == "JOIN" and m.nick == "shipbot")
        wait_for(lambda: sum(n.metric_value("shipboard_chat_connected") for n in nodes) == 1)
        holder, other = nodes if nodes[0].metric_value("shipboard_chat_connected") else nodes[::-1]

        # One bot in the channel: a deploy made on the other node is announced once, and a
        # command is answered once.
        deploy = {"service": "web", "environment": "prod", "version": "3f2c1a9", "who": "alice"}
        status, body = other.post("/api/v1/deploys", json.dumps(deploy).encode())
        assert status == 201, body
        deploy_id = json.loads(body)["id"]
        alice.wait_for(_said("shipbot", "[deploy] alice started web 3f2c1a9"))
        alice.say("#ship", "!deploys")
        heard = alice.privmsgs(4.0)
        assert [t for t in heard if t.startswith("[deploy]")] == []
        assert len([t for t in heard if t.startswith(f"#{deploy_id} web 3f2c1a9")]) == 1

        holder.stop(signal.SIGKILL)
        alice.wait_for(lambda m: m.command == "JOIN" and m.nick == "shipbot", 30)
        assert other.metric_value("shipboard_chat_connected") == 1
        alice.say("#ship", "!deploys")
        alice.wait_for(_said("shipbot", f"#{deploy_id} web 3f2c1a9"))
    finally:
        alice.close()
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                node.stop(signal.SIGKILL)
        ircd.stop()


def _said(nick: str, text_start: str) -> Callable[[IrcMessage], bool]:
    return lambda m: (
        m.command == "PRIVMSG" and m.nick == nick and m.params[-1].startswith(text_start)
    )


def test_late_points_through_a_collector_reach_the_rollups_of_another_node_once(
    cluster: Cluster, tmp_path: Path
):
    a = cluster.collectors[0]
    aggregator = RunningShipboard(
        tmp_path / "aggregator", [*a.args[: a.args.index("--role")], "--role", "aggregator"]
    ).start()
    try:
        # Rolled up to within two hours of now on every tier: a point 30 h old is late.
        wait_for(lambda: 0 < aggregator.metric_value("shipboard_rollup_lag_1h_seconds") < 7200, 60)
        start_s = int(time.time()) - 30 * 3600
        start_s -= start_s % 3600
        lines = [f"late,host=h{i % 10} v={i} {start_s + 10 * (i // 10)}" for i in range(3000)]
        status, body = a.post("/write?precision=s", "\n".join(lines).encode())
        assert status == 204, body
        api = cluster.apis[0]

        def counts() -> dict[str, float]:
            return {
                step: sum(
                    v
                    for s in api.query(
                        metric="late.v", step=step, agg="count",
                        **{"from": str(start_s), "to": str(start_s + 7200)},
                    )["series"]
                    for _, v in s["points"]
                )
                for step in ("1m", "10m", "1h")
            }  # fmt: skip

        assert counts() == {"1m": 3000, "10m": 3000, "1h": 3000}  # at once
        wait_for(
            lambda: (
                aggregator.metric_value("shipboard_rollup_dirty_1m_buckets") == 0
                and aggregator.metric_value("shipboard_rollup_dirty_1h_buckets") == 0
                and aggregator.metric_value("shipboard_rollup_duration_seconds_count") > 3
            ),
            timeout_s=60,
        )
        assert counts() == {"1m": 3000, "10m": 3000, "1h": 3000}  # rolled up, counted once
    finally:
        assert aggregator.stop() == 0
