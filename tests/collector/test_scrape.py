"""A scraped page into points: the text format and OpenMetrics by prometheus_client's parsers,
the target's labels, timestamps, and garbage refused with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.scrape import ScrapeError, health, parse_page
from collector.scrape_config import Target
from storage.records import NS_PER_S, Series

TARGET = Target(
    job="api",
    url="http://127.0.0.1:9100/metrics",
    interval_s=15.0,
    timeout_s=10.0,
    labels=(("env", "prod"), ("instance", "127.0.0.1:9100"), ("job", "api")),
)
OWN = {"env": "prod", "instance": "127.0.0.1:9100", "job": "api", "host": "127.0.0.1"}
NOW = 1_700_000_000 * NS_PER_S

TEXT = """# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",method="get"} 1027 1699999990000
http_requests_total{code="500",method="get"} 3
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 5
latency_seconds_bucket{le="+Inf"} 7
latency_seconds_sum 1.5
latency_seconds_count 7
# TYPE temperature gauge
temperature{job="other",instance="x"} -3.5
"""


def points(page) -> dict[Series, tuple[int, float]]:
    samples = page.samples
    return {
        samples.series[i]: (int(t), float(v))
        for i, t, v in zip(samples.index, samples.ts_ns, samples.values, strict=True)
    }


def test_the_text_format() -> None:
    page = parse_page(TEXT, "text/plain; version=0.0.4", TARGET, NOW)
    assert page.count == 7
    assert points(page) == {
        Series.of("http_requests_total", {"code": "200", "method": "get"} | OWN): (
            1_699_999_990 * NS_PER_S,
            1027.0,
        ),
        Series.of("http_requests_total", {"code": "500", "method": "get"} | OWN): (NOW, 3.0),
        Series.of("latency_seconds_bucket", {"le": "0.1"} | OWN): (NOW, 5.0),
        Series.of("latency_seconds_bucket", {"le": "+Inf"} | OWN): (NOW, 7.0),
        Series.of("latency_seconds_sum", OWN): (NOW, 1.5),
        Series.of("latency_seconds_count", OWN): (NOW, 7.0),
        # Scraped labels named as the target's are kept as exported_<name>.
        Series.of("temperature", {"exported_job": "other", "exported_instance": "x"} | OWN): (
            NOW,
            -3.5,
        ),
    }


def test_openmetrics() -> None:
    page = """# TYPE jobs counter
# HELP jobs Jobs run.
jobs_total{queue="a"} 12 1699999999.25
jobs_created{queue="a"} 1699990000 1699999999.25
# TYPE up_since gauge
up_since 5
# EOF
"""
    found = points(parse_page(page, "application/openmetrics-text; version=1.0.0", TARGET, NOW))
    assert found[Series.of("jobs_total", {"queue": "a"} | OWN)] == (
        1_699_999_999 * NS_PER_S + 250_000_000,
        12.0,
    )
    assert found[Series.of("up_since", OWN)] == (NOW, 5.0)


def test_health_series() -> None:
    samples = health(TARGET, NOW, False, 0.25, 0)
    assert {s.metric: float(v) for s, v in zip(samples.series, samples.values, strict=True)} == {
        "up": 0.0,
        "scrape_duration_seconds": 0.25,
        "scrape_samples_scraped": 0.0,
    }
    assert all(dict(s.tags) == OWN for s in samples.series)


@pytest.mark.parametrize(
    ("page", "content_type"),
    [
        ("metric{ 1\n", "text/plain"),
        ("# TYPE a counter\na_total 1\n", "application/openmetrics-text"),  # no # EOF
        ("a b c d\n", "text/plain"),
    ],
)
def test_garbage_is_a_parse_error(page: str, content_type: str) -> None:
    with pytest.raises(ScrapeError) as raised:
        parse_page(page, content_type, TARGET, NOW)
    assert raised.value.reason == "parse"
    assert str(raised.value).startswith("http://127.0.0.1:9100/metrics: not the ")


@given(st.text(max_size=200), st.sampled_from(["text/plain", "application/openmetrics-text"]))
def test_any_page_is_points_or_a_parse_error(page: str, content_type: str) -> None:
    try:
        parsed = parse_page(page, content_type, TARGET, NOW)
    except ScrapeError as error:
        reason = error.reason
    else:
        reason = "ok"
        assert len(parsed.samples) <= parsed.count
    assert reason in ("ok", "parse")
