"""`shipboard rollout status|pause|resume` through the real command against a live server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from annotations.app import ControlPlane
from annotations.control.tokens import create_token
from annotations.flags.store import create_flag, get_flag
from annotations.rollouts.actions import RolloutActions
from tests.annotations.flag_server import LiveServer

pytestmark = pytest.mark.slow  # starts the command as a process

PLAN = {
    "steps": [10, 50, 100],
    "interval": "10m",
    "guards": [{"metric": "http.errors.count", "ratio_of": "http.requests.count"}],
}


def shipboard(
    server: LiveServer, token: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPBOARD_")}
    return subprocess.run(
        [sys.executable, "-m", "shipboard.cli", "rollout", *args, "--url", server.url],
        env={**env, "SHIPBOARD_TOKEN": token},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_pause_and_resume(server: LiveServer, control: ControlPlane, tmp_path: Path) -> None:
    doc = {"key": "new-search", "environments": {"prod": {"rollout": PLAN}}}
    create_flag(control.db, doc, who="setup", now_ns=1)
    env = get_flag(control.db, "new-search").flag.environments["prod"]
    RolloutActions(control.db, None).start("new-search", "prod", env, 2, why="rollout started")
    operator = create_token(control.db, "ops", "operator")[1]
    viewer = create_token(control.db, "dev", "viewer")[1]

    status = shipboard(server, viewer, "status", "new-search", "prod", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(
        "new-search prod: running, step 1 of 3 at 10% (next 50% in 0m 0s): rollout started"
    )
    refused = shipboard(server, viewer, "pause", "new-search", "prod", cwd=tmp_path)
    assert refused.returncode == 1
    assert "403" in refused.stderr
    paused = shipboard(server, operator, "pause", "new-search", "prod", cwd=tmp_path)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout == "new-search prod: paused, step 1 of 3 at 10%: paused by ops\n"
    resumed = shipboard(server, operator, "resume", "new-search", "prod", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("new-search prod: running, step 1 of 3 at 10% (next 50% in ")
    assert resumed.stdout.endswith("): rollout resumed by ops\n")
    missing = shipboard(server, viewer, "status", "new-search", "qa", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stdout == "new-search has no rollout plan under way in qa\n"
