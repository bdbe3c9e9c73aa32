"""/prometheus/api/v1 end to end: a real `shipboard run` and a real Prometheus take the same
remote-write body; a viewer's token asks Shipboard (GET and POST form bodies) what Prometheus
is asked, and the answers, errors included, are the same. promtool reads a `shipboard run`
whose data dir holds the samples under their dotted names as it reads Prometheus."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from tests.aggregator.promql.dataset import MIN, SPAN_MS, Dataset, build
from tests.aggregator.promql.truth import (
    WRITE_HEADERS,
    Prometheus,
    assert_same_answer,
    http,
    write_body,
)
from tests.running import RunningShipboard

pytestmark = pytest.mark.slow  # starts server processes

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    now_ms = int(time.time()) * 1000
    return build(now_ms - now_ms % MIN - SPAN_MS - 10 * MIN, seed=7)


class Viewer:
    """Shipboard's Prometheus API as a viewer's token reaches it."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.headers = url + "/prometheus/api/v1/", {"Authorization": f"Bearer {token}"}

    def get(self, path: str, params: list[tuple[str, str]]) -> tuple[int, Any]:
        return http(self.url + path + "?" + urllib.parse.urlencode(params), None, self.headers)

    def post(self, path: str, params: list[tuple[str, str]]) -> tuple[int, Any]:
        body = urllib.parse.urlencode(params).encode()
        return http(self.url + path, body, self.headers | FORM)


def started_over(home: Path, dataset: Dataset, *args: str) -> RunningShipboard:
    """A `shipboard run` whose data dir holds the dataset (under its dotted names)."""
    data = home / "data"
    with EmbeddedStore(data / "metrics", Settings().tiers()) as store:
        assert store.write(dataset.samples()).accepted == len(dataset.samples())
    return RunningShipboard(data, ["--no-agent", *args]).start()


@pytest.fixture(scope="module")
def shipboard(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Iterator[Viewer]:
    """A `shipboard run` that took the dataset by remote write, as Prometheus did."""
    data = tmp_path_factory.mktemp("shipboard") / "data"
    data.mkdir()
    running = RunningShipboard(data, ["--no-agent"]).start()
    admin = {"Authorization": f"Bearer {running.token}"}
    body = write_body(dataset.written())
    status, answer = http(running.url + "/api/v1/write", body, WRITE_HEADERS | admin)
    assert status == 204, answer
    token_body = json.dumps({"name": "grafana", "role": "viewer"}).encode()
    status, created = http(
        running.url + "/api/v1/tokens", token_body, admin | {"Content-Type": "application/json"}
    )
    assert status == 201, created
    yield Viewer(running.url, created["token"])
    assert running.stop() == 0, running.output()


def _truth(prometheus: Prometheus, path: str, params: list[tuple[str, str]]) -> tuple[int, Any]:
    return http(f"{prometheus.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")


def test_queries_by_get_and_post_answer_as_prometheus(
    dataset: Dataset, prometheus: Prometheus, shipboard: Viewer
) -> None:
    base = dataset.base_ms / 1000

    def instant(query: str, at: float) -> tuple[str, list[tuple[str, str]]]:
        return "query", [("query", query), ("time", f"{at}")]

    def ranged(query: str, start: float, end: float, step: str) -> tuple[str, Any]:
        return "query_range", [
            ("query", query),
            ("start", f"{start}"),
            ("end", f"{end}"),
            ("step", step),
        ]

    cases = [
        instant("sum by (service) (rate(http_requests_count[5m]))", base + 1200),
        instant("histogram_quantile(0.5, rate(latency_seconds_bucket[3m]))", base + 900.5),
        instant("node_temp", base + 1799 + 300),
        instant("1 + 1", base),
        ranged("increase(jobs_total[5m])", base, base + 1800, "1m"),
        ranged("topk(2, node_temp)", base - 60, base + 2400, "45"),
    ]
    for path, params in cases:
        status, truth = _truth(prometheus, path, params)
        assert status == 200, truth
        for ask in (shipboard.get, shipboard.post):
            status, answer = ask(path, params)
            assert status == 200, answer
            assert_same_answer(f"{ask.__name__} {params}", answer, truth)


def test_series_and_labels_answer_as_prometheus(
    dataset: Dataset, prometheus: Prometheus, shipboard: Viewer
) -> None:
    window = [("start", f"{dataset.base_ms / 1000}"), ("end", f"{dataset.base_ms / 1000 + 1800}")]
    cases = [
        ("series", [("match[]", 'http_requests_count{service="web"}'), ("match[]", "jobs_total")]),
        ("series", [("match[]", '{__name__=~"node_.*"}'), *window]),
        ("labels", []),
        ("labels", [("match[]", "latency_seconds_bucket")]),
        ("label/__name__/values", []),
        ("label/host/values", [("match[]", "node_temp"), *window]),
        ("label/le/values", []),
        ("query_exemplars", [("query", "node_temp"), *window]),
    ]
    for path, params in cases:
        status, truth = _truth(prometheus, path, params)
        assert status == 200, truth
        asks = [shipboard.get] + ([shipboard.post] if path in ("series", "labels") else [])
        for ask in asks:
            status, answer = ask(path, params)
            assert status == 200, (path, answer)
            assert answer["status"] == "success"
            if path == "series":
                key = lambda labels: sorted(labels.items())  # noqa: E731
                assert sorted(answer["data"], key=key) == sorted(truth["data"], key=key)
            else:
                assert answer["data"] == truth["data"], (path, params)


def test_errors_have_prometheus_shapes_and_statuses(
    dataset: Dataset, prometheus: Prometheus, shipboard: Viewer
) -> None:
    at = ("time", f"{dataset.base_ms / 1000 + 600}")
    window = [("start", "100"), ("end", "200")]
    cases = [
        ("query", [("query", "sum(")]),
        ("query", [("query", "rate(node_temp)")]),
        ("query", [("query", "node_temp"), ("time", "yesterday")]),
        ("query", [("query", "http_requests_count + ignoring(host) http_requests_count"), at]),
        ("query_range", [("query", "node_temp"), ("start", "200"), ("end", "100"), ("step", "1")]),
        ("query_range", [("query", "node_temp"), *window, ("step", "0")]),
        ("query_range", [("query", "node_temp"), *window, ("step", "later")]),
        ("query_range", [("query", "node_temp"), ("start", "0"), ("end", "100000"), ("step", "1")]),
        ("query_range", [("query", "node_temp[5m]"), *window, ("step", "10")]),
        ("series", []),
        ("series", [("match[]", "sum(x)")]),
        ("label/0le/values", []),
        ("query_exemplars", [("query", "sum(")]),
    ]
    for path, params in cases:
        status, truth = _truth(prometheus, path, params)
        assert truth["status"] == "error", (path, params, truth)
        answer_status, answer = shipboard.get(path, params)
        assert (answer_status, answer["errorType"]) == (status, truth["errorType"]), (
            path,
            params,
            answer,
            truth,
        )
        assert answer["error"], answer


def test_unsupported_promql_is_refused_by_name(shipboard: Viewer) -> None:
    for query, named in [
        ("rate(x[5m:1m] @ 5)", "@ modifier"),
        ("holt_winters(x[5m], 0.5, 0.5)", "holt_winters"),
        ("histogram_fraction(0, 0.5, x)", "histogram_fraction"),
        ("limitk(1, x)", "limitk"),
    ]:
        status, answer = shipboard.get("query", [("query", query)])
        assert status == 400, answer
        assert answer["errorType"] == "bad_data"
        assert named in answer["error"], answer


def test_metadata_buildinfo_and_tokens(shipboard: Viewer) -> None:
    assert shipboard.get("metadata", []) == (200, {"status": "success", "data": {}})
    status, info = shipboard.get("status/buildinfo", [])
    assert status == 200
    assert info["data"]["version"].count(".") == 2
    status, _ = http(shipboard.url + "query?query=1", None, {})
    assert status == 401
    status, _ = http(shipboard.url + "query", b"query=1", FORM)
    assert status == 401


def _promtool(*args: str) -> Any:
    done = subprocess.run(["promtool", "query", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _sorted(result: Any) -> Any:
    return (
        sorted(result, key=lambda e: json.dumps(e, sort_keys=True))
        if isinstance(result, list)
        else result
    )


def test_promtool_reads_shipboard_as_prometheus(
    tmp_path: Path, dataset: Dataset, prometheus: Prometheus
) -> None:
    """promtool (which has no token flag) against a Shipboard with --anonymous-read."""
    running = started_over(tmp_path, dataset, "--anonymous-read")
    try:
        base = dataset.base_ms // 1000
        window = [f"--start={base}", f"--end={base + 1800}"]
        for args in [
            [
                "instant",
                "-o",
                "json",
                f"--time={base + 600}",
                "{server}",
                "rate(http_requests_count[2m])",
            ],
            ["range", "-o", "json", *window, "--step=1m", "{server}", "sum(node_temp)"],
            ["series", "-o", "json", "--match=jobs_total", "--match=node_temp", "{server}"],
            ["labels", "-o", "json", "{server}", "host"],
        ]:
            ours = _promtool(*(a.replace("{server}", running.url + "/prometheus") for a in args))
            truth = _promtool(*(a.replace("{server}", prometheus.url) for a in args))
            assert _sorted(ours) == _sorted(truth), args
            assert ours, args
    finally:
        assert running.stop() == 0, running.output()
