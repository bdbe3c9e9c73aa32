"""Sketch reads from blocks and heads at once (`storage.sketch_gather`): whatever the writes,
rewrites and checkpoints between them, a read gives the last sketch written of each (series,
ts) whole, in the order of the series asked for, then of time; a packed read the same
sketches."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.embedded import EmbeddedStore
from storage.records import Samples, Series, Sketches
from storage.sketches import build
from tests.aggregator.conftest import TIERS

SERIES = tuple(Series.of("api.latency", {"host": h}) for h in "abcd")
NOW = 1_699_999_200 * 10**9

# A write: which series (by number), at which of 4 times, with a seed for its values; and
# whether a checkpoint follows it.
WRITES = st.lists(
    st.tuples(
        st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),
        st.integers(0, 3),
        st.integers(0, 2**16),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


def sketches_of(numbers: list[int], ts: int, seed: int) -> Sketches:
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(len(numbers)), 5)
    label, keys, counts = build(group, rng.lognormal(3.0, 1.0, len(group)), np.ones(len(group)))
    series = tuple(SERIES[n] for n in numbers)
    stamps = np.full(len(keys), NOW + ts * 10**9, np.int64)
    return Sketches(series, label.astype(np.int32), stamps, keys, counts)


@pytest.mark.slow  # a store opened per example
@settings(max_examples=15, deadline=None)
@given(WRITES, st.permutations(range(4)), st.integers(1, 4))
def test_a_read_gives_the_last_sketch_of_each_series_and_time_whole(
    writes: list[tuple[list[int], int, int, bool]], order: list[int], asked: int
) -> None:
    latest: dict[tuple[Series, int], tuple[list[int], list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp), TIERS) as store:
        for numbers, ts, seed, checkpoint in writes:
            written = sketches_of(numbers, ts, seed)
            store.write(Samples.empty(), written)
            for i, series in enumerate(written.series):
                rows = written.index == i
                latest[series, int(written.ts_ns[rows][0])] = (
                    written.keys[rows].tolist(),
                    written.values[rows].tolist(),
                )
            if checkpoint:
                store.checkpoint()
        wanted = [SERIES[n] for n in order[:asked]]
        found = store.read_sketches("raw", wanted, NOW, NOW + 4 * 10**9)
        packed = store.read_packed_sketches("raw", wanted, NOW, NOW + 4 * 10**9).rows()
    assert tuple(packed.series) == tuple(found.series)
    for name in ("index", "ts_ns", "keys", "values"):
        assert getattr(packed, name).tolist() == getattr(found, name).tolist(), name
    assert tuple(found.series) == tuple(wanted)
    expected = [
        (position, ts, key, value)
        for position, series in enumerate(wanted)
        for (s, ts), (keys, values) in sorted(latest.items(), key=lambda item: item[0][1])
        if s == series
        for key, value in zip(keys, values, strict=True)
    ]
    got = zip(
        found.index.tolist(),
        found.ts_ns.tolist(),
        found.keys.tolist(),
        found.values.tolist(),
        strict=True,
    )
    assert list(got) == expected


def test_a_packed_read_leaves_out_a_block_written_again_whole(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, TIERS) as store:
        store.write(Samples.empty(), sketches_of([0, 1], 0, 1))
        store.checkpoint()
        store.write(Samples.empty(), sketches_of([0, 1], 0, 2))  # both sketches again
        found = store.read_sketches("raw", SERIES[:2], NOW, NOW + 10**9)
        packed = store.read_packed_sketches("raw", SERIES[:2], NOW, NOW + 10**9)
    assert len(packed) == 2
    assert packed.rows().keys.tolist() == found.keys.tolist()
    assert packed.rows().values.tolist() == found.values.tolist()
    assert found.keys.tolist() == sketches_of([0, 1], 0, 2).keys.tolist()
