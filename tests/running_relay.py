"""A real `shipboard relay` in a subprocess on free ports, with its counters read from /metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.samples import Sample

from tests.running import SHIPBOARD, free_port, metric_samples, sample_value


@dataclass
class RunningRelay:
    log_path: Path
    nodes: list[str]
    port: int = field(default_factory=lambda: free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM)))
    http_port: int = field(default_factory=free_port)
    check_interval_s: float = 0.3
    process: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 20.0) -> RunningRelay:
        command = [
            str(SHIPBOARD), "relay", "--listen", f"127.0.0.1:{self.port}",
            "--http", f"127.0.0.1:{self.http_port}",
            "--check-interval", str(self.check_interval_s),
            *(arg for node in self.nodes for arg in ("--node", node)),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPBOARD_")}
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"shipboard relay exited:\n{self.log_path.read_text()}")
            try:
                self.metrics()
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"shipboard relay did not start:\n{self.log_path.read_text()}")

    def metrics(self) -> list[Sample]:
        """Every sample of the relay's /metrics."""
        return metric_samples(self._metrics_text())

    def metric_value(self, name: str, **labels: str) -> float:
        """A sample of the relay's /metrics, 0 when absent."""
        return sample_value(self._metrics_text(), name, **labels)

    def _metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def node_up(self, node: str) -> bool:
        return self.metric_value("shipboard_relay_node_up", node=node) == 1.0

    def send(self, payload: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, ("127.0.0.1", self.port))

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)
