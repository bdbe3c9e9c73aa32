"""A rule's `on_firing` on a real `shipboard run` fed StatsD over UDP: while the rule fires, the
flag's knob has the rule's value (on `GET /api/v1/flags/{key}`, with the flag annotation by the
alert and the knob action on `GET /api/v1/rules`); resolved for its 2 s `revert_after`, the knob
has its value before again. Both changes are announced to a real webhook."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.launcher import wait_for
from tests.receiver import Receiver
from tests.running import RunningShipboard

# End to end: starts a server process (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

KEY = "search.max_results"
RULES = """\
- name: SearchErrors
  query: {metric: search.errors.count, tags: {service: search}, agg: sum}
  window: 3s
  op: ">"
  threshold: 3
  interval: 1s
  on_firing: {flag: search.max_results, environment: prod, set: 20, revert_after: 2s}
"""


def _send_errors(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"search.errors:2|c|#service:search", ("127.0.0.1", port))


def _json(shipboard: RunningShipboard, path: str) -> Any:
    status, body = shipboard.get(path)
    assert status == 200, body
    return json.loads(body)


def _value(shipboard: RunningShipboard) -> Any:
    return _json(shipboard, f"/api/v1/flags/{KEY}")["environments"]["prod"].get("value")


def _titles(shipboard: RunningShipboard) -> list[tuple[str, str]]:
    """The flag's annotations in prod: (who, title), oldest first."""
    found = _json(shipboard, "/api/v1/annotations?kind=flag&from=-1h&tags=environment:prod")
    notes = sorted(found["annotations"], key=lambda a: (a["start_ns"], a["id"]))
    return [(a["who"], a["title"]) for a in notes]


def _rule(shipboard: RunningShipboard) -> dict[str, Any]:
    [rule] = _json(shipboard, "/api/v1/rules")["rules"]
    assert rule["name"] == "SearchErrors"
    return dict(rule)


def test_a_firing_rule_sets_the_knob_and_resolving_sets_it_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "rules").mkdir(parents=True)
    (data / "rules" / "search.yaml").write_text(RULES)
    with Receiver() as receiver:
        _run(data, receiver)


def _run(data: Path, receiver: Receiver) -> None:
    shipboard = RunningShipboard(
        data,
        [
            "--no-agent", "--flush-interval", "1", "--idle-flushes", "0", "--rules-interval", "1",
            "--notify", f"hook=json+http://127.0.0.1:{receiver.port}/hook",
            "--webhook-allowlist", "127.0.0.1", "--notify-retry", "0.2",
        ],
    )  # fmt: skip
    shipboard.start()
    try:
        flag = {"key": KEY, "environments": {"prod": {"percentage": 100, "value": 50}}}
        status, body = shipboard.post("/api/v1/flags", json.dumps(flag).encode())
        assert status == 201, body
        assert _rule(shipboard)["on_firing"] == {
            "flag": KEY,
            "environment": "prod",
            "set": 20,
            "revert_after": "2s",
        }

        def set_while_sending() -> bool:
            _send_errors(shipboard.statsd_port)
            return bool(_value(shipboard) == 20)

        wait_for(set_while_sending, timeout_s=30, interval_s=0.2)
        set_by_alert = ("alert SearchErrors", f"{KEY} prod: 50 -> 20 (alert SearchErrors firing)")
        assert _titles(shipboard)[-1] == set_by_alert
        action = _rule(shipboard)["knob_action"]
        assert (action["flag"], action["set"], action["previous"]) == (KEY, 20, 50)
        assert action["resolved_since"] is None

        deadline = time.monotonic() + 3  # firing on: the knob stays, set once
        while time.monotonic() < deadline:
            _send_errors(shipboard.statsd_port)
            time.sleep(0.2)
        assert _value(shipboard) == 20
        assert _titles(shipboard).count(set_by_alert) == 1

        # The errors stop: resolved within the 3 s window, set back 2 s later.
        stopped = time.monotonic()
        wait_for(lambda: _value(shipboard) == 50, timeout_s=30, interval_s=0.2)
        assert time.monotonic() - stopped >= 2
        assert _titles(shipboard)[-2:] == [
            set_by_alert,
            ("alert SearchErrors", f"{KEY} prod: 20 -> 50 (alert SearchErrors resolved for 2s)"),
        ]
        assert _rule(shipboard)["knob_action"] is None
        time.sleep(2)
        assert _value(shipboard) == 50
        assert len(_titles(shipboard)) == 3  # created, set, set back

        # Both announced, by the alert, to a real webhook.
        def announced() -> list[str]:
            return [t for t in receiver.texts("/hook") if "alert SearchErrors" in t]

        wait_for(lambda: len(announced()) == 2, timeout_s=15, interval_s=0.2)
        assert announced() == [
            f"[flag] alert SearchErrors: {title}" for _, title in _titles(shipboard)[1:]
        ]
    finally:
        shipboard.stop()
