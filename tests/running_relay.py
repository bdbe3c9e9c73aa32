"""A real `shipboard relay` in a subprocess on free ports, with its counters read from /metrics."""

from __future__ import annotations

import socket
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.samples import Sample

from tests.launcher import ServerProcess, free_port
from tests.running import SHIPBOARD, metric_samples, sample_value, shipboard_env


@dataclass
class RunningRelay:
    log_path: Path
    nodes: list[str]
    port: int = field(default_factory=lambda: free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM)))
    http_port: int = field(default_factory=free_port)
    check_interval_s: float = 0.3
    server: ServerProcess | None = None

    def start(self, timeout_s: float = 20.0) -> RunningRelay:
        command = [
            str(SHIPBOARD), "relay", "--listen", f"127.0.0.1:{self.port}",
            "--http", f"127.0.0.1:{self.http_port}",
            "--check-interval", str(self.check_interval_s),
            *(arg for node in self.nodes for arg in ("--node", node)),
        ]  # fmt: skip
        self.server = ServerProcess(
            "shipboard relay", command, self.log_path, self._answers, shipboard_env(), timeout_s
        ).start()
        return self

    def _answers(self) -> bool:
        self._metrics_text()
        return True

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
        assert self.server is not None
        code = self.server.stop(timeout_s=20)
        assert code is not None
        return code
