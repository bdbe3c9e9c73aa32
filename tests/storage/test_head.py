"""The head: sorting chunks into parts and merging parts keeps exactly the last writes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.columns import RAW_WIDTH, Columns, merge, select_sorted, select_unsorted
from storage.head import Head

rows = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 20), st.integers(0, 99)), max_size=20)


def triples(run: Columns) -> list[tuple[int, int, float]]:
    return list(zip(run.sid.tolist(), run.ts.tolist(), run.cols[0].tolist(), strict=True))


def columns(batch: list[tuple[int, int, int]]) -> Columns:
    sid, ts, value = zip(*batch, strict=True) if batch else ((), (), ())
    return Columns(
        np.asarray(sid, np.uint32), np.asarray(ts, np.int64), (np.asarray(value, np.float64),)
    )


@pytest.mark.slow
@given(st.lists(rows, max_size=30), st.sampled_from([1, 3, 8]))
def test_parts_and_merges_keep_the_last_write_of_each_key(batches, sort_rows) -> None:
    head = Head(RAW_WIDTH, sort_rows=sort_rows)
    model: dict[tuple[int, int], float] = {}
    for batch in batches:
        head.append(columns(batch))
        model.update(((s, t), float(v)) for s, t, v in batch)
        while (candidate := head.merge_candidate()) is not None:
            head.replace(candidate[0], merge(candidate[1], RAW_WIDTH))
    got = merge(head.runs(), RAW_WIDTH)
    assert triples(got) == [(s, t, v) for (s, t), v in sorted(model.items())]
    snapshot = head.snapshot()
    wanted = np.array([1, 4], np.uint32)
    member = np.zeros(7, np.bool_)
    member[wanted] = True
    picked = merge(
        [select_sorted(p, wanted, 5, 15) for p in snapshot.parts]
        + [select_unsorted(c, member, 5, 15) for c in snapshot.chunks],
        RAW_WIDTH,
    )
    assert triples(picked) == [
        (s, t, v) for (s, t), v in sorted(model.items()) if s in (1, 4) and 5 <= t < 15
    ]
