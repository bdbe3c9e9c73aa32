"""Tag-filtered series matches through the store's tag index answer exactly what filtering every
series of the metric answers: the query API's `tags=`, PromQL's label matchers and its listings
of label names and values."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.promql.labels import stored_label_names, stored_label_values
from aggregator.promql.names import NAME, label_value, series_labels
from aggregator.promql.series import matching_series
from aggregator.promql.syntax import LabelMatcher, compile_regex
from aggregator.query import QueryRequest, TagFilter, match_series
from storage.base import Store, StoreReader, series_with, tag_keys, tag_values
from storage.embedded import EmbeddedStore
from storage.records import Samples, Series
from tests.aggregator.conftest import NOW, TIERS
from tests.backends import StoreOpener

METRICS = ("req.count", "req_count", "db.time")
# `a.b` and `a_b` are one Prometheus label; "" is no label at all.
KEYS = ("host", "dc", "a.b", "a_b")
VALUES = ("h1", "h2", "x", "")


def fleet() -> list[Series]:
    """Series of every shape: tagless, rare and common pairs, empty values, colliding labels."""
    rng = random.Random(17)
    found: set[Series] = {Series(m) for m in METRICS}
    for _ in range(300):
        keys = rng.sample(KEYS, rng.randint(1, 3))
        found.add(Series.of(rng.choice(METRICS), {k: rng.choice(VALUES) for k in keys}))
    return sorted(found, key=lambda s: (s.metric, s.tags))


def write_fleet(store: Store) -> None:
    series = fleet()
    index = np.arange(len(series), dtype=np.int32)
    store.write(Samples(series, index, np.full(len(series), NOW), np.ones(len(series))))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path_factory.mktemp("tags") / "data", TIERS) as opened:
        write_fleet(opened)
        yield opened


def every_series_filtered(store: StoreReader, request: QueryRequest) -> list[Series]:
    """The query API's match before the tag index: every series of each metric, filtered."""
    found = [s for m in store.metrics(request.metric) for s in store.series(m)]
    return [s for s in found if all(f.matches(s) for f in request.tag_filters)]


def every_series_matched(store: StoreReader, matchers: Sequence[LabelMatcher]) -> list[Series]:
    """PromQL's match before the tag index: every series' labels against every matcher."""
    found = []
    for metric in store.metrics("*"):
        for series in store.series(metric):
            labels = series_labels(series)
            if all(m.matches(label_value(labels, m.name)) for m in matchers):
                found.append(series)
    return found


patterns = st.sampled_from(VALUES).filter(bool) | st.sampled_from(("h*", "?", "[hx]*", "*"))
tag_filters = st.builds(TagFilter, st.sampled_from(KEYS), patterns, st.booleans())
metric_patterns = st.sampled_from((*METRICS, "req*", "*"))


@settings(max_examples=300, deadline=None)
@given(metric_patterns, st.lists(tag_filters, max_size=3))
def test_the_query_api_matches_what_filtering_every_series_matches(
    store: EmbeddedStore, metric: str, filters: list[TagFilter]
):
    request = QueryRequest(metric, tuple(filters), 0, NOW, None, "mean", (), 100, NOW)
    assert match_series(store, request) == every_series_filtered(store, request)


def matcher(name: str, op: str, value: str) -> LabelMatcher:
    return LabelMatcher(name, op, value, compile_regex(value) if "~" in op else None)


label_names = st.sampled_from(("host", "dc", "a_b", "nothing"))
label_matchers = st.builds(
    matcher,
    label_names,
    st.sampled_from(("=", "!=", "=~", "!~")),
    st.sampled_from((*VALUES, "h.*", "x|h1", "(?:h1|h2)", "h2|")),
)
name_matchers = st.builds(
    matcher, st.just(NAME), st.sampled_from(("=", "=~")), st.sampled_from(("req_count", "req.*"))
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(name_matchers, max_size=1), st.lists(label_matchers, min_size=1, max_size=3))
def test_promql_matches_what_matching_every_series_matches(
    store: EmbeddedStore, by_name: list[LabelMatcher], others: list[LabelMatcher]
):
    matchers = [*by_name, *others]
    assert matching_series(store, matchers) == every_series_matched(store, matchers)


def test_every_backend_answers_tag_lookups_as_its_listing_does(open_store: StoreOpener):
    store = open_store()
    write_fleet(store)
    for metric in METRICS:
        listed = store.series(metric)
        assert tag_keys(store, metric) == sorted({k for s in listed for k, _ in s.tags})
        for key in KEYS:
            values = sorted({v for s in listed if (v := s.tag(key)) is not None})
            assert tag_values(store, metric, key) == values
            for value in values:
                wanted = [s for s in listed if s.tag(key) == value]
                assert series_with(store, metric, [(key, value)]) == wanted
        assert series_with(store, metric, []) == listed


def test_label_names_and_values_are_those_of_every_series_labels(open_store: StoreOpener):
    store = open_store()
    write_fleet(store)
    every = [series_labels(s) for s in store.series()]
    assert stored_label_names(store) == {name for labels in every for name, _ in labels}
    for name in ("host", "dc", "a_b", NAME, "nothing"):
        values = {value for labels in every for key, value in labels if key == name}
        assert stored_label_values(store, name) == values
