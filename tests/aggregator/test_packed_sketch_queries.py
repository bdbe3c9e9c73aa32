"""Percentiles from packed sketches (`read_packed_sketches`, `step_quantiles`) against the
same reads and merges done by rows, bit for bit, on a real embedded store whose sketches lie in
blocks, in its head and in every tier, with buckets rolled up again late (dirty), counts beyond
a byte, fractional sample-rate counts and zeros."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aggregator.query import _group_of
from aggregator.scheduler import RollupScheduler
from aggregator.sketch_percentiles import step_quantiles
from aggregator.sketch_rollups import quantile_rows, regroup_sketches
from aggregator.tiered import read_packed_sketches, read_sketches
from storage.embedded import EmbeddedStore
from storage.records import Samples, Series, Sketches
from storage.sketch_packs import PackedSketches
from storage.sketches import build
from tests.aggregator.conftest import HOUR, MIN, NOW, TIERS

SERIES = tuple(
    Series.of("api.latency", {"host": f"h{i}", "service": f"s{i % 2}"}) for i in range(4)
)
START = NOW - 3 * HOUR


def flushes(rng: np.random.Generator, times: range, weight: float, zeros: bool) -> Sketches:
    """A sketch of each series at each time: 30 log-normal latencies (some of them 0 ms),
    each counted `weight` times."""
    parts = []
    for ts in times:
        values = rng.lognormal(3.0, 1.0, 30 * len(SERIES)).round(1)
        if zeros:
            values[::7] = 0.0
        group = np.repeat(np.arange(len(SERIES)), 30)
        label, keys, counts = build(group, values, np.full(len(values), weight))
        stamps = np.full(len(keys), ts, np.int64)
        parts.append(Sketches(SERIES, label.astype(np.int32), stamps, keys, counts))
    return Sketches.concat(parts)


def fill(directory: Path, weight: float, zeros: bool) -> EmbeddedStore:
    """Three hours of 10 s flushes, blocks and head, rolled up to an hour ago into blocks, then
    flushes written late into rolled-up buckets."""
    rng = np.random.default_rng(11)
    store = EmbeddedStore(directory, TIERS)
    store.write(Samples.empty(), flushes(rng, range(START, NOW - HOUR, 10 * 10**9), weight, zeros))
    store.checkpoint()
    store.write(Samples.empty(), flushes(rng, range(NOW - HOUR, NOW, 10 * 10**9), weight, zeros))
    RollupScheduler(store, TIERS, grace_ns=0).catch_up(NOW - HOUR, 60.0)
    store.checkpoint()
    late = range(NOW - 2 * HOUR + 5 * 10**9, NOW - HOUR, 20 * MIN)
    store.write(Samples.empty(), flushes(rng, late, weight, zeros))
    assert len(store.dirty("1h"))
    return store


@pytest.mark.slow  # a store filled and rolled up per case
@pytest.mark.parametrize(
    ("weight", "zeros"),
    [(1.0, False), (40.0, False), (1 / 0.3, False), (1.0, True)],
    ids=["counts", "counts beyond a byte", "fractional counts", "zeros"],
)
def test_percentiles_of_packed_sketches_are_those_of_rows(
    tmp_path: Path, weight: float, zeros: bool
) -> None:
    with fill(tmp_path, weight, zeros) as store:
        for tier in TIERS:
            for step in {max(tier.width_ns, MIN), 2 * HOUR}:
                for group_by in ((), ("service",)):
                    groups: dict[Series, int] = {}
                    numbers = [
                        groups.setdefault(_group_of(s, group_by), len(groups)) for s in SERIES
                    ]
                    mapping = np.array(numbers, np.int32)
                    args = (store, TIERS, tier, SERIES, START, NOW, step)
                    rows = read_sketches(*args)
                    packed = read_packed_sketches(*args)
                    # in (index, ts) order: the tiers' parts come one after another
                    assert_same_rows(packed.rows(), PackedSketches.of(rows).rows())
                    for q in (0.0, 0.5, 0.99, 0.999, 1.0):
                        merged = regroup_sketches(rows, mapping, tuple(groups), step)
                        want, want_exact = quantile_rows(merged, q)
                        group_of = dict(zip(SERIES, mapping.tolist(), strict=True))
                        got, exact = step_quantiles(
                            store,
                            TIERS,
                            tier,
                            SERIES,
                            group_of,
                            tuple(groups),
                            (START, NOW),
                            step,
                            q,
                        )
                        assert exact == want_exact == (weight == round(weight))
                        assert [a.tolist() for a in got[:2]] == [a.tolist() for a in want[:2]]
                        assert got[2].view(np.uint64).tolist() == want[2].view(np.uint64).tolist()


def assert_same_rows(got: Sketches, want: Sketches) -> None:
    assert tuple(got.series) == tuple(want.series)
    for name in ("index", "ts_ns", "keys"):
        assert getattr(got, name).tolist() == getattr(want, name).tolist()
    assert got.values.view(np.uint64).tolist() == want.values.view(np.uint64).tolist()
