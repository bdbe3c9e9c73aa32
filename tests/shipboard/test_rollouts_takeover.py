"""Two API nodes on one PostgreSQL control DB: one steps a rollout plan; when it is killed the
other goes on from the step the first reached, and no step is taken (or announced) twice."""

from __future__ import annotations

import itertools
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.launcher import wait_for
from tests.running import RunningShipboard

pytestmark = pytest.mark.slow  # starts server processes

STEPS = [10, 20, 30, 40, 50, 60]
FLAG = {
    "key": "new-search",
    "environments": {"prod": {"rollout": {"steps": STEPS, "interval": "1s"}}},
}


def percentage(node: RunningShipboard) -> float:
    status, body = node.get("/api/v1/flags/new-search")
    assert status == 200, body
    value: float = json.loads(body)["environments"]["prod"]["percentage"]
    return value


def steps_said(node: RunningShipboard) -> list[str]:
    status, body = node.get("/api/v1/annotations?kind=flag&tags=flag:new-search&from=-10m")
    assert status == 200, body
    found: list[dict[str, Any]] = json.loads(body)["annotations"]
    return [a["title"].split(" (")[0] for a in found if a["who"] == "rollout"]


def test_the_other_node_goes_on_from_the_step_reached(tmp_path: Path, control_schema: str):
    # Flushes of 0.5 s: a step is judged a second (two flushes) after its interval.
    shared = ["--no-agent", "--control-db", control_schema, "--flush-interval", "0.5"]
    nodes = [RunningShipboard(tmp_path / f"node{i}", shared) for i in range(2)]
    try:
        # The first node takes the rollouts lock; the second starts while it holds it.
        holder, other = nodes[0].start(), nodes[1]
        status, body = holder.post("/api/v1/flags", json.dumps(FLAG).encode())
        assert status == 201, body
        wait_for(lambda: percentage(holder) >= 20, 15)
        other.start()
        other.token = holder.token
        holder.stop(signal.SIGKILL)
        wait_for(lambda: percentage(other) == 60, 30)
        said = steps_said(other)
        expected = ["new-search prod: 0% -> 10%"] + [
            f"new-search prod: {a}% -> {b}%" for a, b in itertools.pairwise(STEPS)
        ]
        assert said == expected
    finally:
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                node.stop(signal.SIGKILL)
