"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the file parses, every
Shipboard service runs a real `shipboard` command, every setting it names exists."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.relay import parse_address
from shipboard.cli import build_parser, settings_from
from shipboard.server import parts_of
from shipboard.settings import Settings

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SHIPBOARD_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)


def test_the_topology_is_influxdb_postgresql_a_relay_two_collectors_and_one_of_each_role():
    roles = {
        name: SERVICES[name]["command"][2]
        for name in SHIPBOARD_SERVICES
        if SERVICES[name]["command"][0] == "run"
    }
    assert sorted(roles.values()) == ["aggregator", "api", "collector", "collector", "dashboards"]
    assert SERVICES["influxdb"]["image"].startswith("influxdb:2.")
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["relay"]["command"][0] == "relay"


def parse_service(
    service: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[argparse.Namespace, Settings]:
    """The service's command as `shipboard` parses it, and the settings it runs with."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, str(value))
    args = build_parser().parse_args(service["command"])
    return args, settings_from(args)


@pytest.mark.parametrize("name", SHIPBOARD_SERVICES)
def test_each_service_command_parses_with_the_shipboard_parser_and_its_settings_load(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    args, settings = parse_service(SERVICES[name], monkeypatch, tmp_path)
    assert settings.store == "influxdb"
    assert settings.control_db.startswith("postgresql://")
    assert settings.influx_url == "http://influxdb:8086"
    if args.command == "run":
        assert parts_of(settings.role) < parts_of("all")


@pytest.mark.parametrize("name", SHIPBOARD_SERVICES)
def test_every_shipboard_variable_names_a_setting(name: str):
    variables = [key for key in SERVICES[name]["environment"] if key.startswith("SHIPBOARD_")]
    assert variables
    unknown = [
        v for v in variables if v.removeprefix("SHIPBOARD_").lower() not in Settings.model_fields
    ]
    assert not unknown


def test_influxdb_is_set_up_with_the_org_bucket_and_token_shipboard_uses():
    influx = SERVICES["influxdb"]["environment"]
    shipboard = SERVICES["api"]["environment"]
    assert influx["DOCKER_INFLUXDB_INIT_ORG"] == shipboard["SHIPBOARD_INFLUX_ORG"]
    assert influx["DOCKER_INFLUXDB_INIT_BUCKET"] == shipboard["SHIPBOARD_INFLUX_BUCKET"]
    assert influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == shipboard["SHIPBOARD_INFLUX_TOKEN"]
    postgres = SERVICES["postgres"]["environment"]
    user, password, db = (
        postgres[k] for k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")
    )
    assert shipboard["SHIPBOARD_CONTROL_DB"] == f"postgresql://{user}:{password}@postgres:5432/{db}"


def test_the_relay_forwards_to_each_collector_statsd_port():
    command = SERVICES["relay"]["command"]
    nodes = [command[i + 1] for i, arg in enumerate(command) if arg == "--node"]
    collectors = sorted(
        n for n in SHIPBOARD_SERVICES if SERVICES[n]["command"][2:3] == ["collector"]
    )
    assert sorted(parse_address(node)[0] for node in nodes) == collectors
    assert {parse_address(node)[1] for node in nodes} == {Settings().statsd_port}


@pytest.mark.parametrize("file", ["docker-compose.yml", "docker-compose.victoria.yml"])
def test_every_service_has_a_health_check_and_its_volumes_are_declared(file: str):
    compose = yaml.safe_load((ROOT / file).read_text())
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in declared, (name, volume)
    stateful = {"postgres", "collector1", "collector2"}
    assert all(compose["services"][name].get("volumes") for name in stateful)


def test_the_dockerfile_installs_the_project_and_runs_the_shipboard_command():
    text = (ROOT / "Dockerfile").read_text()
    assert "RUN pip install ." in text
    assert 'ENTRYPOINT ["shipboard"]' in text
    for package in ("shipboard", "collector", "aggregator", "storage", "annotations", "dashboards"):
        assert f"COPY {package} {package}" in text
    assert "/healthz" in text
