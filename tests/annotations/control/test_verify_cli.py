"""`shipboard deploy --verify` as a real subprocess against a real control server: what it
sends, and that a failed command's code wins with no verdict waited for."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from annotations.app import ControlPlane
from tests.annotations.control.test_control_cli import (
    DEPLOY_ARGS,
    deploys,
    operator_token,
    script,
    server_url,
    shipboard,
)

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow
__all__ = ["operator_token", "server_url"]  # fixtures


async def test_a_failed_command_exits_with_its_code_and_waits_for_no_verdict(
    control: ControlPlane, server_url: str, operator_token: str, tmp_path: Path
) -> None:
    env = {"SHIPBOARD_URL": server_url, "SHIPBOARD_TOKEN": operator_token, "HOME": str(tmp_path)}
    started = time.monotonic()
    code, out, err = await shipboard(
        *DEPLOY_ARGS,
        "--verify",
        "--verify-after",
        "10m",
        "--watch",
        "http.errors.count/http.requests.count",
        "--watch",
        "http.latency:p99,cpu.user",
        *script("import sys; print('migration failed'); sys.exit(5)"),
        env=env,
    )
    assert (code, out) == (5, "migration failed\n"), err
    assert time.monotonic() - started < 30  # not the 10 minutes of a verdict
    assert "verdict" not in err
    [deploy] = await deploys(control)
    assert deploy["status"] == "failed"
    assert deploy["watch"] == [
        "http.errors.count/http.requests.count",
        "http.latency:p99",
        "cpu.user",
    ]


async def test_a_verify_after_that_is_no_duration_is_refused_before_anything_runs(
    control: ControlPlane, server_url: str, operator_token: str, tmp_path: Path
) -> None:
    env = {"SHIPBOARD_URL": server_url, "SHIPBOARD_TOKEN": operator_token, "HOME": str(tmp_path)}
    code, out, err = await shipboard(
        *DEPLOY_ARGS, "--verify", "--verify-after", "soon", *script("print('ran')"), env=env
    )
    assert (code, out) == (2, "")
    assert "--verify-after: 'soon' is not a duration" in err
    assert await deploys(control) == []


async def test_help_documents_the_exit_codes(tmp_path: Path) -> None:
    code, out, _ = await shipboard("deploy", "--help", env={"HOME": str(tmp_path)})
    assert code == 0
    flat = " ".join(out.split())
    assert (
        "0 healthy, inconclusive, no_data or nothing to verify, 3 regressed, 4 no verdict" in flat
    )
