"""One scrape of one target: its page parsed into points, and the synthetic series of the scrape.

The page is the Prometheus text format or OpenMetrics (by its Content-Type), parsed by
`prometheus_client`'s own parsers. A series keeps the sample's name as Shipboard's metric name
(`http_requests_total`, `http_request_duration_seconds_bucket` with its `le`), its labels as tags,
and the target's `job`, `instance` and static labels; a scraped label of one of those names is
kept as `exported_<name>`, as Prometheus does. A sample without a timestamp gets the scrape's.
Each scrape also writes, for the target, `up` (1, or 0 when it failed), `scrape_duration_seconds`
and `scrape_samples_scraped`. A series without a `host` label gets the target's host (without the
port) as `host`, so a scraped node_exporter sits on the Hosts board like any agent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families
from prometheus_client.samples import Sample, Timestamp

from collector.scrape_config import Target
from storage.records import NS_PER_S, Samples, Series

ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
MAX_SAMPLES = 1_000_000
"""A page with more samples than this is refused whole (`sample_limit` in Prometheus)."""


class ScrapeError(ValueError):
    """Why a page could not be read; `reason` is its /metrics label."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Scraped:
    samples: Samples
    count: int  # samples the page held


def parse_page(text: str, content_type: str, target: Target, scrape_ns: int) -> Scraped:
    """The page's samples as points; ScrapeError when it does not parse."""
    openmetrics = content_type.split(";")[0].strip() == "application/openmetrics-text"
    try:
        # The text parser has no annotations (the OpenMetrics one has).
        families = openmetrics_families(text) if openmetrics else text_families(text)  # type: ignore[no-untyped-call]
        samples = [s for family in families for s in family.samples]
    except (ValueError, TypeError, IndexError, KeyError) as error:
        raise ScrapeError(
            "parse", f"{target.url}: not the {_format(openmetrics)}: {error}"
        ) from None
    if len(samples) > MAX_SAMPLES:
        raise ScrapeError("sample_limit", f"{target.url}: over {MAX_SAMPLES} samples")
    points = Samples.from_points(_points(samples, target, scrape_ns))
    return Scraped(points, len(samples))


def _format(openmetrics: bool) -> str:
    return "OpenMetrics format" if openmetrics else "Prometheus text format"


def _points(
    samples: Iterable[Sample], target: Target, scrape_ns: int
) -> Iterator[tuple[Series, int, float]]:
    own = dict(target.labels)
    host = {"host": target.host}
    for sample in samples:
        if sample.native_histogram is not None:
            continue  # native histograms come by remote write or OTLP, not by a text page
        tags = {(f"exported_{k}" if k in own else k): v for k, v in sample.labels.items()}
        yield (
            Series.of(sample.name, host | tags | own),
            _ts_ns(sample.timestamp, scrape_ns),
            sample.value,
        )


def _ts_ns(timestamp: float | Timestamp | None, scrape_ns: int) -> int:
    if timestamp is None:
        return scrape_ns
    if isinstance(timestamp, Timestamp):
        return timestamp.sec * NS_PER_S + timestamp.nsec
    return scrape_ns if not math.isfinite(timestamp) else round(timestamp * NS_PER_S)


def health(target: Target, scrape_ns: int, up: bool, seconds: float, count: int) -> Samples:
    """The synthetic series of one scrape of `target`."""
    tags = {"host": target.host} | dict(target.labels)
    return Samples.from_points(
        (Series.of(name, tags), scrape_ns, value)
        for name, value in (
            ("up", 1.0 if up else 0.0),
            ("scrape_duration_seconds", seconds),
            ("scrape_samples_scraped", float(count)),
        )
    )
