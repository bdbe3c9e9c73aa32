"""A real store of each backend (embedded in tmp_path, InfluxDB on a real influxd), filled with
known 10-second data, for queries and rollups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from storage.base import Store
from storage.records import NS_PER_S, Samples, Series, Tier
from tests.backends import BACKENDS, StoreOpener

S = NS_PER_S
MIN = 60 * S
HOUR = 3600 * S
DAY = 86400 * S
NOW = 1_699_999_200 * S  # on a whole hour (2023-11-14T22:00:00Z)
TIERS = (
    Tier("raw", 0, 2 * DAY),
    Tier("1m", MIN, 14 * DAY),
    Tier("10m", 10 * MIN, 90 * DAY),
    Tier("1h", HOUR, 730 * DAY),
)

HOST_A = Series.of("cpu", {"host": "a", "service": "web"})
HOST_B = Series.of("cpu", {"host": "b", "service": "web"})
HOST_C = Series.of("cpu", {"host": "c", "service": "db"})
NO_SERVICE = Series.of("cpu", {"host": "d"})
MEM_A = Series.of("mem", {"host": "a"})


def known_points(start_ns: int, end_ns: int) -> Samples:
    """Every 10 s in [start, end): a = 1, b = 3 (5 s after a's), c = 0..5 within each minute,
    d = 10, mem{a} = 7. So per minute c has min 0, max 5, sum 15, count 6, mean 2.5, last 5."""
    ts = np.arange(start_ns, end_ns, 10 * S, dtype=np.int64)
    c_values = ((ts % MIN) // (10 * S)).astype(np.float64)
    columns = [
        (0, ts, np.full(len(ts), 1.0)),
        (1, ts + 5 * S, np.full(len(ts), 3.0)),
        (2, ts, c_values),
        (3, ts, np.full(len(ts), 10.0)),
        (4, ts, np.full(len(ts), 7.0)),
    ]
    return Samples(
        (HOST_A, HOST_B, HOST_C, NO_SERVICE, MEM_A),
        np.concatenate([np.full(len(t), i, np.int32) for i, t, _ in columns]),
        np.concatenate([t for _, t, _ in columns]),
        np.concatenate([v for _, _, v in columns]),
    )


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    """Opens (and reopens) a store of each backend in turn; every one is closed at the end."""
    opener = StoreOpener(request, request.param, tmp_path, TIERS)
    yield opener
    opener.close()


@pytest.fixture
def store(open_store: StoreOpener) -> Store:
    """A store holding the known points of the last 2 hours before NOW."""
    store = open_store()
    store.write(known_points(NOW - 2 * HOUR, NOW))
    return store
