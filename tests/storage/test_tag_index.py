"""The tag index: per metric, tag pairs to series, equal to filtering every series of the metric."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import series_index
from storage.postings import Postings
from storage.records import Samples, Series
from storage.series_index import SeriesIndex, read_log
from tests.storage.conftest import ReaderFactory, StoreFactory
from tests.storage.power_cuts import power_cut

# Few names and values, so that pairs repeat: some rare, some held by most series.
METRICS = ("cpu", "mem")
KEYS = ("host", "dc", "env")
VALUES = ("a", "b", "c", "")

tag_sets = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)
series_sets = st.lists(
    st.builds(Series.of, st.sampled_from(METRICS), tag_sets), max_size=40, unique=True
)
lookups = st.tuples(
    st.sampled_from(METRICS),
    st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)), min_size=1, max_size=3),
)


def brute_force(index: SeriesIndex, metric: str, tags: list[tuple[str, str]]) -> list[Series]:
    return [s for s in index.series(metric) if all(s.tag(k) == v for k, v in tags)]


def index_of(series: list[Series]) -> SeriesIndex:
    index = SeriesIndex()
    for one in series:
        index.add(one)
    return index


@pytest.mark.slow
@settings(max_examples=200)
@given(series_sets, st.lists(lookups, min_size=1, max_size=5))
def test_a_lookup_equals_filtering_every_series_of_the_metric(
    series: list[Series], asked: list[tuple[str, list[tuple[str, str]]]]
):
    index = index_of(series)
    for metric, tags in asked:
        assert index.series_with(metric, tags) == brute_force(index, metric, tags)


@settings(max_examples=100)
@given(series_sets, st.data())
def test_forgotten_series_leave_the_index_and_come_back_when_revived(
    series: list[Series], data: st.DataObject
):
    index = index_of(series)
    forgotten = data.draw(st.sets(st.sampled_from(range(len(series))))) if series else set()
    index.forget(sorted(forgotten))
    revived = data.draw(st.sets(st.sampled_from(sorted(forgotten)))) if forgotten else set()
    for sid in revived:
        index.revive(sid)
    live = {s for i, s in enumerate(series) if i not in forgotten - revived}
    for metric in METRICS:
        for key in KEYS:
            for value in VALUES:
                found = index.series_with(metric, [(key, value)])
                assert found == brute_force(index, metric, [(key, value)])
                assert set(found) <= live
        keys = sorted({k for s in live if s.metric == metric for k, _ in s.tags})
        assert index.tag_keys(metric) == keys
        for key in KEYS:
            values = sorted({v for s in live if s.metric == metric for k, v in s.tags if k == key})
            assert index.tag_values(metric, key) == values


def test_a_pair_held_by_one_series_or_many_finds_exactly_them():
    postings = Postings()
    web = [Series.of("req", {"host": f"h{i}", "role": "web"}) for i in range(3)]
    db = Series.of("req", {"host": "h9", "role": "db"})
    for sid, series in enumerate([*web, db]):
        postings.add(sid, series)
    assert postings.rarest("req", [("role", "web"), ("host", "h1")]) == [1]
    assert postings.rarest("req", [("role", "web")]) == [0, 1, 2]
    assert postings.rarest("req", [("role", "web"), ("host", "nope")]) == []
    assert postings.rarest("other", [("role", "web")]) == []
    postings.remove([(1, web[1]), (3, db)])
    assert postings.rarest("req", [("role", "web")]) == [0, 2]
    assert postings.values("req", "role") == ["web"]
    assert postings.keys("req") == ["host", "role"]
    postings.remove([(2, web[2])])  # a pair of two left to one keeps that one
    assert postings.rarest("req", [("role", "web")]) == [0]
    postings.remove([(0, web[0])])
    assert postings.keys("req") == []


def test_names_are_shared_between_series_however_they_were_built():
    # As two parsers (or a replayed log) give them: equal strings, distinct objects.
    one = Series("".join(["card", ".v"]), (("".join(["ho", "st"]), "h1"),))
    two = Series("".join(["ca", "rd.v"]), (("".join(["h", "ost"]), "h2"),))
    index = index_of([one, two])
    first, second = index.key(0), index.key(1)
    assert (first, second) == (one, two)
    assert first.metric is second.metric
    assert first.tags[0][0] is second.tags[0][0]
    assert index.get(two) == 1


def test_the_series_log_is_read_whole_across_its_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(series_index, "_LOG_CHUNK_BYTES", 64)
    series = [Series.of("log", {"host": f"h{i}", "note": "a\nb"}) for i in range(50)]
    size = series_index.append_log(tmp_path / "series.log", 0, series)
    assert read_log(tmp_path / "series.log", 0, size) == series


def write_hosts(store, metric: str, hosts: range, ts: int = 1) -> list[Series]:
    series = [Series.of(metric, {"host": f"h{i}", "dc": f"dc{i % 3}"}) for i in hosts]
    index = np.arange(len(series), dtype=np.int32)
    store.write(Samples(series, index, np.full(len(series), ts), np.ones(len(series))))
    return series


def test_the_store_answers_from_its_index_after_a_checkpoint_and_a_reopen(
    open_store: StoreFactory, open_reader: ReaderFactory
):
    store = open_store()
    first = write_hosts(store, "web", range(100))
    store.checkpoint()
    later = write_hosts(store, "web", range(100, 120), ts=2)  # in the WAL only
    follower = open_reader()
    for reader in (store, follower):
        assert reader.series_with("web", [("host", "h7")]) == [first[7]]
        assert reader.series_with("web", [("host", "h110"), ("dc", "dc2")]) == [later[10]]
        assert reader.series_with("web", [("host", "h110"), ("dc", "dc0")]) == []
        assert reader.tag_values("web", "dc") == ["dc0", "dc1", "dc2"]
        assert reader.tag_keys("web") == ["dc", "host"]
    store.close()
    store = open_store()
    dc1 = [s for s in store.series("web") if s.tag("dc") == "dc1"]
    assert store.series_with("web", [("dc", "dc1")]) == dc1
    assert len(dc1) == 40
    assert store.series_with("web", [("host", "h119")]) == [later[19]]


def test_replayed_series_share_their_names_and_the_collector_is_left_as_it_was(
    tmp_path: Path, open_store: StoreFactory
):
    store = open_store()
    write_hosts(store, "web", range(10))
    store.checkpoint()
    write_hosts(store, "web", range(10, 20))  # in the WAL only
    for collecting in (True, False):
        cut = tmp_path / f"cut-{collecting}"
        power_cut(tmp_path / "data", cut)
        (gc.enable if collecting else gc.disable)()
        try:
            replayed = open_store(cut).series("web")
            assert gc.isenabled() == collecting
        finally:
            gc.enable()
        assert len(replayed) == 20
        assert len({id(s.metric) for s in replayed}) == 1
        assert len({id(key) for s in replayed for key, _ in s.tags}) == 2  # dc and host


def test_a_follower_tailing_the_writer_finds_the_series_it_defines(
    open_store: StoreFactory, open_reader: ReaderFactory
):
    store = open_store()
    follower = open_reader()
    (first,) = write_hosts(store, "db", range(1))
    follower.refresh()
    assert follower.series_with("db", [("host", "h0")]) == [first]
    store.checkpoint()  # the follower reloads the manifest and tails the new segment
    (second,) = write_hosts(store, "db", range(1, 2), ts=2)
    follower.refresh()
    assert follower.series_with("db", [("dc", "dc1")]) == [second]
    assert follower.tag_values("db", "host") == ["h0", "h1"]


def test_a_series_aged_out_leaves_the_index_until_written_again(open_store: StoreFactory):
    day = 86_400 * 10**9
    store = open_store()
    old = write_hosts(store, "web", range(3), ts=day)
    (kept,) = write_hosts(store, "web", range(3, 4), ts=800 * day)
    store.apply_retention(800 * day)  # older than every tier keeps
    assert store.series_with("web", [("dc", "dc0")]) == [kept]
    assert store.series_with("web", [("host", "h1")]) == []
    assert store.tag_values("web", "host") == ["h3"]
    write_hosts(store, "web", range(1, 2), ts=800 * day)
    assert store.series_with("web", [("host", "h1")]) == [old[1]]
    store.checkpoint()
    store.close()
    reopened = open_store()
    assert reopened.tag_values("web", "host") == ["h1", "h3"]
    assert reopened.series_with("web", [("dc", "dc1")]) == [old[1]]
