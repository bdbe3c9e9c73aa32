"""The fast path's series cache: a key seen before gives the same Series object, and the answer
is the exact path's whatever the cache held (a flood past its bound clears it)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import influx_shapes
from collector.influx_exact import parse_exact
from collector.influx_line import parse_influx

NOW = 1_700_000_000_000_000_000

hosts = st.lists(st.integers(0, 50), min_size=1, max_size=40)
fields = st.lists(st.sampled_from(["v", "used", "free", "bad field"]), min_size=1, max_size=3)


def body(numbers: list[int], names: list[str]) -> bytes:
    line_fields = ",".join(f"{name}={n}.5" for n, name in enumerate(dict.fromkeys(names)))
    return "\n".join(
        f"mem,host=h{h},dc=x{h % 3} {line_fields} {NOW + i}" for i, h in enumerate(numbers)
    ).encode()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(hosts, fields), min_size=1, max_size=5), st.integers(1, 30))
def test_cached_series_are_the_exact_paths_whatever_the_cache_held(
    bodies: list[tuple[list[int], list[str]]], bound: int
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(influx_shapes, "_SERIES_MAX", bound)  # clears now and then
        for numbers, names in bodies:
            data = body(numbers, names)
            fast, exact = parse_influx(data, NOW), parse_exact(data, NOW, 1)
            assert sorted(map(str, fast.samples.points())) == sorted(
                map(str, exact.samples.points())
            )
            assert fast.dropped == exact.dropped


def test_a_series_seen_before_is_the_same_object() -> None:
    first = parse_influx(body([1, 2, 3], ["v"]), NOW).samples.series
    again = parse_influx(body([3, 2, 1, 7], ["v"]), NOW).samples.series
    by_name = {str(s): s for s in again}
    for series in first:
        assert by_name[str(series)] is series
