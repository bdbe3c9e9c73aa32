"""scrape.yaml: Prometheus' scrape_configs shape, its defaults, and errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from collector.scrape_config import (
    ScrapeConfigError,
    Target,
    load_scrape_config,
    parse_scrape_config,
)

FULL = """
global: {scrape_interval: 15s, scrape_timeout: 5s}
scrape_configs:
  - job_name: api
    scrape_interval: 10s
    metrics_path: /stats/metrics
    authorization: {credentials_file: api.token}
    static_configs:
      - targets: ["127.0.0.1:9100", "api-2:9100"]
        labels: {env: prod}
  - job_name: node
    scheme: https
    static_configs: [{targets: ["db-1:9100"]}]
"""


def test_a_full_file(tmp_path: Path) -> None:
    (tmp_path / "api.token").write_text("s3cret\n")
    api_1, api_2, node = parse_scrape_config(FULL, tmp_path)
    assert api_1 == Target(
        job="api",
        url="http://127.0.0.1:9100/stats/metrics",
        interval_s=10.0,
        timeout_s=5.0,
        labels=(("env", "prod"), ("instance", "127.0.0.1:9100"), ("job", "api")),
        bearer="s3cret",
    )
    assert api_2.url == "http://api-2:9100/stats/metrics"
    assert (node.url, node.interval_s, node.timeout_s, node.bearer) == (
        "https://db-1:9100/metrics",
        15.0,
        5.0,
        None,
    )


def test_prometheus_defaults_and_a_timeout_no_longer_than_the_interval(tmp_path: Path) -> None:
    text = "scrape_configs: [{job_name: a, static_configs: [{targets: ['h:1']}]}]"
    [target] = parse_scrape_config(text, tmp_path)
    assert (target.interval_s, target.timeout_s) == (60.0, 10.0)
    short = (
        "scrape_configs: [{job_name: a, scrape_interval: 2s, static_configs: [{targets: ['h:1']}]}]"
    )
    assert parse_scrape_config(short, tmp_path)[0].timeout_s == 2.0


def test_no_file_no_targets(tmp_path: Path) -> None:
    assert load_scrape_config(tmp_path / "scrape.yaml") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scrape_configs: [{job_name: a, static_configs: [{targets: ['nohost']}]}]",
         "scrape_configs[0].static_configs[0].targets[0]: Value error, 'nohost' is not host:port"),
        ("scrape_configs: [{job_name: a, scrape_intervall: 1m}]",
         "scrape_configs[0].scrape_intervall: Extra inputs are not permitted"),
        ("scrape_configs: [{job_name: a, scrape_interval: 5s, scrape_timeout: 10s}]",
         "scrape_configs[0].scrape_timeout: longer than its scrape_interval"),
        ("scrape_configs: [{job_name: a}, {job_name: a}]",
         "scrape_configs[1].job_name: 'a' is used twice"),
        ("scrape_configs: [{job_name: a, scrape_interval: soon}]",
         "scrape_configs[0].scrape_interval: Value error"),
        ("scrape_configs: [{job_name: a, static_configs: [{targets: ['h:1'], labels: {__x: y}}]}]",
         "scrape_configs[0].static_configs[0].labels: Value error, '__x' is not a label name"),
        ("scrape_configs: [{job_name: a, authorization: {credentials_file: nope}}]",
         "scrape_configs[0].authorization.credentials_file: No such file or directory"),
        ("[1, 2", "not YAML"),
    ],
)  # fmt: skip
def test_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ScrapeConfigError) as raised:
        parse_scrape_config(text, tmp_path)
    assert str(raised.value).startswith(message)


def targets_or_error(text: str) -> list[Target] | str:
    try:
        return parse_scrape_config(text, Path("/nonexistent"))
    except ScrapeConfigError as error:
        return str(error)


@given(st.text(max_size=300))
def test_any_text_is_targets_or_a_clear_error(text: str) -> None:
    found = targets_or_error(text)
    if isinstance(found, str):  # "<the field>: <what is wrong>"
        assert found.startswith("not YAML") or ": " in found
    else:
        assert all(t.url.startswith("http") for t in found)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.just("1s"),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
job_keys = st.sampled_from(
    ["job_name", "scrape_interval", "scrape_timeout", "metrics_path", "scheme",
     "authorization", "static_configs", "targets", "labels", "credentials"]
)  # fmt: skip


@pytest.mark.slow
@given(st.lists(st.dictionaries(job_keys, values, max_size=5), max_size=3))
def test_any_shape_of_jobs_is_targets_or_a_clear_error(jobs: list[dict[str, object]]) -> None:
    found = targets_or_error(yaml.safe_dump({"scrape_configs": jobs}))
    assert isinstance(found, list) or found.startswith("scrape_configs")
