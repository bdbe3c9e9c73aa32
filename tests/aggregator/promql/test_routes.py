"""The routes over an embedded store, behind the real auth middleware: a viewer reads by GET
and by POST form bodies alike, answers and errors in Prometheus' JSON shapes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from aggregator.promql import engine
from aggregator.promql.routes import add_prometheus_routes
from annotations.app import ControlPlane, add_auth
from annotations.control.tokens import create_token
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Samples, Series

Client = TestClient[Any, Any]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
T0 = 1_700_000_000  # seconds
API = "/prometheus/api/v1/"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "metrics", Settings().tiers()) as opened:
        points = [
            (
                Series.of("http.requests.count", {"host": host}),
                (T0 + 10 * i) * NS_PER_S,
                float(i * k),
            )
            for i in range(30)
            for host, k in (("a", 1), ("b", 2))
        ]
        opened.write(Samples.from_points(points))
        yield opened


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlPlane]:
    opened = ControlPlane.open("", tmp_path)
    yield opened
    opened.close()


@pytest.fixture
async def client(
    store: EmbeddedStore, control: ControlPlane, aiohttp_client: AiohttpClient
) -> Client:
    app = web.Application()
    add_auth(app, control, anonymous_read=False, ingest_token="")
    add_prometheus_routes(app, store)
    return await aiohttp_client(app)


@pytest.fixture
def viewer(control: ControlPlane) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(control.db, 'grafana', 'viewer')[1]}"}


async def _json(response: Any) -> tuple[int, Any]:
    return response.status, await response.json()


async def test_a_viewer_reads_by_get_and_by_post_form(
    client: Client, viewer: dict[str, str]
) -> None:
    # 0.1 + 0.2 per second, written as Go writes that sum
    params = {"query": "sum(rate(http_requests_count[1m]))", "time": str(T0 + 200)}
    by_get = await _json(await client.get(API + "query", params=params, headers=viewer))
    by_post = await _json(await client.post(API + "query", data=params, headers=viewer))
    assert (
        by_get
        == by_post
        == (
            200,
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": {}, "value": [T0 + 200.0, "0.30000000000000004"]}],
                },
            },
        )
    )
    ranged = {
        "query": 'http_requests_count{host="b"}',
        "start": str(T0),
        "end": str(T0 + 20),
        "step": "10s",
    }
    status, answer = await _json(
        await client.post(API + "query_range", data=ranged, headers=viewer)
    )
    assert status == 200
    assert answer["data"]["result"] == [
        {
            "metric": {"__name__": "http_requests_count", "host": "b"},
            "values": [[T0 + 0.0, "0"], [T0 + 10.0, "2"], [T0 + 20.0, "4"]],
        }
    ]


async def test_a_form_value_wins_over_the_url_as_in_go(
    client: Client, viewer: dict[str, str]
) -> None:
    status, answer = await _json(
        await client.post(API + "query?query=1&time=5", data={"query": "2"}, headers=viewer)
    )
    assert (status, answer["data"]) == (200, {"resultType": "scalar", "result": [5.0, "2"]})


async def test_series_and_labels(client: Client, viewer: dict[str, str]) -> None:
    match = {"match[]": 'http_requests_count{host="a"}'}
    assert await _json(await client.get(API + "series", params=match, headers=viewer)) == (
        200,
        {"status": "success", "data": [{"__name__": "http_requests_count", "host": "a"}]},
    )
    assert (await _json(await client.post(API + "labels", data={}, headers=viewer)))[1]["data"] == [
        "__name__",
        "host",
    ]
    status, answer = await _json(await client.get(API + "label/host/values", headers=viewer))
    assert (status, answer["data"]) == (200, ["a", "b"])
    status, answer = await _json(await client.get(API + "status/buildinfo", headers=viewer))
    assert (status, answer["status"]) == (200, "success")


@pytest.mark.parametrize(
    ("path", "params", "status", "kind", "message"),
    [
        ("query", {"query": "sum("}, 400, "bad_data", 'invalid parameter "query": parse error'),
        ("query", {"query": "x", "time": "soon"}, 400, "bad_data", 'invalid parameter "time"'),
        ("query", {"query": "x[1m:] @ 5"}, 400, "bad_data", "@ modifier on a subquery is not"),
        (
            "query",
            {
                "query": "http_requests_count + ignoring(host) http_requests_count",
                "time": str(T0 + 60),
            },
            422,
            "execution",
            "found duplicate series for the match group",
        ),
        (
            "query_range",
            {"query": "1", "start": "2", "end": "1", "step": "1"},
            400,
            "bad_data",
            "end timestamp",
        ),
        (
            "query_range",
            {"query": "1", "start": "1", "end": "2", "step": "-1"},
            400,
            "bad_data",
            "zero or negative",
        ),
        (
            "query_range",
            {"query": "1", "start": "0", "end": "20000", "step": "1"},
            400,
            "bad_data",
            "11,000",
        ),
        ("series", {}, 400, "bad_data", "no match[] parameter provided"),
        (
            "query",
            {"query": "1", "timeout": "soon"},
            400,
            "bad_data",
            'invalid parameter "timeout"',
        ),
        (
            "query_range",
            {
                "query": "rate(http_requests_count[1m])",
                "start": "1",
                "end": "9",
                "step": "1",
                "timeout": "0",
            },
            503,
            "timeout",
            "query timed out in expression evaluation",
        ),
        ("label/0le/values", {}, 400, "bad_data", 'invalid label name: "0le"'),
        ("query_exemplars", {"query": "rate("}, 400, "bad_data", 'invalid parameter "query"'),
        ("series", {"match[]": "rate(x[5m])"}, 400, "bad_data", "not a series selector"),
    ],
)
async def test_errors_in_prometheus_shape(
    client: Client,
    viewer: dict[str, str],
    path: str,
    params: dict[str, str],
    status: int,
    kind: str,
    message: str,
) -> None:
    got_status, answer = await _json(await client.get(API + path, params=params, headers=viewer))
    assert (got_status, answer["status"], answer["errorType"]) == (status, "error", kind)
    assert message in answer["error"]


async def test_no_token_is_refused(client: Client) -> None:
    assert (await client.get(API + "query", params={"query": "1"})).status == 401
    assert (await client.post(API + "query", data={"query": "1"})).status == 401


async def test_exemplars_are_none(client: Client, viewer: dict[str, str]) -> None:
    params = {"query": "http_requests_count", "start": str(T0), "end": str(T0 + 60)}
    for ask in (client.get(API + "query_exemplars", params=params, headers=viewer),
                client.post(API + "query_exemplars", data=params, headers=viewer)):  # fmt: skip
        assert await _json(await ask) == (200, {"status": "success", "data": []})


async def test_a_query_loading_too_many_samples_is_refused(
    client: Client, viewer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "MAX_SAMPLES", 50)  # the store holds 60 points
    params = {"query": "count_over_time(http_requests_count[10m])", "time": str(T0 + 300)}
    status, answer = await _json(await client.get(API + "query", params=params, headers=viewer))
    assert (status, answer["errorType"]) == (422, "execution")
    assert "too many samples" in answer["error"]
    params["query"] = 'count_over_time(http_requests_count{host="a"}[10m])'
    status, answer = await _json(await client.get(API + "query", params=params, headers=viewer))
    assert (status, answer["data"]["result"][0]["value"][1]) == (200, "30")
