"""The one settings object: every knob of Shipboard, from arguments, `SHIPBOARD_*`, `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.records import NS_PER_S, RAW, Tier
from storage.timeparse import parse_duration_ns
from storage.victoria_config import VictoriaConfig


def flag(name: str = "", *, help: str = "", repeat: bool = False) -> dict[str, Any]:
    """How a field is a command-line flag where the defaults do not fit: its `name` (default
    `--field-name`, a `_s` unit dropped; a bool that defaults on is `--no-field-name`), its
    `help` (default the description) and whether it is given once per value (`repeat`;
    otherwise a tuple is comma separated)."""
    return {"flag": name, "flag_help": help, "flag_repeat": repeat}


NO_FLAG: dict[str, Any] = {"flag": None}  # no flag on the settings' commands


class Settings(BaseSettings):
    """Shipboard's settings. Precedence: command-line argument, environment, `.env`, default.

    Every field is a flag of the commands that take settings (shipboard/cli.py reads the
    name, type, default and description here; `flag(...)` where those do not fit), so a new
    setting is this one edit and a line of README's table."""

    model_config = SettingsConfigDict(
        env_prefix="SHIPBOARD_", env_file=".env", frozen=True, extra="ignore"
    )

    data_dir: Path = Field(Path("shipboard-data"), description="Where the store and state live.")
    http_host: str = Field("127.0.0.1", description="Address of the HTTP API and ingest.")
    http_port: int = Field(8080, description="Port of the HTTP API and InfluxDB-style ingest.")
    ingest_host: str = Field("127.0.0.1", description="Address of the StatsD and Graphite ports.")
    statsd_port: int = Field(8125, description="StatsD port, UDP and TCP (0 turns it off).")
    graphite_port: int = Field(2003, description="Graphite plaintext TCP port (0 turns it off).")
    dash_port: int = Field(8050, description="Port of the dashboards.")
    flush_interval_s: float = Field(10.0, gt=0, description="StatsD aggregation interval.")
    percentiles: tuple[float, ...] = Field(
        (90.0, 95.0, 99.0), description="Timer percentiles, as `.pNN` series."
    )
    idle_flushes: int = Field(
        5, ge=0, description="Flushes an idle counter, timer or set still reports before it stops."
    )
    max_body_bytes: int = Field(
        25 * 1024 * 1024,
        gt=0,
        description="Largest HTTP write body.",
        json_schema_extra=flag("--max-body"),
    )
    max_series: int = Field(
        1_000_000,
        gt=0,
        description=(
            "Live series kept at most (one whose every point aged out stops counting); new ones "
            "refused."
        ),
    )
    max_points: int = Field(1500, gt=0, description="Points per series a query returns at most.")
    retention_raw: str = Field("2d", description="How long raw points are kept.")
    retention_1m: str = Field("14d", description="How long 1-minute rollups are kept.")
    retention_10m: str = Field("90d", description="How long 10-minute rollups are kept.")
    retention_1h: str = Field("730d", description="How long 1-hour rollups are kept.")
    agent: bool = Field(
        True,
        description="Run the host agent for this host inside `run`.",
        json_schema_extra=flag(help="Do not run the host agent inside `run`."),
    )
    agent_interval_s: float = Field(10.0, gt=0, description="How often the host agent samples.")
    uvloop: bool = Field(
        True,
        description="Use uvloop's event loop (measured faster).",
        json_schema_extra=flag(help="Use asyncio's default event loop."),
    )
    log_level: str = Field("INFO", description="Logging level.")
    control_db: str = Field(
        "", description="Control-plane DB: empty for SQLite in the data dir, or postgresql://..."
    )
    anonymous_read: bool = Field(
        False, description="Let requests without a token read (wall screens)."
    )
    ingest_token: str = Field("", description="Token that HTTP ingest requires (empty: none).")
    token: str = Field(
        "", description="API token the `shipboard` commands send.", json_schema_extra=NO_FLAG
    )
    public_url: str = Field("", description="Public URL of the dashboards, for links.")
    notify: tuple[str, ...] = Field(
        (),
        description="Where deploys, flag changes and notes are announced:"
        " `irc://nick[:password]@host:port/#chan?tls=1`, `https://…` (Slack-style webhook),"
        " `json+https://…` (generic JSON webhook), `alertmanager+https://…?group_wait=30s`"
        " (alerts only, Alertmanager's payload); `NAME=URL` names a target for rules' notify.",
        json_schema_extra=flag(repeat=True),
    )
    webhook_allowlist: tuple[str, ...] = Field(
        ("hooks.slack.com",),
        description="Hosts webhook targets may name (`*.example.com` allows its subdomains).",
    )
    notify_max_tries: int = Field(8, ge=1, description="Tries per announcement before dropping.")
    notify_retry_s: float = Field(
        2.0, gt=0, description="Wait before the first retry; doubles each try, up to 5 min."
    )
    notify_timeout_s: float = Field(10.0, gt=0, description="Time one delivery try may take.")
    rules_dir: Path | None = Field(
        None,
        description="Where the alert rule files (*.yaml) are (default `<data dir>/rules`).",
    )
    scrape_config: Path | None = Field(
        None,
        description="The Prometheus-style scrape configuration, reloaded when it changes"
        " (default `<data dir>/scrape.yaml`; without the file nothing is scraped).",
    )
    rules_interval_s: float = Field(
        15.0, gt=0, description="How often an alert rule without its own `interval` is evaluated."
    )
    verify_after_s: float = Field(
        900.0,
        gt=0,
        description="How long after a deploy finished its verdict is reached, when the deploy"
        " names no `verify_after`.",
    )
    role: Literal["all", "collector", "api", "dashboards", "aggregator"] = Field(
        "all",
        description="Which parts `run` starts: all, collector, api, dashboards, aggregator.",
        json_schema_extra=NO_FLAG,  # `run` alone takes it, with its choices (shipboard/cli.py)
    )
    store: str = Field(
        "embedded",
        pattern="^(embedded|influxdb|victoriametrics)$",
        description="Metric store: embedded, influxdb, victoriametrics.",
    )
    influx_url: str = Field("http://127.0.0.1:8086", description="InfluxDB's URL (store influxdb).")
    influx_api: str = Field(
        "v2", pattern="^(v1|v2)$", description="InfluxDB write API: v2 (token) or v1 (user)."
    )
    influx_token: str = Field("", description="InfluxDB API token (v2).")
    influx_org: str = Field("", description="InfluxDB organization (v2).")
    influx_bucket: str = Field("shipboard", description="InfluxDB bucket (v2).")
    influx_user: str = Field("", description="InfluxDB user (v1).")
    influx_password: str = Field("", description="InfluxDB password (v1).")
    influx_db: str = Field("shipboard", description="InfluxDB database (v1).")
    vm_url: str = Field(
        "", description="VictoriaMetrics single node's URL (store victoriametrics)."
    )
    vm_insert_url: str = Field("", description="A VictoriaMetrics cluster's vminsert URL.")
    vm_select_url: str = Field("", description="A VictoriaMetrics cluster's vmselect URL.")
    vm_tenant: str = Field(
        "0", description="VictoriaMetrics cluster tenant: accountID[:projectID]."
    )
    vm_latency_offset_s: float = Field(
        30.0,
        ge=0,
        description="VictoriaMetrics' -search.latencyOffset: rollups of newer buckets come from"
        " raw points.",
    )
    spool_max_bytes: int = Field(
        1 << 30,
        gt=0,
        description="Disk the spool may use while InfluxDB or VictoriaMetrics is away; then 503.",
    )

    @field_validator("retention_raw", "retention_1m", "retention_10m", "retention_1h")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        parse_duration_ns(value)
        return value

    @model_validator(mode="after")
    def _check_victoria(self) -> Settings:
        if self.store == "victoriametrics":
            self.victoria()  # says what is missing or malformed
        return self

    def victoria(self) -> VictoriaConfig:
        """Where VictoriaMetrics is (store victoriametrics)."""
        return VictoriaConfig(
            url=self.vm_url,
            insert_url=self.vm_insert_url,
            select_url=self.vm_select_url,
            tenant=self.vm_tenant,
        )

    def rule_dirs(self) -> tuple[Path, ...]:
        """Where the alert rules are read from: `rules_dir`, by default `<data dir>/rules`."""
        return (self.data_dir / "rules" if self.rules_dir is None else self.rules_dir,)

    def scrape_path(self) -> Path:
        return self.data_dir / "scrape.yaml" if self.scrape_config is None else self.scrape_config

    def tiers(self) -> tuple[Tier, ...]:
        """Raw plus the rollup tiers, finest first."""

        ns = parse_duration_ns
        return (
            Tier(RAW, 0, ns(self.retention_raw)),
            Tier("1m", 60 * NS_PER_S, ns(self.retention_1m)),
            Tier("10m", 600 * NS_PER_S, ns(self.retention_10m)),
            Tier("1h", 3600 * NS_PER_S, ns(self.retention_1h)),
        )
