"""A rule replayed over a real store in tmp_path: its episodes at hand-computed times."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.alerts.model import Rule
from annotations.alerts.replay import Episode, evaluation_times, replay
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Samples, Series

MIN = 60 * NS_PER_S
T0 = 1_800_000_000 * NS_PER_S  # on the minute
TIERS = Settings().tiers()


@given(st.integers(0, 10**12), st.integers(0, 10**5), st.integers(100, 10**5))
def test_evaluation_times_are_every_multiple_of_the_interval_in_the_range(
    start: int, length: int, interval: int
) -> None:
    end = start + length
    times = list(evaluation_times(start, end, interval))
    assert all(t % interval == 0 and start <= t <= end for t in times)
    assert all(b - a == interval for a, b in itertools.pairwise(times))
    if times:  # none missed before the first or after the last
        assert times[0] - interval < start
        assert times[-1] + interval > end
    else:
        assert -(-start // interval) * interval > end


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    """queue.depth of web every 10 s for an hour: 1, but 50 in minutes 10-15 and 17-20."""
    times = np.arange(T0, T0 + 60 * MIN, 10 * NS_PER_S, dtype=np.int64)
    minute = (times - T0) // MIN
    high = ((minute >= 10) & (minute < 15)) | ((minute >= 17) & (minute < 20))
    samples = Samples(
        (Series.of("queue.depth", {"service": "web"}),),
        np.zeros(len(times), np.int32),
        times,
        np.where(high, 50.0, 1.0),
    )
    with EmbeddedStore(tmp_path / "metrics", TIERS) as opened:
        opened.write(samples)
        yield opened


def rule(**fields: object) -> Rule:
    base = {
        "name": "QueueBacklog",
        "query": {"metric": "queue.depth", "agg": "max", "group_by": ["service"]},
        "window": "1m",
        "op": ">",
        "threshold": 10,
        "interval": "1m",
    }
    return Rule.model_validate(base | fields)


def test_each_spike_is_an_episode_from_firing_to_resolved(store: EmbeddedStore) -> None:
    # Minute m's evaluation reads minute m-1: the spikes hold at 11-15 and 18-20.
    result = replay(store, TIERS, rule(), T0, T0 + 60 * MIN, 15 * NS_PER_S, now_ns=T0 + 60 * MIN)
    labels = {"alertname": "QueueBacklog", "service": "web"}
    assert [(e.fired_ns, e.resolved_ns) for e in result.episodes] == [
        (T0 + 11 * MIN, T0 + 16 * MIN),
        (T0 + 18 * MIN, T0 + 21 * MIN),
    ]
    assert result.episodes[0] == Episode(
        labels, result.episodes[0].fingerprint, T0 + 11 * MIN, T0 + 16 * MIN, 50.0
    )
    assert (result.evaluations, result.errors) == (61, 0)


def test_keep_firing_for_makes_two_close_spikes_one_episode(store: EmbeddedStore) -> None:
    damped = rule(**{"for": "2m", "keep_firing_for": "3m"})
    result = replay(store, TIERS, damped, T0, T0 + 60 * MIN, 15 * NS_PER_S, now_ns=T0 + 60 * MIN)
    # Pending at 11, firing at 13; the gap 16-17 is shorter than 3m; it last held at 20.
    assert [(e.fired_ns, e.resolved_ns) for e in result.episodes] == [
        (T0 + 13 * MIN, T0 + 23 * MIN)
    ]


def test_a_range_ending_while_it_fires_leaves_the_episode_open(store: EmbeddedStore) -> None:
    result = replay(store, TIERS, rule(), T0, T0 + 12 * MIN, 15 * NS_PER_S, now_ns=T0 + 60 * MIN)
    assert [(e.fired_ns, e.resolved_ns) for e in result.episodes] == [(T0 + 11 * MIN, None)]


def test_failed_evaluations_are_counted_with_the_first_reason(store: EmbeddedStore) -> None:
    store.close()  # every read fails from here on
    result = replay(store, TIERS, rule(), T0, T0 + 5 * MIN, 15 * NS_PER_S, now_ns=T0 + 60 * MIN)
    assert result.episodes == []
    assert result.errors == result.evaluations == 6
    assert result.first_error
