"""A real `shipboard run` in a subprocess on free ports, for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

SHIPBOARD = Path(sys.executable).parent / "shipboard"


def free_port(kinds: tuple[int, ...] = (socket.SOCK_STREAM,)) -> int:
    """A port that is free for every socket kind in `kinds` on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, kinds[0]) as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            others = [socket.socket(socket.AF_INET, kind) for kind in kinds[1:]]
            try:
                for other in others:
                    other.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
            finally:
                for other in others:
                    other.close()


@dataclass
class RunningShipboard:
    data_dir: Path
    args: list[str]
    http_port: int = field(default_factory=free_port)
    statsd_port: int = field(
        default_factory=lambda: free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
    )
    graphite_port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 30.0) -> RunningShipboard:
        command = [
            str(SHIPBOARD), "run", "--data-dir", str(self.data_dir),
            "--http-port", str(self.http_port), "--statsd-port", str(self.statsd_port),
            "--graphite-port", str(self.graphite_port), "--dash-port", "0", *self.args,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPBOARD_")}
        with (self.data_dir.parent / f"{self.data_dir.name}.log").open("a") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"shipboard run exited with {self.process.returncode}:\n" + self.output()
                )
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    banner = self.output()
                    if response.status == 200 and "Shipboard is running" in banner:
                        # The first start on an empty data dir prints an admin token once.
                        found = re.search(r"admin token\s+(\S+)", banner)
                        self.token = found[1] if found else self.token
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("shipboard run did not answer /healthz in time:\n" + self.output())

    def output(self) -> str:
        path = self.data_dir.parent / f"{self.data_dir.name}.log"
        return path.read_text() if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout_s)

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


def wait_for(predicate: object, timeout_s: float = 15.0, interval_s: float = 0.2) -> None:
    """Poll `predicate()` until it is truthy; fail with its last value after `timeout_s`."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return
        time.sleep(interval_s)
    raise AssertionError(f"condition not met in {timeout_s} s (last value: {last!r})")
