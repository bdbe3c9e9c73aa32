"""Guarded rollouts on a real `shipboard run`: an app evaluates the flag with the SDK for its
users and reports its requests and errors over StatsD tagged with each user's arm
(`Flags.tags`); the server's rollout engine steps the plan up while the guard holds and halts
it back when the treatment's error ratio rises."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from annotations.flags.client import Flags
from tests.launcher import wait_for
from tests.running import RunningShipboard

pytestmark = pytest.mark.slow  # starts a server process

USERS = [f"user-{i}" for i in range(2000)]
TICK_S = 0.1  # every user makes a request each tick
FLUSH_S = 0.5  # so the engine judges a step 1 s (two flushes) after its end
INTERVAL_S = 2.0
BASE_ERRORS = 0.2


def plan(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "environments": {
            "prod": {
                "percentage": 0,
                "rollout": {
                    "steps": [10, 50, 100],
                    "interval": f"{INTERVAL_S:g}s",
                    "guards": [
                        {
                            "metric": "http.errors.count",
                            "ratio_of": "http.requests.count",
                            "max_increase": "20%",
                        }
                    ],
                    "min_samples": 1000,
                },
            }
        },
    }


class App:
    """The service: each tick every user's request, an error at the arm's rate, counted per
    arm and sent as StatsD counters tagged as `Flags.tags` says."""

    def __init__(self, shipboard: RunningShipboard, key: str) -> None:
        self.key = key
        self.treatment_errors = BASE_ERRORS
        self.flags = Flags(shipboard.url, shipboard.token, "prod", poll_interval_s=0.1)
        self._address = ("127.0.0.1", shipboard.statsd_port)
        self._stop = threading.Event()
        self._rng = np.random.default_rng(7)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> App:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.flags.close()

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not self._stop.wait(TICK_S):
                arms = Counter(tag for user in USERS for tag in self.flags.tags(user))
                for tag, requests in arms.items():
                    rate = BASE_ERRORS if tag.endswith(":off") else self.treatment_errors
                    errors = int(self._rng.binomial(requests, rate))
                    tags = f"|c|#service:web,{tag}"
                    body = f"http.requests:{requests}{tags}\nhttp.errors:{errors}{tags}"
                    sock.sendto(body.encode(), self._address)


@pytest.fixture
def shipboard(tmp_path: Path) -> Iterator[RunningShipboard]:
    args = ["--no-agent", "--flush-interval", f"{FLUSH_S:g}", "--idle-flushes", "0"]
    running = RunningShipboard(tmp_path / "data", args).start()
    yield running
    assert running.stop() == 0, running.output()


def create(shipboard: RunningShipboard, key: str) -> None:
    status, body = shipboard.post("/api/v1/flags", json.dumps(plan(key)).encode())
    assert status == 201, body


def read(shipboard: RunningShipboard, key: str) -> dict[str, Any]:
    status, body = shipboard.get(f"/api/v1/flags/{key}")
    assert status == 200, body
    doc: dict[str, Any] = json.loads(body)
    return doc


def wait_percentage(shipboard: RunningShipboard, key: str, expected: float, within_s: float):
    """The seconds until the flag's prod percentage is `expected`."""
    start = time.monotonic()
    wait_for(
        lambda: read(shipboard, key)["environments"]["prod"]["percentage"] == expected, within_s
    )
    return time.monotonic() - start


def flag_titles(shipboard: RunningShipboard, key: str) -> list[str]:
    status, body = shipboard.get(f"/api/v1/annotations?kind=flag&tags=flag:{key}&from=-10m")
    assert status == 200, body
    return [a["title"] for a in json.loads(body)["annotations"] if a["who"] == "rollout"]


def test_a_plan_reaches_100_percent_while_its_guard_holds(shipboard):
    create(shipboard, "new-search")
    with App(shipboard, "new-search"):
        wait_percentage(shipboard, "new-search", 10, 5)
        state = read(shipboard, "new-search")["rollout_state"]["prod"]
        assert (state["status"], state["step"], state["steps"]) == ("running", 1, 3)
        assert state["next_step"] == 50
        wait_percentage(shipboard, "new-search", 50, 3 * INTERVAL_S + 2)
        wait_percentage(shipboard, "new-search", 100, 3 * INTERVAL_S + 2)
    state = read(shipboard, "new-search")["rollout_state"]["prod"]
    assert state["status"] == "done"
    [guard] = state["last_evaluation"]["metrics"]
    assert (guard["mode"], guard["status"]) == ("arms", "healthy")
    assert guard["before"] == pytest.approx(BASE_ERRORS, abs=0.02)  # the control's ratio
    assert guard["after"] == pytest.approx(BASE_ERRORS, abs=0.02)  # the treatment's
    titles = flag_titles(shipboard, "new-search")
    assert titles[0] == "new-search prod: 0% -> 10% (rollout started: step 1 of 3)"
    assert titles[1].startswith("new-search prod: 10% -> 50% (rollout step 2 of 3: healthy: ")
    assert titles[2].startswith("new-search prod: 50% -> 100% (rollout step 3 of 3, done: ")


def test_a_rising_treatment_error_ratio_halts_back_within_one_interval(shipboard):
    create(shipboard, "risky")
    with App(shipboard, "risky") as app:
        wait_percentage(shipboard, "risky", 50, 3 * INTERVAL_S + 5)
        app.treatment_errors = 2 * BASE_ERRORS  # the new code path starts failing
        took = wait_percentage(shipboard, "risky", 10, 3 * INTERVAL_S)
    # Judged once the step's interval is over and its last flush is in: within one interval
    # of the step (and the grace of two flushes), not at a later step.
    assert took <= INTERVAL_S + 2 * FLUSH_S + 1.0
    state = read(shipboard, "risky")["rollout_state"]["prod"]
    assert (state["status"], state["step"], state["percentage"]) == ("halted", 1, 10)
    [guard] = state["last_evaluation"]["metrics"]
    assert guard["status"] == "regressed"
    assert guard["after"] > guard["before"] * 1.5
    halt = flag_titles(shipboard, "risky")[-1]
    assert halt.startswith("risky prod: 50% -> 10% (rollout halted: regressed: ")
    # A person resumes it: it goes on from 10%, stepping again (the treatment still fails).
    status, body = shipboard.post("/api/v1/flags/risky/environments/prod/rollout/resume", b"")
    assert status == 200, body
    assert json.loads(body)["status"] == "running"
    status, body = shipboard.post("/api/v1/flags/risky/environments/prod/rollout/pause", b"")
    assert status == 200, body
    assert (json.loads(body)["status"], json.loads(body)["reason"]) == ("paused", "paused by admin")
    status, body = shipboard.post("/api/v1/flags/risky/environments/qa/rollout/pause", b"")
    assert status == 404, body
