"""The dashboards served by `run_dashboards` in a process of their own, on a free port."""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.launcher import ServerProcess, free_port
from tests.running import shipboard_env

CODE = (
    "from shipboard.server import run_dashboards\n"
    "from shipboard.settings import Settings\n"
    "run_dashboards(Settings())\n"
)


@dataclass
class DashServer:
    url: str
    server: ServerProcess

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def stop(self) -> None:
        self.server.stop()


def start_dashboards(data_dir: Path, timeout_s: float = 30.0, **env: str) -> DashServer:
    """`run_dashboards(Settings())` over `data_dir`, with `env` set, ready to answer."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        with urllib.request.urlopen(url + "/signin", timeout=1):
            return True

    environment = shipboard_env(
        SHIPBOARD_DATA_DIR=str(data_dir), SHIPBOARD_DASH_PORT=str(port), **env
    )
    server = ServerProcess(
        "the dashboards", [sys.executable, "-c", CODE], data_dir / f"dash-{port}.log",
        answers, environment, timeout_s,
    ).start()  # fmt: skip
    return DashServer(url, server)
