"""docker-compose.victoria.yml, checked without a Docker engine: two vmstorage nodes behind
vminsert and vmselect, started with the flags Shipboard's store needs, and Shipboard nodes whose
settings point at the cluster, with no aggregator (VictoriaMetrics rolls up)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shipboard.server import parts_of
from tests.shipboard.test_compose import ROOT, parse_service

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.victoria.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SHIPBOARD_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)
STORAGE_NODES = ("vmstorage1", "vmstorage2")


def test_vminsert_and_vmselect_reach_both_storage_nodes_on_their_ports():
    for name, port in (("vminsert", 8400), ("vmselect", 8401)):
        command = SERVICES[name]["command"]
        nodes = sorted(a.removeprefix("-storageNode=") for a in command if "-storageNode=" in a)
        assert nodes == [f"{node}:{port}" for node in STORAGE_NODES], name
    for name in (*STORAGE_NODES, "vminsert", "vmselect"):
        assert SERVICES[name]["image"].endswith("-cluster"), name


def test_the_cluster_runs_with_the_flags_shipboards_store_needs():
    assert "-dedup.minScrapeInterval=1ms" in SERVICES["vmselect"]["command"]
    assert "-search.latencyOffset=0s" in SERVICES["vmselect"]["command"]
    for node in STORAGE_NODES:
        assert "-dedup.minScrapeInterval=1ms" in SERVICES[node]["command"]
        assert SERVICES[node]["volumes"]


@pytest.mark.parametrize("name", SHIPBOARD_SERVICES)
def test_each_shipboard_node_points_at_the_cluster(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    args, settings = parse_service(SERVICES[name], monkeypatch, tmp_path)
    assert settings.store == "victoriametrics"
    vm = settings.victoria()
    assert vm.import_url == "http://vminsert:8480/insert/0/prometheus/api/v1/import"
    assert vm.read_url("export") == "http://vmselect:8481/select/0/prometheus/api/v1/export"
    assert settings.vm_latency_offset_s == 0
    if args.command == "run":
        assert "aggregator" not in parts_of(settings.role)
