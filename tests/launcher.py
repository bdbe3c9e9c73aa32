"""One way for tests to start a server process, wait until it is ready and stop it by its PID."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


class StartError(RuntimeError):
    """A server exited or was not ready in time; the message ends with the tail of its log."""


def free_port(kinds: tuple[int, ...] = (socket.SOCK_STREAM,)) -> int:
    """A port of 127.0.0.1 that is free for every socket kind in `kinds`."""
    while True:
        with socket.socket(socket.AF_INET, kinds[0]) as first:
            first.bind((HOST, 0))
            port = int(first.getsockname()[1])
            others = [socket.socket(socket.AF_INET, kind) for kind in kinds[1:]]
            try:
                for other in others:
                    other.bind((HOST, port))
                return port
            except OSError:
                continue
            finally:
                for other in others:
                    other.close()


def wait_for(predicate: object, timeout_s: float = 15.0, interval_s: float = 0.2) -> None:
    """Poll `predicate()` until it is truthy; fail with its last value after `timeout_s`.
    (`object`, not a Callable: mypy infers no type for a lambda with a default argument.)"""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return
        time.sleep(interval_s)
    raise AssertionError(f"condition not met in {timeout_s} s (last value: {last!r})")


@dataclass
class ServerProcess:
    """`command` in a process of its own, its output appended to `log_path`. `start()` returns
    once `ready()` is true (an OSError from it means not yet), and raises StartError when the
    process exits first or `timeout_s` passes. It may be stopped and started again."""

    name: str
    command: Sequence[str]
    log_path: Path
    ready: Callable[[], bool]
    env: Mapping[str, str] | None = None
    timeout_s: float = 30.0
    user: str | None = None
    """Run as this user (with its group), as servers that refuse root need."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ServerProcess:
        assert not self.running(), f"{self.name} is already running"
        group = pwd.getpwnam(self.user).pw_gid if self.user else None
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if self.env is None else dict(self.env),
                user=self.user,
                group=group,
                extra_groups=[] if self.user else None,
            )
        try:
            wait_for(self._ready, self.timeout_s, interval_s=0.05)
        except AssertionError:
            self.stop(signal.SIGKILL)
            raise StartError(
                f"{self.name} was not ready in {self.timeout_s} s:\n{self.log_tail()}"
            ) from None
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise StartError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )
        try:
            return self.ready()
        except OSError:
            return False

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int | None:
        """Send `sig` to the process, wait `timeout_s`, then kill it; its exit code (None if it
        never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout_s)

    def output(self) -> str:
        """Everything the process wrote, over all its starts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


def environment_without(prefix: str, **extra: str) -> dict[str, str]:
    """This process's environment less the variables starting with `prefix`, plus `extra`."""
    return {k: v for k, v in os.environ.items() if not k.startswith(prefix)} | extra
