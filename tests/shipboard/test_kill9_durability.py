"""Every point acknowledged with 204 survives `kill -9` of `shipboard run`."""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.running import RunningShipboard

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

WRITERS = 4
LINES_PER_BODY = 200


def _writer(url: str, writer: int, stop: threading.Event, acked: list[int]) -> None:
    """Posts bodies of distinct timestamps until the server dies; records what got a 204."""
    batch = 0
    base_s = int(time.time()) - 36 * 3600  # inside the raw tier's retention
    while not stop.is_set():
        first = base_s + batch * LINES_PER_BODY
        body = "".join(
            f"durable,writer=w{writer} v={first + i} {first + i}\n" for i in range(LINES_PER_BODY)
        ).encode()
        request = urllib.request.Request(url + "/write?precision=s", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 204:
                    acked.extend(range(first, first + LINES_PER_BODY))
        except (urllib.error.URLError, OSError):
            return
        batch += 1


def test_acknowledged_points_survive_kill_9_and_the_store_reopens(tmp_path: Path):
    server = RunningShipboard(tmp_path / "data", ["--no-agent"]).start()
    stop = threading.Event()
    acked: list[list[int]] = [[] for _ in range(WRITERS)]
    threads = [
        threading.Thread(target=_writer, args=(server.url, w, stop, acked[w]))
        for w in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2.5)
    server.stop(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join(15)
    assert all(len(a) > LINES_PER_BODY for a in acked), [len(a) for a in acked]

    restarted = RunningShipboard(
        server.data_dir, ["--no-agent", "--max-points", "1000000"], http_port=server.http_port,
        statsd_port=server.statsd_port, graphite_port=server.graphite_port, token=server.token,
    ).start()  # fmt: skip
    try:
        for writer in range(WRITERS):
            expected = acked[writer]
            result = restarted.query(
                metric="durable.v",
                tags=f"writer:w{writer}",
                **{"from": str(min(expected)), "to": str(max(expected) + 1)},
                step="1s",
                agg="count",
            )
            (series,) = result["series"]
            stored = {int(ts // 1000) for ts, _ in series["points"]}
            missing = set(expected) - stored
            assert not missing, f"writer {writer}: {len(missing)} acknowledged points lost"
        # New writes still work after the recovery.
        status, _ = restarted.post("/write", b"durable_after v=1\n")
        assert status == 204
    finally:
        assert restarted.stop() == 0
