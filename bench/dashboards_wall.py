"""The dashboards benchmark's wall: a week of 100 hosts' metrics, the deploys, 12 panels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from playwright.sync_api import ViewportSize

from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, finish_deploy, start_deploy
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Rollups, Samples, Series

HOSTS = 100
RACKS = 10
DAYS = 7
STEP_S = 10
BUCKET_S = 600
DEPLOYS = 50
METRICS = (
    ("cpu.user", 30.0, "percent"),
    ("cpu.system", 8.0, "percent"),
    ("cpu.iowait", 2.0, "percent"),
    ("mem.percent", 55.0, "percent"),
    ("mem.used", 8e9, "bytes"),
    ("load.1m", 1.5, ""),
    ("load.5m", 1.4, ""),
    ("disk.used_percent", 60.0, "percent"),
    ("disk.read_bytes_per_s", 4e6, "bytes/s"),
    ("disk.write_bytes_per_s", 2e6, "bytes/s"),
    ("net.recv_bytes_per_s", 3e7, "bytes/s"),
    ("net.sent_bytes_per_s", 1e7, "bytes/s"),
)
PANELS = len(METRICS)  # a panel per metric, three a row
VIEWPORT: ViewportSize = {"width": 1920, "height": 1080}


ALL_DRAWN = """(n) => {
    const plots = [...document.querySelectorAll('.js-plotly-plot')];
    return plots.length >= n && plots.every(p => p._fullLayout && p.querySelector('.main-svg')
        && (n === 1 || (p.data && p.data.length > 1)));
}"""


def wall_series() -> list[Series]:
    return [
        Series.of(
            metric, {"host": f"h{h:03d}", "rack": f"r{h // (HOSTS // RACKS)}", "site": "main"}
        )
        for metric, _, _ in METRICS
        for h in range(HOSTS)
    ]


def _levels(series: list[Series], times_ns: np.ndarray) -> np.ndarray:
    """Each series' value at each time: a daily wave around the metric's level, per host."""
    base = np.repeat([level for _, level, _ in METRICS], HOSTS)[:, None]
    phase = np.tile(np.arange(HOSTS) * 0.37, len(METRICS))[:, None]
    day = 2 * math.pi * (times_ns[None, :] / NS_PER_S) / 86400
    wave = 1 + 0.3 * np.sin(day + phase)
    out: np.ndarray = base * wave
    return out


def seed(data_dir: Path, now_ns: int, *, per_rack: bool = True) -> EmbeddedStore:
    """The week of data, the deploys and the wall (a line per rack, or one line per panel:
    the mean of all hosts); returns the store, open for writing more (and entered by the
    caller, whose writes then get the maintenance thread's checkpoints)."""
    settings = Settings(data_dir=data_dir)
    store = EmbeddedStore(data_dir / "metrics", settings.tiers())
    series = wall_series()
    bucket_ns = BUCKET_S * NS_PER_S
    raw_from = (now_ns - 3600 * NS_PER_S) // bucket_ns * bucket_ns
    buckets = np.arange(raw_from - DAYS * 86400 * NS_PER_S, raw_from, bucket_ns, dtype=np.int64)
    mean = _levels(series, buckets + bucket_ns // 2)
    n = len(buckets)
    spread = 0.05 * mean
    store.write_rollups(
        "10m",
        Rollups(
            series,
            np.repeat(np.arange(len(series), dtype=np.int32), n),
            np.tile(buckets, len(series)),
            (mean - spread).ravel(),
            (mean + spread).ravel(),
            (mean * 60).ravel(),
            np.full(mean.size, 60.0),
            mean.ravel(),
        ),
        raw_from,
    )
    times = np.arange(raw_from, now_ns, STEP_S * NS_PER_S, dtype=np.int64)
    store.write(wall_samples(series, times))
    control = ControlDB.open("", data_dir)
    rng = np.random.default_rng(7)
    starts = np.sort(
        rng.integers(now_ns - DAYS * 86400 * NS_PER_S, now_ns - 600 * NS_PER_S, DEPLOYS)
    )
    for i, start in enumerate(starts.tolist()):
        deploy = DeployStart(f"svc{i % 5}", "prod", f"1.{i}.0", description=f"change {i}")
        deploy_id = start_deploy(control, deploy, who="bench", start_ns=start)
        status = "failed" if i % 10 == 3 else "succeeded"
        finish_deploy(control, str(deploy_id), status=status, end_ns=start + 240 * NS_PER_S)
    control.close()
    group = "rack" if per_rack else "site"
    panels = "\n".join(
        f"      - {{title: {metric}, metric: {metric}, group_by: [{group}], unit: '{unit}'}}"
        for metric, _, unit in METRICS
    )
    rows = "\n".join(
        "  - panels:\n" + "\n".join(panels.splitlines()[i : i + 3]) for i in range(0, PANELS, 3)
    )
    folder = data_dir / "dashboards"
    folder.mkdir()
    (folder / "wall.yaml").write_text(
        f"title: Wall\nannotations: [{{kind: deploy}}]\nrows:\n{rows}\n"
    )
    return store


def wall_samples(series: list[Series], times: np.ndarray) -> Samples:
    values = _levels(series, times)
    return Samples(
        tuple(series),
        np.repeat(np.arange(len(series), dtype=np.int32), len(times)),
        np.tile(times, len(series)),
        values.ravel(),
    )
