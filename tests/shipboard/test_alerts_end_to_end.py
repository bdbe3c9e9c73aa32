"""Alerts on a real `shipboard run`: StatsD over UDP makes a rule fire, a JSON webhook and an
Alertmanager-format receiver (real HTTP servers on 127.0.0.1) are told once, with the deploy
just before; a restart neither re-pages nor forgets; it resolves once; a silence keeps it quiet;
a bad rule file leaves the good rules running; of two nodes on one PostgreSQL one evaluates, and
the other takes over when it dies, without paging again."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import Influxd
from tests.launcher import wait_for
from tests.receiver import Receiver
from tests.running import RunningShipboard

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

RULES = """\
- name: WebErrors
  query: {metric: app.errors.count, tags: {service: web}, agg: sum, group_by: [service]}
  window: 4s
  op: ">"
  threshold: 3
  for: 2s
  interval: 1s
  labels: {severity: page}
  annotations: {summary: "{service} errors: {value:.0f} in 4 s"}
  notify: [hook, am]
"""
BROKEN = """\
- name: Fine
  query: {metric: app.latency.p99}
  op: ">"
  threshold: nope
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def _alert_texts(receiver: Receiver) -> list[str]:
    """The JSON webhook's alert lines (it also gets the deploy's announcement)."""
    return [text for text in receiver.texts("/hook") if text.startswith("[alert]")]


def _statuses(receiver: Receiver) -> list[str]:
    """What the Alertmanager-format receiver was told, in order."""
    return [b["status"] for b in receiver.bodies("/am")]


def _alerts(shipboard: RunningShipboard) -> list[dict[str, Any]]:
    status, body = shipboard.get("/api/v1/alerts")
    assert status == 200, body
    alerts: list[dict[str, Any]] = json.loads(body)["alerts"]
    return alerts


def _state(shipboard: RunningShipboard) -> str:
    alerts = [a for a in _alerts(shipboard) if a["rule"] == "WebErrors"]
    return alerts[0]["state"] if alerts else "inactive"


def _send_errors(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"app.errors:2|c|#service:web", ("127.0.0.1", port))


def _firing_while_sending(shipboard: RunningShipboard) -> bool:
    _send_errors(shipboard.statsd_port)
    return _state(shipboard) == "firing"


def test_a_rule_fires_notifies_once_survives_a_restart_resolves_once_and_obeys_a_silence(
    tmp_path: Path, receiver: Receiver
) -> None:
    data = tmp_path / "data"
    (data / "rules").mkdir(parents=True)
    (data / "rules" / "web.yaml").write_text(RULES)
    (data / "rules" / "broken.yaml").write_text(BROKEN)
    hook = f"hook=json+http://127.0.0.1:{receiver.port}/hook"
    am = (
        f"am=alertmanager+http://127.0.0.1:{receiver.port}/am"
        "?group_wait=1s&group_interval=1s&repeat_interval=1h"
    )
    shipboard = RunningShipboard(
        data,
        [
            "--no-agent", "--flush-interval", "1", "--idle-flushes", "0",
            "--rules-interval", "1", "--public-url", "http://dash.example",
            "--notify", hook, "--notify", am, "--webhook-allowlist", "127.0.0.1",
            "--notify-retry", "0.2",
        ],
    )  # fmt: skip
    shipboard.start()
    try:
        status, body = shipboard.get("/api/v1/rules")
        assert status == 200, body
        rules = json.loads(body)
        assert [r["name"] for r in rules["rules"]] == ["WebErrors"]
        assert any(
            "broken.yaml:4" in e["file"] + ":" + str(e["line"]) and "threshold" in e["message"]
            for e in rules["errors"]
        ), rules["errors"]

        deploy = {"service": "web", "environment": "prod", "version": "v42", "who": "alice"}
        status, body = shipboard.post("/api/v1/deploys", json.dumps(deploy).encode())
        assert status == 201, body

        wait_for(lambda: _firing_while_sending(shipboard), timeout_s=30, interval_s=0.2)

        def told() -> bool:  # the errors go on until both receivers have been told
            _send_errors(shipboard.statsd_port)
            return bool(_alert_texts(receiver) and _statuses(receiver))

        wait_for(told, timeout_s=15, interval_s=0.2)
        [firing] = _alert_texts(receiver)
        assert "FIRING" in firing, firing
        assert "WebErrors" in firing, firing
        # What changed just before: the deploy, who made it and its version.
        assert "v42" in firing, firing
        assert "alice" in firing, firing
        payloads = receiver.bodies("/am")
        assert len(payloads) == 1, payloads
        [payload] = payloads
        assert (payload["version"], payload["status"]) == ("4", "firing")
        assert payload["receiver"] == "am"
        [alert] = payload["alerts"]
        assert alert["labels"] == {"alertname": "WebErrors", "service": "web", "severity": "page"}
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        fingerprint = alert["fingerprint"]
        [before] = [a for a in _alerts(shipboard) if a["rule"] == "WebErrors"]

        # A restart while it fires: the same alert, since the same time, and nobody paged again.
        assert shipboard.stop() == 0
        shipboard.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            _send_errors(shipboard.statsd_port)
            time.sleep(0.2)
        [after] = [a for a in _alerts(shipboard) if a["rule"] == "WebErrors"]
        assert (after["state"], after["since"]) == ("firing", before["since"])
        assert len(_alert_texts(receiver)) == 1
        assert _statuses(receiver) == ["firing"]

        # The errors stop: resolved, and each receiver told once.
        wait_for(lambda: _state(shipboard) in ("resolved", "inactive"), timeout_s=30)
        wait_for(lambda: len(_alert_texts(receiver)) == 2 and len(_statuses(receiver)) == 2)
        assert "RESOLVED" in _alert_texts(receiver)[1]
        resolved = receiver.bodies("/am")[1]
        assert resolved["status"] == "resolved"
        assert resolved["alerts"][0]["fingerprint"] == fingerprint
        assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"

        # Silenced: it fires again and shows, but nobody is told.
        silence = {"matchers": {"alertname": "WebErrors"}, "ends_at": "+1h", "comment": "load test"}
        status, body = shipboard.post("/api/v1/silences", json.dumps(silence).encode())
        assert status == 201, body
        silence_id = json.loads(body)["id"]
        wait_for(lambda: _firing_while_sending(shipboard), timeout_s=30, interval_s=0.2)
        [silenced] = [a for a in _alerts(shipboard) if a["rule"] == "WebErrors"]
        assert silenced["silenced_by"] == [silence_id]
        time.sleep(3)  # more than group_wait and two evaluations
        assert len(_alert_texts(receiver)) == 2
        assert len(_statuses(receiver)) == 2
    finally:
        shipboard.stop()


CPU_RULE = """\
- name: HotCpu
  query: {metric: cpu.usage_user, agg: max, group_by: [host]}
  window: 3s
  op: ">"
  threshold: 50
  interval: 1s
"""


def _firing_on(node: RunningShipboard) -> float:
    return node.metric_value("shipboard_alerts", state="firing")


def test_one_of_two_nodes_evaluates_and_the_other_takes_over_without_paging_again(
    tmp_path: Path, influxd: Influxd, control_schema: str, receiver: Receiver
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "cpu.yaml").write_text(CPU_RULE)
    shared = [
        "--store", "influxdb", "--influx-api", "v1", "--influx-url", influxd.url,
        "--influx-db", influxd.new_database(), "--control-db", control_schema,
        "--no-agent", "--rules-dir", str(rules), "--rules-interval", "1",
        "--notify", receiver.url(), "--webhook-allowlist", "127.0.0.1", "--notify-retry", "0.2",
    ]  # fmt: skip
    nodes = [RunningShipboard(tmp_path / f"node{i}", shared) for i in range(2)]
    try:
        for node in nodes:
            node.start()
        nodes[1].token = nodes[0].token
        alive = nodes

        def hot() -> None:
            status, body = alive[0].post("/write", b"cpu,host=web1 usage_user=90")
            assert status == 204, body

        def paged_by_one() -> bool:
            hot()
            return sorted(_firing_on(n) for n in nodes) == [0, 1] and len(_alerts_said()) == 1

        def _alerts_said() -> list[str]:
            return [t for t in receiver.texts() if t.startswith("[alert]")]

        wait_for(paged_by_one, timeout_s=30, interval_s=0.3)
        holder, other = nodes if _firing_on(nodes[0]) else nodes[::-1]
        holder.stop(signal.SIGKILL)
        alive = [other]

        def taken_over() -> bool:
            hot()
            return _firing_on(other) == 1

        wait_for(taken_over, timeout_s=30, interval_s=0.3)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            hot()
            time.sleep(0.3)
        assert _alerts_said()[0].startswith("[alert] FIRING HotCpu")
        assert len(_alerts_said()) == 1  # the new evaluator knew it was firing

        wait_for(lambda: len(_alerts_said()) == 2, timeout_s=30)
        assert _alerts_said()[1].startswith("[alert] RESOLVED HotCpu")
    finally:
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                node.stop(signal.SIGKILL)
