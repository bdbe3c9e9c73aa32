"""`shipboard deploy` and `shipboard token` as real subprocesses against a real server."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from annotations.app import ControlPlane, setup_control
from annotations.control.deploys import deploy_json, list_deploys
from annotations.control.tokens import create_token
from tests.launcher import free_port

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
DEPLOY_ARGS = ("deploy", "--service", "web", "--env", "prod", "--version", "v1")


@pytest.fixture
def operator_token(control: ControlPlane) -> str:
    return create_token(control.db, "ci", "operator")[1]


@pytest.fixture
async def server_url(control: ControlPlane, aiohttp_server: AiohttpServer) -> str:
    app = web.Application()
    setup_control(app, control, anonymous_read=False, ingest_token="")
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def shipboard(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shipboard.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def deploys(control: ControlPlane) -> list[dict[str, Any]]:
    found = await control.db.run(list_deploys, control.db, 0, 2**62)
    return [deploy_json(d) for d in found]


def script(code: str) -> list[str]:
    return ["--", sys.executable, "-c", code]


async def test_deploy_records_start_and_finish_and_streams_output(
    control: ControlPlane, server_url: str, operator_token: str, tmp_path: Path
) -> None:
    env = {"SHIPBOARD_URL": server_url, "SHIPBOARD_TOKEN": operator_token, "HOME": str(tmp_path)}
    before = time.time_ns()
    code, out, err = await shipboard(
        *DEPLOY_ARGS,
        "--description",
        "<b>new search</b>",
        "--watch",
        "http.errors,http.p99",
        "--rollback",
        "redeploy v0",
        *script("import time; print('step 1', flush=True); time.sleep(0.2); print('step 2')"),
        env=env,
    )
    assert code == 0, err
    assert out.splitlines() == ["step 1", "step 2"]
    assert "deploy succeeded (exit 0" in err
    [deploy] = await deploys(control)
    assert deploy["status"] == "succeeded"
    assert deploy["exit_code"] == 0
    assert deploy["who"] == "ci"
    assert deploy["description"] == "<b>new search</b>"
    assert deploy["watch"] == ["http.errors", "http.p99"]
    assert deploy["rollback"] == "redeploy v0"
    assert deploy["log_tail"] == "step 1\nstep 2\n"
    assert before < deploy["start_ns"] < deploy["end_ns"] < time.time_ns()
    assert deploy["duration_s"] >= 0.2


async def test_failing_command_is_recorded_as_failed_and_its_code_returned(
    control: ControlPlane, server_url: str, operator_token: str, tmp_path: Path
) -> None:
    env = {"SHIPBOARD_URL": server_url, "HOME": str(tmp_path)}
    code, out, _ = await shipboard(
        *DEPLOY_ARGS,
        "--token",
        operator_token,
        *script("import sys; print('migration failed'); sys.exit(3)"),
        env=env,
    )
    assert code == 3
    assert out == "migration failed\n"
    code, _, _ = await shipboard(
        *DEPLOY_ARGS, "--token", operator_token, "--", str(tmp_path / "no-such-script"), env=env
    )
    assert code == 127
    failed = await deploys(control)
    assert [(d["status"], d["exit_code"]) for d in failed] == [("failed", 127), ("failed", 3)]
    assert "migration failed" in failed[1]["log_tail"]


async def test_server_down_then_up_sends_the_spool_exactly_once(
    control: ControlPlane, server_url: str, operator_token: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    down = {"SHIPBOARD_URL": f"http://127.0.0.1:{free_port()}", "SHIPBOARD_TOKEN": operator_token}
    before = time.time_ns()
    code, out, err = await shipboard(
        *DEPLOY_ARGS, "--spool-dir", str(spool), *script("print('shipped')"), env=down
    )
    assert (code, out) == (0, "shipped\n")
    assert "spooled" in err
    pending = await asyncio.to_thread(lambda: sorted(spool.glob("*.json")))
    assert len(pending) == 2
    assert await deploys(control) == []
    # Keep a copy, to replay it as if the first flush died after sending but before deleting.
    replay = tmp_path / "replay"
    await asyncio.to_thread(shutil.copytree, spool, replay)
    after_run = time.time_ns()

    up = {"SHIPBOARD_URL": server_url, "SHIPBOARD_TOKEN": operator_token}
    code, _, err = await shipboard("deploy", "--flush-spool", "--spool-dir", str(spool), env=up)
    assert code == 0, err
    assert await asyncio.to_thread(lambda: list(spool.glob("*.json"))) == []
    code, _, _ = await shipboard("deploy", "--flush-spool", "--spool-dir", str(replay), env=up)
    assert code == 0
    code, _, _ = await shipboard(
        *DEPLOY_ARGS, "--spool-dir", str(spool), *script("print('next')"), env=up
    )
    assert code == 0

    recorded = await deploys(control)
    assert len(recorded) == 2
    offline = recorded[1]
    assert offline["status"] == "succeeded"
    assert offline["log_tail"] == "shipped\n"
    # The original times, not the time the spool was sent.
    assert before < offline["start_ns"] < offline["end_ns"] < after_run


async def test_deploy_without_a_command_or_fields_is_a_usage_error(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    code, _, err = await shipboard(*DEPLOY_ARGS, env=env)
    assert code == 2
    assert "after --" in err
    code, _, err = await shipboard("deploy", "--service", "web", *script("pass"), env=env)
    assert code == 2
    assert "--env, --version" in err


async def test_token_commands_create_list_and_revoke(control_url: str, tmp_path: Path) -> None:
    env = {"SHIPBOARD_CONTROL_DB": control_url, "SHIPBOARD_DATA_DIR": str(tmp_path / "data")}
    code, token, _ = await shipboard(
        "token", "create", "--name", "alice", "--role", "operator", env=env
    )
    assert code == 0
    token = token.strip()
    assert token.startswith("sb_")
    code, listing, _ = await shipboard("token", "list", env=env)
    assert code == 0
    assert "alice" in listing
    assert "operator" in listing
    assert token not in listing
    if control_url.startswith("sqlite://"):
        db_file = Path(control_url.removeprefix("sqlite://"))
        files = await asyncio.to_thread(lambda: [p.read_bytes() for p in db_file.parent.iterdir()])
        assert all(token.encode() not in data for data in files)
    code, _, err = await shipboard("token", "revoke", "1", env=env)
    assert (code, err.strip()) == (0, "revoked token 1 (alice)")
    code, listing, _ = await shipboard("token", "list", env=env)
    assert "alice" not in listing
    code, listing, _ = await shipboard("token", "list", "--all", env=env)
    assert "alice" in listing
    code, _, err = await shipboard("token", "revoke", "99", env=env)
    assert code == 1
    assert "no token 99" in err
