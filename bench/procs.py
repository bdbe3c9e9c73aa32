"""Server processes for the benchmarks: pinned to a core, waited for, measured, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests import launcher

# Servers run on core 0, load generators on core 1: the machine has two cores.
SERVER_CPU = "0"
LOAD_CPU = "1"
HOST = "127.0.0.1"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class StartError(RuntimeError):
    """A server did not come up; carries the tail of its log."""


def free_port() -> int:
    """A port that is free now for both TCP and UDP (StatsD listens on both)."""
    return launcher.free_port((socket.SOCK_STREAM, socket.SOCK_DGRAM))


def pinned(argv: Sequence[str], cpu: str) -> list[str]:
    """`argv` prefixed so that it and all its threads run on the given cores only."""
    return ["taskset", "-c", cpu, *argv]


@dataclass
class Server:
    """One running server: its process, its ports and where it keeps its files."""

    name: str
    argv: list[str]
    workdir: Path
    ports: dict[str, int]
    proc: subprocess.Popen[bytes] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, env: dict[str, str] | None = None) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        log.close()

    def wait_until(self, ready: Callable[[], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise StartError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise StartError(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the server's process group (its own session), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def cpu_s(self) -> float:
        """utime + stime of the server process (all its threads), in seconds."""
        return _cpu_s(self.pid)

    def rss_bytes(self) -> int:
        """Resident memory of the server and every process it started."""
        root = psutil.Process(self.pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running())


def _cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return 200 <= int(response.status) < 300


def tcp_open(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1.0):
        return True


def http_get(url: str, timeout_s: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body: bytes = response.read()
        return body


def http_post(url: str, body: bytes, timeout_s: float = 30.0) -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return int(response.status)
