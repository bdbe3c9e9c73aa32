"""The series index's ids of a repeated tuple of series: kept once all are known, never stale,
and a caller's changes to its answer do not reach the next one."""

from __future__ import annotations

from storage.records import Series
from storage.series_index import SeriesIndex


def test_a_remembered_tuple_answers_its_ids_whatever_the_caller_did_with_them() -> None:
    index = SeriesIndex()
    series = tuple(Series.of("cpu", {"host": f"h{i}"}) for i in range(300))
    assert (index.lookup(series, remember=True) == -1).all()  # unknown: not kept
    for one in series[:150]:
        index.add(one)
    first = index.lookup(series, remember=True)
    assert first[:150].tolist() == list(range(150))
    assert (first[150:] == -1).all()
    for one in series[150:]:
        index.add(one)
    ids = index.lookup(series, remember=True)
    assert ids.tolist() == list(range(300))
    ids[:] = -1  # the store marks refused series in the answer
    again = index.lookup(series, remember=True)
    assert again.tolist() == list(range(300))
    index.forget([3, 4])  # a forgotten series keeps its id
    assert index.lookup(series, remember=True).tolist() == list(range(300))
    assert index.lookup(tuple(reversed(series))).tolist() == list(reversed(range(300)))
