"""`series`, `labels` and `label/<name>/values` with `start` and `end` answer as Prometheus does:
the same samples in a real Prometheus (two groups of series backfilled into blocks of their own,
a third remote-written into its head) and in each store, the same windows asked of both.

Prometheus decides by chunk (`series`) and by block or head (`labels`, `label/<name>/values`),
Shipboard by point: each group's series share their times, every window that touches a group
holds points of all its series, and the groups lie in separate 2 h blocks, so both answer
alike. Windows cover one group, several, none (between, before), their exact first and last
points, a missing bound, or end before start."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from multidict import MultiDict

from aggregator.promql.params import BadParam
from aggregator.promql.routes import ApiError, label_names, label_values, series
from shipboard.settings import Settings
from storage.base import StoreReader
from storage.records import Series
from tests.aggregator.promql.dataset import MIN, Dataset, S
from tests.aggregator.promql.truth import Prometheus
from tests.backends import QUERY_BACKENDS, StoreOpener

pytestmark = pytest.mark.slow  # starts a Prometheus server

HOUR = 60 * MIN
BLOCK = 2 * HOUR  # promtool's block range, on 2 h boundaries


def _group(first_ms: int, members: list[Series]) -> list[tuple[Series, list[int], list[float]]]:
    """`members` with points every 15 s for 40 minutes from `first_ms`, all at the same times."""
    ts = list(range(first_ms, first_ms + 40 * MIN, 15 * S))
    return [(one, ts, [float(i + n) for n in range(len(ts))]) for i, one in enumerate(members)]


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """Groups A and B in consecutive 2 h blocks, 80 minutes apart; group C recent."""
    now_ms = int(time.time()) * 1000
    blocks_at = now_ms - now_ms % BLOCK - 3 * BLOCK
    recent = now_ms - now_ms % MIN - 45 * MIN
    a = _group(blocks_at + 10 * MIN, [
        Series.of("http.requests.count", {"service": "web", "host": "a"}),
        Series.of("node.temp", {"host": "a", "service.name": "infra"}),
        Series.of("jobs_total", {"queue": "mail"}),
    ])  # fmt: skip
    b = _group(blocks_at + BLOCK + 10 * MIN, [
        Series.of("http.requests.count", {"service": "db", "host": "b"}),
        Series.of("node.temp", {"host": "b", "service.name": "storage"}),
        Series.of("latency_seconds_bucket", {"service": "db", "le": "0.5"}),
    ])  # fmt: skip
    c = _group(recent, [
        Series.of("http.requests.count", {"service": "web", "host": "c"}),
        Series.of("disk.free", {"host": "c", "mount": "/data"}),
    ])  # fmt: skip
    return Dataset(blocks_at, a + b + c)


def _blocks_and_head(dataset: Dataset) -> tuple[Dataset, Dataset]:
    head_from = dataset.base_ms + 2 * BLOCK
    early = [s for s in dataset.series if s[1][0] < head_from]
    late = [s for s in dataset.series if s[1][0] >= head_from]
    return Dataset(dataset.base_ms, early), Dataset(head_from, late)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Iterator[Prometheus]:
    """Groups A and B backfilled into blocks, group C remote-written into the head."""
    blocks, head = _blocks_and_head(dataset)
    running = Prometheus(tmp_path_factory.mktemp("prometheus"))
    running.backfill(blocks.written())
    running.start()
    running.write(head.written())
    yield running
    running.stop()


@pytest.fixture(params=QUERY_BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, dataset: Dataset
) -> Iterator[StoreReader]:
    opener = StoreOpener(request, request.param, tmp_path, Settings().tiers())
    opened = opener()
    assert opened.write(dataset.samples()).accepted == len(dataset.samples())
    yield opened
    opener.close()


def windows(dataset: Dataset) -> list[tuple[int | None, int | None]]:
    """(start, end) in ms, None for a missing bound."""
    base = dataset.base_ms
    a_last = max(dataset.series[0][1])
    b_first = min(dataset.series[3][1])
    c_first = min(dataset.series[6][1])
    return [
        (base + 20 * MIN, base + 30 * MIN),  # A
        (base + BLOCK + 15 * MIN, base + BLOCK + 45 * MIN),  # B
        (base + 30 * MIN, base + BLOCK + 30 * MIN),  # A and B
        (base + HOUR, base + BLOCK),  # between A and B: none
        (base + HOUR, None),  # B and C
        (None, base + HOUR),  # A
        (c_first + 5 * MIN, c_first + 10 * MIN),  # C, in Prometheus' head
        (base - BLOCK, base),  # before everything
        (a_last, b_first),  # A's last point and B's first: both
        (a_last + 1, b_first - 1),  # just past them: none
        (base + BLOCK + 30 * MIN, base + 20 * MIN),  # end before start
        (base + 20 * MIN, c_first + 5 * MIN),  # all
        (None, None),  # every series, as listed
    ]


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


def _bounds(start: int | None, end: int | None) -> list[tuple[str, str]]:
    given = [("start", start), ("end", end)]
    return [(name, _seconds(ms)) for name, ms in given if ms is not None]


ASKS: list[tuple[str, list[tuple[str, str]]]] = [
    ("series", [("match[]", '{__name__=~".+"}')]),
    ("series", [("match[]", "http_requests_count")]),
    ("series", [("match[]", "node_temp"), ("match[]", '{service="db"}')]),
    ("labels", []),
    ("labels", [("match[]", "http_requests_count")]),
    ("label/host/values", []),
    ("label/host/values", [("match[]", "node_temp")]),
    ("label/__name__/values", []),
    ("label/service_name/values", []),
    ("label/service/values", [("match[]", '{__name__=~"http_.*"}')]),
]


def ours(store: StoreReader, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    """The answer of `path`, as Shipboard's API would serve it."""
    asked = MultiDict(params)
    try:
        if path == "series":
            data = series(store, asked)
        elif path == "labels":
            data = label_names(store, asked)
        else:
            data = label_values(store, asked, path.split("/")[1])
    except BadParam as error:
        return {"status": "error", "errorType": "bad_data", "error": str(error)}
    except ApiError as error:
        return {"status": "error", "errorType": error.kind, "error": str(error)}
    answer: dict[str, Any] = orjson.loads(orjson.dumps({"status": "success", "data": data}))
    return answer


def _sorted(answer: dict[str, Any]) -> list[Any]:
    return sorted(answer["data"], key=lambda item: orjson.dumps(item, option=orjson.OPT_SORT_KEYS))


def test_windows_answer_as_prometheus(
    dataset: Dataset, prometheus: Prometheus, store: StoreReader
) -> None:
    answered = set()
    for start, end in windows(dataset):
        for path, params in ASKS:
            asked = [*params, *_bounds(start, end)]
            _, truth = prometheus.api(path, *asked)
            assert truth["status"] == "success", (path, asked, truth)
            mine = ours(store, path, asked)
            assert mine["status"] == "success", (path, asked, mine)
            assert _sorted(mine) == _sorted(truth), (path, start, end, mine, truth)
            answered.add(len(truth["data"]))
    assert len(answered) > 3  # the windows tell series apart: not all empty, not all full


def test_rfc3339_bounds_answer_as_unix_seconds(dataset: Dataset, store: StoreReader) -> None:
    def rfc3339(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")

    start, end = dataset.base_ms + 20 * MIN, dataset.base_ms + 30 * MIN
    match = ("match[]", "http_requests_count")
    by_seconds = ours(store, "series", [match, *_bounds(start, end)])
    by_rfc3339 = ours(store, "series", [match, ("start", rfc3339(start)), ("end", rfc3339(end))])
    assert by_rfc3339 == by_seconds
    assert by_seconds["data"] == [
        {"__name__": "http_requests_count", "host": "a", "service": "web"}
    ]


def test_errors_answer_as_prometheus(
    dataset: Dataset, prometheus: Prometheus, store: StoreReader
) -> None:
    start = ("start", _seconds(dataset.base_ms))
    for path, params in [
        ("series", [("match[]", "node_temp"), ("start", "yesterday")]),
        ("series", [("match[]", "node_temp"), start, ("end", "soon")]),
        ("series", [start, ("end", _seconds(dataset.base_ms + HOUR))]),
        ("series", [("match[]", "rate(node_temp[5m])"), start]),
        ("labels", [("start", "yesterday")]),
        ("labels", [("match[]", "node_temp{"), start]),
        ("label/host/values", [("end", "1e")]),
        ("label/0host/values", [start]),
    ]:
        status, truth = prometheus.api(path, *params)
        assert (status, truth["status"]) == (400, "error"), (path, params, truth)
        mine = ours(store, path, params)
        assert (mine["status"], mine["errorType"]) == ("error", truth["errorType"]), (
            path,
            params,
            mine,
            truth,
        )
