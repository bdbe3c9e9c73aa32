"""The stores PromQL is asked over in the tests against Prometheus: embedded, InfluxDB and
VictoriaMetrics (PromQL is Shipboard's own, evaluated over what each store reads back)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipboard.settings import Settings
from storage.base import Store
from storage.embedded import EmbeddedStore
from storage.influx import InfluxConfig, InfluxStore
from storage.victoria import VictoriaStore
from storage.victoria_config import VictoriaConfig
from tests.backends import Influxd
from tests.victoria import STORE_OPTIONS, VictoriaMetrics

KINDS = ["embedded", "influxdb", "victoriametrics"]


def open_store(request: pytest.FixtureRequest, kind: str, home: Path) -> Store:
    """An empty store of `kind` (its server a session fixture), not yet entered."""
    if kind == "embedded":
        return EmbeddedStore(home, Settings().tiers())
    if kind == "influxdb":
        influxd: Influxd = request.getfixturevalue("influxd")
        config = InfluxConfig(influxd.url, api="v1", database=influxd.new_database())
        return InfluxStore(config, Settings().tiers(), home / "spool", listing_ttl_s=0.0)
    server: VictoriaMetrics = request.getfixturevalue("victoria_server")
    server.forget_everything()
    return VictoriaStore(
        VictoriaConfig(url=server.url), Settings().tiers(), home / "spool", **STORE_OPTIONS
    )
