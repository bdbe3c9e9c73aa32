"""`scrape.yaml`: what Shipboard scrapes, in the shape of Prometheus' `scrape_configs`.

    global: {scrape_interval: 15s, scrape_timeout: 10s}
    scrape_configs:
      - job_name: api
        scrape_interval: 10s
        metrics_path: /metrics
        scheme: http
        authorization: {credentials: s3cret}        # or credentials_file: /etc/api.token
        static_configs:
          - targets: ["127.0.0.1:9100", "api-2:9100"]
            labels: {env: prod}

Defaults are Prometheus': every minute, a 10 s timeout (never longer than the interval),
`/metrics` over http. Fields Shipboard does not know are an error, as in Prometheus, so a
misspelt one is not silently ignored. `load_scrape_config` raises ScrapeConfigError naming the
field (`scrape_configs[0].static_configs[0].targets[1]: ...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from storage import timeparse

_TARGET = re.compile(r"^[A-Za-z0-9.\-_\[\]:]+:\d{1,5}$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TARGETS = 10_000


class ScrapeConfigError(ValueError):
    """The scrape configuration is invalid; the message names the field and what to fix."""


def _duration(text: str) -> str:
    ns = timeparse.parse_duration_ns(text)
    if ns < timeparse.parse_duration_ns("1s"):
        raise ValueError("must be at least 1s")
    return text


def _target(text: str) -> str:
    if not _TARGET.match(text):
        raise ValueError(f"{text!r} is not host:port")
    return text


def _labels(labels: dict[str, str]) -> dict[str, str]:
    for name in labels:
        if not _LABEL.match(name) or name.startswith("__"):
            raise ValueError(f"{name!r} is not a label name ([A-Za-z_][A-Za-z0-9_]*, no __)")
    return labels


Duration = Annotated[str, AfterValidator(_duration)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StaticConfig(_Doc):
    targets: Annotated[list[Annotated[str, AfterValidator(_target)]], Field(max_length=MAX_TARGETS)]
    labels: Annotated[dict[str, str], AfterValidator(_labels)] = {}


class Authorization(_Doc):
    type: Literal["Bearer"] = "Bearer"
    credentials: str | None = None
    credentials_file: str | None = None


class JobDoc(_Doc):
    job_name: Annotated[str, Field(min_length=1, max_length=200)]
    scrape_interval: Duration | None = None
    scrape_timeout: Duration | None = None
    metrics_path: Annotated[str, Field(pattern=r"^/")] = "/metrics"
    scheme: Literal["http", "https"] = "http"
    authorization: Authorization | None = None
    static_configs: list[StaticConfig] = []


class GlobalDoc(_Doc):
    scrape_interval: Duration = "1m"
    scrape_timeout: Duration = "10s"


class ScrapeDoc(_Doc):
    global_: Annotated[GlobalDoc, Field(alias="global")] = GlobalDoc()
    scrape_configs: list[JobDoc] = []


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to scrape, with the labels every series from it carries."""

    job: str
    url: str
    interval_s: float
    timeout_s: float
    labels: tuple[tuple[str, str], ...]  # job, instance and the static labels, sorted
    bearer: str | None = None

    @property
    def host(self) -> str:
        """The target's host, without its port: `db-1` of `db-1:9100`."""
        address = dict(self.labels)["instance"]
        return address.rsplit(":", 1)[0].strip("[]")


def load_scrape_config(path: Path) -> list[Target]:
    """The targets of the file at `path` (none when it does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return parse_scrape_config(text, path.parent)


def parse_scrape_config(text: str, base: Path) -> list[Target]:
    """The targets of a `scrape.yaml` text; `credentials_file` paths are relative to `base`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScrapeConfigError(f"not YAML: {error}") from None
    try:
        doc = ScrapeDoc.model_validate(data or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        where = where[1:] if where.startswith(".") else f"scrape.yaml{where}"
        raise ScrapeConfigError(f"{where}: {first['msg']}") from None
    return _targets(doc, base)


def _targets(doc: ScrapeDoc, base: Path) -> list[Target]:
    targets: list[Target] = []
    names: set[str] = set()
    for i, job in enumerate(doc.scrape_configs):
        where = f"scrape_configs[{i}]"
        if job.job_name in names:
            raise ScrapeConfigError(f"{where}.job_name: {job.job_name!r} is used twice")
        names.add(job.job_name)
        interval = timeparse.parse_duration_ns(job.scrape_interval or doc.global_.scrape_interval)
        timeout = timeparse.parse_duration_ns(job.scrape_timeout or doc.global_.scrape_timeout)
        timeout = min(timeout, interval) if job.scrape_timeout is None else timeout
        if timeout > interval:
            raise ScrapeConfigError(f"{where}.scrape_timeout: longer than its scrape_interval")
        bearer = _bearer(job.authorization, base, f"{where}.authorization")
        for static in job.static_configs:
            for address in static.targets:
                labels = static.labels | {"job": job.job_name, "instance": address}
                targets.append(
                    Target(
                        job=job.job_name,
                        url=f"{job.scheme}://{address}{job.metrics_path}",
                        interval_s=interval / 1e9,
                        timeout_s=timeout / 1e9,
                        labels=tuple(sorted(labels.items())),
                        bearer=bearer,
                    )
                )
    return targets


def _bearer(auth: Authorization | None, base: Path, where: str) -> str | None:
    if auth is None:
        return None
    if auth.credentials is not None and auth.credentials_file is not None:
        raise ScrapeConfigError(f"{where}: credentials or credentials_file, not both")
    if auth.credentials_file is None:
        return auth.credentials
    try:
        return (base / auth.credentials_file).read_text().strip()
    except OSError as error:
        raise ScrapeConfigError(f"{where}.credentials_file: {error.strerror}") from None
