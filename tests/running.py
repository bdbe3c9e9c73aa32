"""A real `shipboard run` in a subprocess on free ports, for end-to-end tests."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.launcher import ServerProcess, environment_without, free_port

SHIPBOARD = Path(sys.executable).parent / "shipboard"


def shipboard_env(**extra: str) -> dict[str, str]:
    """The environment for a Shipboard process: none of this one's SHIPBOARD_ settings."""
    return environment_without("SHIPBOARD_", **extra)


@dataclass
class RunningShipboard:
    data_dir: Path
    args: list[str]
    http_port: int = field(default_factory=free_port)
    statsd_port: int = field(
        default_factory=lambda: free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
    )
    graphite_port: int = field(default_factory=free_port)
    server: ServerProcess | None = None
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.server is None else self.server.process

    def start(self, timeout_s: float = 30.0) -> RunningShipboard:
        command = [
            str(SHIPBOARD), "run", "--data-dir", str(self.data_dir),
            "--http-port", str(self.http_port), "--statsd-port", str(self.statsd_port),
            "--graphite-port", str(self.graphite_port), "--dash-port", "0", *self.args,
        ]  # fmt: skip
        self.server = ServerProcess(
            "shipboard run", command, self.log_path, self._answers, shipboard_env(), timeout_s
        ).start()
        # The first start on an empty data dir prints an admin token once.
        found = re.search(r"admin token\s+(\S+)", self.output())
        self.token = found[1] if found else self.token
        return self

    def _answers(self) -> bool:
        with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
            return response.status == 200 and "Shipboard is running" in self.output()

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        assert self.server is not None
        code = self.server.stop(sig, timeout_s)
        assert code is not None
        return code

    def _headers(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**auth, **(headers or {})}

    def get(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers=self._headers(headers)
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def query(self, **params: str) -> dict[str, Any]:
        status, body = self.get("/api/v1/query?" + urllib.parse.urlencode(params))
        assert status == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    def metric_value(self, name: str, **labels: str) -> float:
        """A sample of Shipboard's own /metrics, 0 when absent."""
        _, body = self.get("/metrics")
        return sample_value(body.decode(), name, **labels)


def metric_samples(text: str) -> list[Sample]:
    """Every sample of a `/metrics` page, read with prometheus_client's parser."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def sample_value(text: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly `labels` on a `/metrics` page, 0 when absent."""
    for sample in metric_samples(text):
        if sample.name == name and sample.labels == labels:
            return sample.value
    return 0.0
