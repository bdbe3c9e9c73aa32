"""The built-in Hosts board shows a host whichever agent measures it: the Shipboard agent,
Telegraf (line protocol), node_exporter (a scraped page, counters as rates) and collectd
(write_graphite), each written through its own parser into a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from collector.graphite import parse_graphite
from collector.influx_line import parse_influx
from collector.scrape import parse_page
from collector.scrape_config import Target
from dashboards.data import Board, TimeRange
from dashboards.spec import load_catalog
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Samples, Series

NOW_NS = 1_800_000_000 * NS_PER_S
START_NS = NOW_NS - 600 * NS_PER_S
TIMES = range(START_NS, NOW_NS, 10 * NS_PER_S)
HOSTS = load_catalog(None).dashboards["hosts"]


def telegraf(ts: int, i: int) -> bytes:
    return (
        f"cpu,cpu=cpu-total,host=tg-1 usage_user=21,usage_system=4 {ts}\n"
        f"cpu,cpu=cpu0,host=tg-1 usage_user=99,usage_system=1 {ts}\n"
        f"mem,host=tg-1 used_percent=61.5 {ts}\n"
        f"system,host=tg-1 load1=0.75 {ts}\n"
        f"disk,host=tg-1,path=/ used_percent=40 {ts}\n"
        f"diskio,host=tg-1,name=sda write_bytes={1000 * i} {ts}\n"
        f"net,host=tg-1,interface=eth0 bytes_recv={2000 * i},bytes_sent={500 * i} {ts}\n"
    ).encode()


def node_page(i: int) -> str:
    # Two CPUs, each 10 s of which 3 s user, 1 s system, 6 s idle; 100 bytes/s written.
    lines = ["# TYPE node_cpu_seconds_total counter"]
    for cpu in ("0", "1"):
        for mode, share in (("user", 3), ("system", 1), ("idle", 6)):
            lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} {share * i}')
    lines += [
        "node_memory_MemAvailable_bytes 2.5e9",
        "node_memory_MemTotal_bytes 1e10",
        "node_load1 1.5",
        'node_filesystem_avail_bytes{mountpoint="/",fstype="ext4"} 7.5e10',
        'node_filesystem_size_bytes{mountpoint="/",fstype="ext4"} 1e11',
        f'node_disk_written_bytes_total{{device="sda"}} {1000 * i}',
        f'node_network_receive_bytes_total{{device="eth0"}} {3000 * i}',
        f'node_network_receive_bytes_total{{device="lo"}} {9000 * i}',
        f'node_network_transmit_bytes_total{{device="eth0"}} {700 * i}',
    ]
    return "\n".join(lines) + "\n"


def collectd(ts: int) -> bytes:
    seconds = ts // NS_PER_S
    return (
        f"collectd.cd-1.cpu.percent-user 12 {seconds}\n"
        f"collectd.cd-1.cpu.percent-system 2 {seconds}\n"
        f"collectd.cd-1.memory.percent-used 33 {seconds}\n"
        f"collectd.cd-1.load.load.shortterm 0.5 {seconds}\n"
    ).encode()


NODE = Target(
    "node", "http://node-1:9100/metrics", 10.0, 10.0, (("instance", "node-1:9100"), ("job", "node"))
)


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    settings = Settings(data_dir=tmp_path)
    with EmbeddedStore(tmp_path / "metrics", settings.tiers()) as store:
        for i, ts in enumerate(TIMES):
            store.write(parse_influx(telegraf(ts, i), NOW_NS).samples)
            store.write(parse_graphite(collectd(ts), NOW_NS).samples)
            store.write(parse_page(node_page(i), "text/plain", NODE, ts).samples)
            store.write(Samples.from_points((s, ts, v) for s, v in agent_points()))
        yield Board(store, settings.tiers(), None, None, 1500, lambda: NOW_NS)


def agent_points() -> list[tuple[Series, float]]:
    """What the Shipboard agent samples, as it names it."""
    tags = {"host": "sb-1"}
    return [
        (Series.of("cpu.user", tags), 30.0),
        (Series.of("cpu.system", tags), 5.0),
        (Series.of("mem.percent", tags), 50.0),
        (Series.of("load.1m", tags), 2.0),
        (Series.of("disk.used_percent", tags | {"path": "/"}), 20.0),
        (Series.of("disk.write_bytes_per_s", tags), 64.0),
        (Series.of("net.recv_bytes_per_s", tags | {"interface": "eth0"}), 128.0),
        (Series.of("net.sent_bytes_per_s", tags | {"interface": "eth0"}), 32.0),
    ]


def panel_values(board: Board, title: str) -> dict[str, float]:
    """The panel's median value per host over the last 10 minutes, every host selected."""
    [panel] = [p for p in HOSTS.panels() if p.title == title]
    span = TimeRange("-10m", "now", START_NS, NOW_NS)
    result = board.query(panel, {"host": "*"}, span, step_ns=60 * NS_PER_S)
    return {s.tags["host"]: float(np.median(s.values)) for s in result.series}


def test_every_agent_s_hosts_are_the_host_choices(board):
    [variable] = HOSTS.variables
    assert board.tag_values(variable.metrics, variable.tag) == ["cd-1", "node-1", "sb-1", "tg-1"]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("CPU user", {"sb-1": 30.0, "tg-1": 21.0, "node-1": 30.0, "cd-1": 12.0}),
        ("CPU system", {"sb-1": 5.0, "tg-1": 4.0, "node-1": 10.0, "cd-1": 2.0}),
        ("Memory used", {"sb-1": 50.0, "tg-1": 61.5, "node-1": 75.0, "cd-1": 33.0}),
        ("Load (1 min)", {"sb-1": 2.0, "tg-1": 0.75, "node-1": 1.5, "cd-1": 0.5}),
        ("Disk used", {"sb-1": 20.0, "tg-1": 40.0, "node-1": 25.0}),
        ("Disk I/O written", {"sb-1": 64.0, "tg-1": 100.0, "node-1": 100.0}),
        ("Network received", {"sb-1": 128.0, "tg-1": 200.0, "node-1": 300.0}),
        ("Network sent", {"sb-1": 32.0, "tg-1": 50.0, "node-1": 70.0}),
    ],
)
def test_each_panel_shows_each_agent_s_host(board, title, expected):
    assert panel_values(board, title) == pytest.approx(expected)
