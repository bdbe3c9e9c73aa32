"""Late points (a backfill after an outage) on a real `shipboard run`: once a write is answered
204, every tier answers with it, exactly, before and after the rollups catch up and across a
`kill -9` between the write and its rollup."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.launcher import wait_for
from tests.running import RunningShipboard

pytestmark = pytest.mark.slow

SERIES = 200
POINTS = 300  # per series, 10 s apart: 50 minutes, 30 hours ago
BODY_LINES = 5_000
STEPS = {"1m": 60, "10m": 600, "1h": 3600}
AGGS = ("count", "sum", "min", "max", "mean", "last")


def backfill(start_s: int) -> tuple[list[bytes], np.ndarray, np.ndarray, np.ndarray]:
    """Line-protocol bodies of SERIES x POINTS points from `start_s`, and their columns."""
    rng = np.random.default_rng(7)
    host = np.repeat(np.arange(SERIES), POINTS)
    ts_s = start_s + np.tile(np.arange(POINTS) * 10, SERIES)
    values = np.round(rng.normal(50, 20, SERIES * POINTS), 3)
    lines = [
        f"late,host=h{h:03d} v={v!r} {t}\n"
        for h, t, v in zip(host.tolist(), ts_s.tolist(), values.tolist(), strict=True)
    ]
    bodies = ["".join(lines[i : i + BODY_LINES]).encode() for i in range(0, len(lines), BODY_LINES)]
    return bodies, host, ts_s, values


Expected = dict[tuple[str, int], dict[str, float]]


def expected(host: np.ndarray, ts_s: np.ndarray, values: np.ndarray, step_s: int) -> Expected:
    """{(host, bucket_ms): {agg: value}} computed with numpy from the raw points."""
    bucket = ts_s - ts_s % step_s
    order = np.lexsort((ts_s, bucket, host))
    host, bucket, values = host[order], bucket[order], values[order]
    first = np.flatnonzero(np.r_[True, (host[1:] != host[:-1]) | (bucket[1:] != bucket[:-1])])
    last = np.r_[first[1:], len(host)] - 1
    count = np.diff(np.r_[first, len(host)]).astype(float)
    sums = np.add.reduceat(values, first)
    columns = {
        "count": count,
        "sum": sums,
        "min": np.minimum.reduceat(values, first),
        "max": np.maximum.reduceat(values, first),
        "mean": sums / count,
        "last": values[last],
    }
    return {
        (f"h{h:03d}", b * 1000): {agg: float(c[i]) for agg, c in columns.items()}
        for i, (h, b) in enumerate(zip(host[first].tolist(), bucket[first].tolist(), strict=True))
    }


def answered(
    server: RunningShipboard, start_s: int, end_s: int, step: str, agg: str
) -> dict[tuple[str, int], float]:
    result = server.query(
        metric="late.v", **{"from": str(start_s), "to": str(end_s)}, step=step, agg=agg
    )
    return {(s["tags"]["host"], ts): value for s in result["series"] for ts, value in s["points"]}


def check_every_tier(
    server: RunningShipboard, columns: list[np.ndarray], start_s: int, end_s: int
) -> None:
    host, ts_s, values = columns
    for step, step_s in STEPS.items():
        want = expected(host, ts_s, values, step_s)
        for agg in AGGS:
            got = answered(server, start_s, end_s, step, agg)
            assert got.keys() == want.keys(), (step, agg)
            for key, value in got.items():
                assert value == pytest.approx(want[key][agg], rel=1e-12), (step, agg, key)


def rolled_up(server: RunningShipboard) -> bool:
    """True once every rollup tier has a watermark (the aggregator has run)."""
    return server.metric_value("shipboard_rollup_lag_1h_seconds") > 0


def post_all(server: RunningShipboard, bodies: list[bytes]) -> None:
    """Send the bodies over two connections at once; every one must be answered 204."""
    statuses: list[int] = []

    def send(part: list[bytes]) -> None:
        statuses.extend(server.post("/write?precision=s", body)[0] for body in part)

    threads = [threading.Thread(target=send, args=(bodies[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [204] * len(bodies)


def clean(server: RunningShipboard) -> bool:
    return all(server.metric_value(f"shipboard_rollup_dirty_{tier}_buckets") == 0 for tier in STEPS)


def test_a_backfill_is_in_every_tier_at_once_and_after_the_rollups(tmp_path: Path):
    server = RunningShipboard(tmp_path / "data", ["--no-agent"]).start()
    try:
        wait_for(lambda: rolled_up(server), timeout_s=30)
        start_s = int(time.time()) - 30 * 3600
        start_s -= start_s % 3600
        bodies, *columns = backfill(start_s)
        post_all(server, bodies)
        end_s = start_s + 2 * 3600
        check_every_tier(server, columns, start_s, end_s)  # right after the last 204
        passes = server.metric_value("shipboard_rollup_duration_seconds_count")
        wait_for(
            lambda: server.metric_value("shipboard_rollup_duration_seconds_count") > passes, 30
        )
        wait_for(lambda: clean(server), timeout_s=60)
        check_every_tier(server, columns, start_s, end_s)  # rolled up again, counted once
        # Older than raw keeps (2 d): straight into the 1 m tier, and into the coarser ones.
        three_days_s = int(time.time()) - 3 * 86400
        status, body = server.post("/write?precision=s", f"old,h=a v=4 {three_days_s}\n".encode())
        assert status == 204, body
        span = {"from": str(three_days_s - 3600), "to": str(three_days_s + 3600)}
        for step in STEPS:
            found = server.query(metric="old.v", **span, step=step, agg="sum")["series"]
            assert [v for s in found for _, v in s["points"]] == [4.0], step
        too_old = f"late,host=h000 v=1 {int(time.time()) - 800 * 86400}\n".encode()
        status, body = server.post("/write?precision=s", too_old)
        assert (status, b"beyond retention policy dropped=1" in body) == (400, True), body
        assert (
            server.metric_value("shipboard_dropped_total", protocol="influx", reason="too_old") == 1
        )
    finally:
        assert server.stop() == 0


def test_late_points_reach_the_rollups_after_a_kill_9_before_their_rollup(tmp_path: Path):
    server = RunningShipboard(tmp_path / "data", ["--no-agent"]).start()
    wait_for(lambda: rolled_up(server), timeout_s=30)
    start_s = int(time.time()) - 30 * 3600
    start_s -= start_s % 3600
    bodies, *columns = backfill(start_s)
    post_all(server, bodies[:2])
    server.stop(signal.SIGKILL)  # well before the next rollup pass, 10 s after the last
    restarted = RunningShipboard(
        server.data_dir, ["--no-agent"], http_port=server.http_port,
        statsd_port=server.statsd_port, graphite_port=server.graphite_port, token=server.token,
    ).start()  # fmt: skip
    try:
        written = [c[: 2 * BODY_LINES] for c in columns]
        end_s = start_s + 2 * 3600
        check_every_tier(restarted, written, start_s, end_s)
        wait_for(lambda: rolled_up(restarted), timeout_s=30)  # a pass since the restart
        wait_for(lambda: clean(restarted), timeout_s=60)
        check_every_tier(restarted, written, start_s, end_s)
    finally:
        assert restarted.stop() == 0


def graphite_lines(start_s: int, path: int) -> bytes:
    """One path's points, 10 s apart from `start_s`: value i at the i-th."""
    return "".join(f"graphite.p{path:03d} {i} {start_s + 10 * i}\n" for i in range(POINTS)).encode()


def count_of(server: RunningShipboard, metric: str, start_s: int, end_s: int, step: str) -> float:
    result = server.query(
        metric=metric, **{"from": str(start_s), "to": str(end_s)}, step=step, agg="count"
    )
    return float(sum(value for s in result["series"] for _, value in s["points"]))


def test_graphite_over_four_connections_is_counted_exactly_in_every_tier(tmp_path: Path):
    server = RunningShipboard(tmp_path / "data", ["--no-agent"]).start()
    try:
        wait_for(lambda: rolled_up(server), timeout_s=30)
        start_s = int(time.time()) - POINTS * 10 - 20
        bodies = [graphite_lines(start_s, path) for path in range(SERIES)]

        def send(part: list[bytes]) -> None:
            with socket.create_connection(("127.0.0.1", server.graphite_port)) as connection:
                for body in part:
                    connection.sendall(body)

        threads = [threading.Thread(target=send, args=(bodies[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        end_s = int(time.time()) + 60
        total = float(SERIES * POINTS)
        wait_for(lambda: count_of(server, "graphite.*", start_s, end_s, "10s") == total)
        for _ in range(3):  # before, while and after the rollups take them in
            for step in ("10s", *STEPS):
                assert count_of(server, "graphite.*", start_s, end_s, step) == total, step
            time.sleep(5)
    finally:
        assert server.stop() == 0
