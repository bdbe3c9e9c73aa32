"""InfluxDB wire formats: series keys round-trip through line protocol; any answer bytes raise
only ValueError."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import influx_codec as codec
from storage.records import Samples, Series

text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\\"), min_size=1)
series = st.builds(
    Series.of, text, st.dictionaries(text, text, max_size=4).map(lambda d: sorted(d.items()))
)


@given(series)
def test_series_keys_round_trip_through_line_protocol(s: Series) -> None:
    assert codec.parse_series_key(codec.line_prefix(s, s.metric)) == s


@given(st.binary())
def test_arbitrary_answers_raise_only_value_error(body: bytes) -> None:
    for parse in (codec.parse_query, codec.show_values):
        with contextlib.suppress(ValueError):
            parse(body)


@pytest.mark.slow
@given(
    st.lists(
        st.tuples(st.integers(-(2**62), 2**62), st.floats(allow_nan=False, allow_infinity=False)),
        max_size=20,
    )
)
def test_points_encode_as_one_line_each_with_exact_values(points) -> None:
    s = Series.of("cpu", {"host": "a b"})
    samples = Samples.from_points([(s, t, v) for t, v in points])
    lines = codec.encode_samples(samples, [codec.line_prefix(s, s.metric)]).decode().splitlines()
    assert [
        (int(line.rsplit(" ", 1)[1]), float(line.split("value=")[1].split(" ")[0]))
        for line in lines
    ] == [(t, v) for t, v in points]
    assert all(line.startswith("cpu,host=a\\ b value=") for line in lines)


def test_chunked_answers_join_the_parts_of_a_series() -> None:
    body = (
        b'{"results":[{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"a","x":""},'
        b'"columns":["time","value"],"values":[[1,1.5]],"partial":true}],"partial":true}]}\n'
        b'{"results":[{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"a","x":""},'
        b'"columns":["time","value"],"values":[[1700000000000000001,2]]}]}]}\n'
    )
    (found,) = codec.parse_query(body)
    assert (found.name, found.tags) == ("cpu", (("host", "a"),))
    assert found.ts_ns.tolist() == [1, 1700000000000000001]
    assert np.array_equal(found.columns["value"], [1.5, 2.0])
