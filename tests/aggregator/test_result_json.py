"""The query answer's JSON, written from whole arrays, is byte for byte what orjson writes of
the points as pairs: every float (NaN and infinities as null, -0.0, the shortest digits) and
every time."""

from __future__ import annotations

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aggregator.query import QueryResult, ResultSeries, result_json

POINTS = st.integers(0, 40).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.int64, n, elements=st.integers(-(2**63), 2**63 - 1)),
        hnp.arrays(np.float64, n, elements=st.floats(allow_nan=True, allow_infinity=True)),
    )
)


def pairs_json(result: QueryResult) -> bytes:
    """The answer as orjson writes it from lists of (time, value) pairs."""
    return orjson.dumps(
        {
            "series": [
                {
                    "metric": s.metric,
                    "tags": s.tags,
                    "points": list(zip(s.ts_ms.tolist(), s.values.tolist(), strict=True)),
                }
                for s in result.series
            ],
            "step_ms": result.step_ms,
            "tier": result.tier,
        }
    )


@settings(max_examples=40)
@given(st.lists(POINTS, max_size=4))
def test_the_answer_is_what_orjson_writes_of_the_pairs(
    points: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    series = tuple(
        ResultSeries("api.latency", {"host": str(i)}, ts_ms, values)
        for i, (ts_ms, values) in enumerate(points)
    )
    result = QueryResult(series, 3_600_000, "1h")
    assert result_json(result) == pairs_json(result)


def test_a_slice_of_a_wider_array_is_written_too() -> None:
    values = np.arange(12, dtype=np.float64).reshape(3, 4)[:, 1]  # not contiguous
    ts_ms = np.arange(0, 30, 10, dtype=np.int64)
    result = QueryResult((ResultSeries("m", {}, ts_ms, values),), 10, "raw")
    assert orjson.loads(result_json(result))["series"][0]["points"] == [
        [0, 1.0],
        [10, 5.0],
        [20, 9.0],
    ]
