"""`shipboard deploy --verify` on a real `shipboard run` fed StatsD over UDP: a deploy after
which the error ratio doubles is judged `regressed` by the server's own verdict engine, the CLI
prints it and exits 3, and the verdict is announced through the outbox to a real webhook; an
unchanged one is `healthy` and exits 0, and one with no metric to judge has nothing to verify."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launcher import wait_for
from tests.receiver import Receiver
from tests.running import SHIPBOARD, RunningShipboard, shipboard_env

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

REQUESTS_PER_TICK = 1000
TICK_S = 0.05
BEFORE_S = 6.0  # traffic before the deploy: more than the before window (as long as the after)
SWITCH = "after-deploy"  # the file the deploy command writes last: from then, errors change


class Traffic:
    """web's requests and errors as StatsD counters, every TICK_S: `errors` per 1000 requests
    until the deploy command wrote SWITCH in `flags`, `errors_after` from then on."""

    def __init__(self, port: int, flags: Path, errors: int, errors_after: int) -> None:
        self.port, self.flags, self.errors, self.errors_after = port, flags, errors, errors_after
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        tags = b"|c|#service:web,environment:prod"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not self.stopping.wait(TICK_S):
                errors = self.errors_after if (self.flags / SWITCH).exists() else self.errors
                body = b"http.requests:%d%s\nhttp.errors:%d%s" % (
                    REQUESTS_PER_TICK,
                    tags,
                    errors,
                    tags,
                )
                sock.sendto(body, ("127.0.0.1", self.port))

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def shipboard(tmp_path: Path, receiver: Receiver) -> Iterator[RunningShipboard]:
    running = RunningShipboard(
        tmp_path / "data",
        [
            "--no-agent", "--flush-interval", "1", "--idle-flushes", "0",
            "--notify", f"hook=json+{receiver.url('/hook')}", "--webhook-allowlist", "127.0.0.1",
            "--notify-retry", "0.2",
        ],
    ).start()  # fmt: skip
    yield running
    assert running.stop() == 0, running.output()


def deploy_verified(shipboard: RunningShipboard, flags: Path, version: str) -> tuple[int, str]:
    """`shipboard deploy --verify --verify-after 4s` of web around a command that writes SWITCH
    last; its exit code and stderr."""
    command = f"import pathlib; pathlib.Path({str(flags / SWITCH)!r}).touch()"
    done = subprocess.run(
        [
            str(SHIPBOARD), "deploy", "--service", "web", "--env", "prod", "--version", version,
            "--verify", "--verify-after", "4s",
            "--watch", "http.errors.count/http.requests.count",
            "--spool-dir", str(flags / "spool"), "--", sys.executable, "-c", command,
        ],
        env=shipboard_env(
            SHIPBOARD_URL=shipboard.url, SHIPBOARD_TOKEN=shipboard.token, HOME=str(flags)
        )
        | {"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    return done.returncode, done.stderr


def test_a_deploy_that_doubles_the_error_ratio_is_regressed_and_exits_3(
    shipboard: RunningShipboard, receiver: Receiver, tmp_path: Path
) -> None:
    with Traffic(shipboard.statsd_port, tmp_path, errors=50, errors_after=100):
        threading.Event().wait(BEFORE_S)
        code, err = deploy_verified(shipboard, tmp_path, "3f2c1a9")
    assert code == 3, err
    assert "verdict regressed for web 3f2c1a9" in err
    assert "regressed: http.errors/http.requests 5% -> 10% (+" in err
    wait_for(lambda: any(t.startswith("[verdict]") for t in receiver.texts("/hook")), 30)
    [line] = [t for t in receiver.texts("/hook") if t.startswith("[verdict]")]
    assert line.startswith(
        "[verdict] web 3f2c1a9: regressed: http.errors/http.requests 5% -> 10% (+"
    )


def test_an_unchanged_deploy_is_healthy_and_exits_0(
    shipboard: RunningShipboard, tmp_path: Path
) -> None:
    with Traffic(shipboard.statsd_port, tmp_path, errors=50, errors_after=50):
        threading.Event().wait(BEFORE_S)
        code, err = deploy_verified(shipboard, tmp_path, "4a5b6c7")
    assert code == 0, err
    assert "verdict healthy for web 4a5b6c7" in err
    assert "http.errors/http.requests 5% -> 5% (" in err


def test_a_deploy_with_no_metric_to_judge_has_nothing_to_verify_and_exits_0(
    shipboard: RunningShipboard, tmp_path: Path
) -> None:
    command = [
        str(SHIPBOARD), "deploy", "--service", "batch", "--env", "prod", "--version", "v9",
        "--verify", "--verify-after", "1s", "--spool-dir", str(tmp_path / "spool"),
        "--", sys.executable, "-c", "print('shipped')",
    ]  # fmt: skip
    env = shipboard_env(SHIPBOARD_URL=shipboard.url, SHIPBOARD_TOKEN=shipboard.token)
    done = subprocess.run(
        command, env=env | {"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "shipped\n"), done.stderr
    assert "shipboard: nothing to verify" in done.stderr
