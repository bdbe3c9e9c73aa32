"""Prometheus' own PromQL test cases (testdata/, from Prometheus v2.42.0) that fit Shipboard's
subset, run on Shipboard's evaluator over an embedded store: the answers Prometheus' tests
expect, to their 1e-6. Cases left out, and why: stale markers (Shipboard stores none),
absolute times (`time()`, `timestamp()`, `@`, `hour()`: the data is moved to a recent day, as
the store keeps raw points for --retention-raw), series without a name, PromQL Shipboard
refuses, and `holt_winters` (renamed since, so promql-parser does not know it)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.promql.engine import Evaluator
from aggregator.promql.series import EvalError, Sample
from aggregator.promql.syntax import PromQLError, Unsupported, parse
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_MS, Samples, Series
from tests.aggregator.promql.promql_tests import STALE, Eval, Loaded, almost_equal, read

TESTDATA = Path(__file__).parent / "testdata"
DAY_MS = 86_400_000
BASE_MS = (int(time.time() * 1000) // DAY_MS - 1) * DAY_MS  # the files' time 0
NOW_CALENDAR = re.compile(r"\b(?:year|month|day_of_\w+|days_in_month|hour|minute)\(\s*\)")


def left_out(case: Eval) -> str | None:
    if any(value == STALE for points in case.loaded.values() for _, value in points):
        return "stale markers"
    if any(word in case.query for word in ("time(", "timestamp(", "@")) or NOW_CALENDAR.search(
        case.query
    ):
        return "absolute time"
    if any(dict(labels).get("__name__", "") == "" for labels in case.loaded):
        return "a series without a name"
    try:
        parse(case.query)
    except Unsupported:
        return "unsupported"
    except PromQLError:  # refused as Prometheus refuses it, or a name it no longer has
        return None if case.fail else "not in promql-parser's grammar (holt_winters)"
    return None


ALL = [(path.stem, case) for path in sorted(TESTDATA.glob("*.test")) for case in read(path)]
PORTED = [(name, case) for name, case in ALL if left_out(case) is None]


def test_most_cases_fit_the_subset() -> None:
    assert len(ALL) > 450
    assert len(PORTED) > 300, [(n, c.line, left_out(c)) for n, c in ALL if left_out(c)]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, EmbeddedStore]]:
    opened: dict[int, EmbeddedStore] = {}
    yield opened
    for store in opened.values():
        store.close()


def store_of(loaded: Loaded, stores: dict[int, EmbeddedStore], home: Path) -> EmbeddedStore:
    if id(loaded) not in stores:
        store = EmbeddedStore(home / str(len(stores)), Settings().tiers())
        store.__enter__()
        stores[id(loaded)] = store
        batch = [
            (Series.of(dict(labels)["__name__"], [p for p in labels if p[0] != "__name__"]),
             (BASE_MS + ms) * NS_PER_MS, float(value))
            for labels, points in loaded.items()
            for ms, value in points
        ]  # fmt: skip
        if batch:
            store.write(Samples.from_points(batch))
    return stores[id(loaded)]


@pytest.mark.parametrize(("name", "case"), PORTED, ids=[f"{n}:{c.line}" for n, c in PORTED])
def test_prometheus_testdata_case(
    name: str,
    case: Eval,
    stores: dict[int, EmbeddedStore],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    store = store_of(case.loaded, stores, tmp_path_factory.getbasetemp())
    at = BASE_MS + case.at_ms
    if case.fail:
        with pytest.raises((PromQLError, EvalError)):
            Evaluator(store, at, at).eval(parse(case.query), at)
        return
    value = Evaluator(store, at, at).eval(parse(case.query), at)
    if case.scalar is not None:
        assert isinstance(value, float)
        assert almost_equal(value, case.scalar), (case.query, value, case.scalar)
        return
    assert isinstance(value, list)
    got = [(s.labels, s.value) for s in value if isinstance(s, Sample)]
    key = lambda pair: pair[0]  # noqa: E731
    if not case.ordered:
        got, expected = sorted(got, key=key), sorted(case.expected, key=key)
    else:
        expected = case.expected
    assert [labels for labels, _ in got] == [labels for labels, _ in expected], case.query
    for (_, mine), (_, want) in zip(got, expected, strict=True):
        assert almost_equal(mine, want) or (math.isnan(mine) and math.isnan(want)), (
            case.query,
            got,
            expected,
        )
