"""The truth for PromQL answers: a real Prometheus (Debian's package) on a free loopback port,
with its own data dir, no scrape jobs and the remote-write receiver on; the tests write the
same samples into it and into Shipboard, ask both the same queries and compare the answers."""

from __future__ import annotations

import json
import math
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cramjam import snappy

from collector.prompb import WriteRequest
from tests.collector import prometheus_server

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Written:
    """One series as Prometheus names it, and its points (ms, ascending)."""

    labels: Labels
    ts_ms: Sequence[int]
    values: Sequence[float]


def write_body(series: Sequence[Written]) -> bytes:
    """A remote-write 1.0 body (snappy-compressed WriteRequest) of `series`."""
    request = WriteRequest()
    for one in series:
        encoded = request.timeseries.add()
        for name, text in sorted(one.labels.items()):
            encoded.labels.add(name=name, value=text)
        for ts, value in zip(one.ts_ms, one.values, strict=True):
            encoded.samples.add(value=value, timestamp=ts)
    return bytes(snappy.compress_raw(request.SerializeToString()))


def openmetrics(series: Sequence[Written]) -> str:
    """`series` as OpenMetrics text (what promtool backfills): each metric's samples together,
    times in seconds to the ms."""
    lines = []
    for one in sorted(series, key=lambda s: s.labels["__name__"]):
        labels = ",".join(
            f"{k}={json.dumps(v, ensure_ascii=False)}"
            for k, v in sorted(one.labels.items())
            if k != "__name__"
        )
        for ts, value in zip(one.ts_ms, one.values, strict=True):
            lines.append(
                f"{one.labels['__name__']}{{{labels}}} {value!r} {ts // 1000}.{ts % 1000:03d}"
            )
    return "\n".join([*lines, "# EOF", ""])


WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def http(
    url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON or raw bytes) of a GET, or a POST when `body` is given."""
    request = urllib.request.Request(url, data=body, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


class Prometheus(prometheus_server.Prometheus):
    """Started as the remote-write tests start it, but with no scrape jobs (only the written
    samples are in it) and its remote-write receiver on."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, "http://127.0.0.1:9/unused")
        self.home = home
        (home / "prometheus.yml").write_text("global: {scrape_interval: 1m}\nscrape_configs: []\n")
        self.server.command = [*self.server.command, "--web.enable-remote-write-receiver"]

    def backfill(self, series: Sequence[Written]) -> None:
        """Before `start()`: `series` as blocks of the data dir, as promtool backfills them
        (2 h blocks on 2 h boundaries), so that Prometheus answers from blocks, not its head."""
        source = self.home / "backfill.om"
        source.write_text(openmetrics(series))
        command = ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source)]
        done = subprocess.run([*command, str(self.home / "data")], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr

    def write(self, series: Sequence[Written]) -> None:
        status, body = http(self.url + "/api/v1/write", write_body(series), WRITE_HEADERS)
        assert status == 204, body

    def api(self, path: str, *pairs: tuple[str, str], **params: str) -> tuple[int, Any]:
        """GET /api/v1/`path` with the parameters (`pairs` for repeated ones, as match[])."""
        query = urllib.parse.urlencode([*pairs, *params.items()])
        return http(f"{self.url}/api/v1/{path}?{query}")


def _same_value(ours: str, theirs: str) -> bool:
    a, b = float(ours), float(theirs)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return bool(a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))


def _points(element: Mapping[str, Any]) -> list[list[Any]]:
    return element["values"] if "values" in element else [element["value"]]


def assert_same_answer(query: str, ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> None:
    """The same result type, series, timestamps and values (to 1e-9 relative); or the same
    kind of error."""
    if theirs["status"] == "error":
        assert (ours["status"], ours.get("errorType")) == ("error", theirs["errorType"]), (
            query,
            ours,
            theirs,
        )
        return
    assert ours["status"] == "success", (query, ours, theirs)
    mine, truth = ours["data"], theirs["data"]
    assert mine["resultType"] == truth["resultType"], (query, mine, truth)
    if truth["resultType"] in ("scalar", "string"):
        assert mine["result"][0] == truth["result"][0], query
        assert _same_value(mine["result"][1], truth["result"][1]), (query, mine, truth)
        return
    by_labels = {json.dumps(e["metric"], sort_keys=True): _points(e) for e in mine["result"]}
    expected = {json.dumps(e["metric"], sort_keys=True): _points(e) for e in truth["result"]}
    assert sorted(by_labels) == sorted(expected), (query, mine, truth)
    for key, points in expected.items():
        got = by_labels[key]
        assert [t for t, _ in got] == [t for t, _ in points], (query, key, got, points)
        for (_, v), (_, want) in zip(got, points, strict=True):
            assert _same_value(v, want), (query, key, got, points)


def jittered(rng: np.random.Generator, start_ms: int, end_ms: int, every_ms: int) -> list[int]:
    """Times every `every_ms` from start_ms up to end_ms, each moved by up to a tenth."""
    base = np.arange(start_ms, end_ms, every_ms)
    jitter = rng.integers(-every_ms // 10, every_ms // 10 + 1, len(base))
    return sorted(set((base + jitter).tolist()))
