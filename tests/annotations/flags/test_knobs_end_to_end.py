"""Typed knobs end to end on a real `shipboard run`: a knob set outside its schema is refused with
a 400 naming the bound, one inside it is announced to a real webhook and read by the SDK, and
`shipboard flags export|import` carries the value and schema (and refuses a file breaking it)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from annotations.flags.client import Flags
from tests.launcher import wait_for
from tests.receiver import Receiver
from tests.running import SHIPBOARD, RunningShipboard, shipboard_env

# End to end: starts a server process (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

KEY = "search.max_results"
KNOB = {
    "key": KEY,
    "environments": {"prod": {"percentage": 0, "value": 50, "schema": {"min": 1, "max": 100}}},
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def shipboard(tmp_path: Path, receiver: Receiver) -> Iterator[RunningShipboard]:
    running = RunningShipboard(
        tmp_path / "data",
        [
            "--no-agent", "--notify", f"hook=json+{receiver.url('/hook')}",
            "--webhook-allowlist", "127.0.0.1", "--notify-retry", "0.2",
        ],
    ).start()  # fmt: skip
    status, body = running.post("/api/v1/flags", json.dumps(KNOB).encode())
    assert status == 201, body
    yield running
    assert running.stop() == 0, running.output()


def patch(shipboard: RunningShipboard, prod: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{shipboard.url}/api/v1/flags/{KEY}",
        data=json.dumps({"environments": {"prod": prod}}).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {shipboard.token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def flags_command(shipboard: RunningShipboard, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SHIPBOARD), "flags", *args, "--url", shipboard.url],
        env=shipboard_env(SHIPBOARD_TOKEN=shipboard.token) | {"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_knob_outside_its_schema_is_refused_and_one_inside_is_announced_and_read(
    shipboard: RunningShipboard, receiver: Receiver, tmp_path: Path
) -> None:
    assert patch(shipboard, {"value": 500}) == (
        400,
        {"error": "environments.prod.value: 500 is above the maximum 100 (schema.max)"},
    )
    status, refused = patch(shipboard, {"schema": {"min": 1, "max": "100"}})
    assert status == 400
    assert refused["error"] == 'environments.prod.schema.max: must be a number, not "100"'

    flags = Flags(shipboard.url, shipboard.token, "prod", poll_interval_s=0.1)
    try:
        assert flags.value(KEY, user="42", groups=(), default=20) == 50
        status, doc = patch(shipboard, {"value": 20})
        assert status == 200, doc
        assert doc["environments"]["prod"]["value"] == 20
        wait_for(lambda: flags.value(KEY, user="42", default=99) == 20, timeout_s=10)
        assert flags.value("no-such-knob", user="42", default=7) == 7
    finally:
        flags.close()

    wait_for(lambda: any(t.startswith("[flag]") and "50 -> 20" in t for t in receiver.texts()), 30)
    changed = [t for t in receiver.texts() if "50 -> 20" in t]
    assert len(changed) == 1
    assert changed[0].startswith("[flag] ")
    assert changed[0].endswith(": search.max_results prod: 50 -> 20")

    exported = flags_command(shipboard, "export")
    assert exported.returncode == 0, exported.stderr
    assert "value: 20\n" in exported.stdout
    assert "schema:\n" in exported.stdout
    broken = tmp_path / "flags.yaml"
    broken.write_text(exported.stdout.replace("value: 20\n", "value: 500\n"))
    imported = flags_command(shipboard, "import", str(broken))
    assert imported.returncode == 1
    assert "flags[0]: environments.prod.value: 500 is above the maximum 100" in imported.stderr
