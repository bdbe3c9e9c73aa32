"""The OpenAPI document describes every /api/v1 route the server has, and nothing else."""

from __future__ import annotations

from pathlib import Path

import yaml

from annotations.app import ControlPlane
from collector.service_metrics import ServiceMetrics
from collector.stats import IngestStats
from collector.store_writer import StoreWriter
from shipboard.server import build_http_app
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore

DOCUMENT = Path(__file__).resolve().parents[2] / "shipboard" / "openapi.yaml"


def test_openapi_document_lists_exactly_the_api_routes(tmp_path: Path):
    settings = Settings(data_dir=tmp_path)
    store = EmbeddedStore(tmp_path / "metrics", settings.tiers())
    control = ControlPlane.open("", tmp_path)
    try:
        stats = IngestStats()
        metrics = ServiceMetrics(stats, store.series_count)
        writer = StoreWriter(store, stats, metrics)
        app = build_http_app(settings, store, control, writer, stats, metrics)
        served = {
            (route.method.lower(), route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None
            and route.resource.canonical.startswith(("/api/v1/", "/v1/"))
            and route.method != "HEAD"
        }
        paths = yaml.safe_load(DOCUMENT.read_text())["paths"]
        documented = {(method, path) for path, item in paths.items() for method in item}
        assert served == documented
    finally:
        control.close()
        store.close()
