"""How the harness reads servers' counters and compares their answers (`pytest bench`)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bench.answers import agreement, fixed_window
from bench.load import influx_count
from bench.queries import QUERIES

_COUNTERS = (
    b'shipboard_received_total{protocol="influx"}',
    b'vm_rows_inserted_total{type="influx"}',
)
# Lines a server shows beside its count: other protocols, other counters named alike.
_OTHERS = st.sampled_from(
    [
        b'shipboard_received_total{protocol="statsd"} 12',
        b'vm_rows_inserted_total{type="prometheus"} 7',
        b'vm_protoparser_rows_read_total{type="influx"} 99',
        b'vm_rows_invalid_total{type="influx"} 3',
        b"# TYPE shipboard_received_total counter",
    ]
)


@given(
    counter=st.sampled_from(_COUNTERS),
    count=st.integers(0, 10**12),
    before=st.lists(_OTHERS, max_size=5),
    after=st.lists(_OTHERS, max_size=5),
    exponent=st.booleans(),
)
def test_influx_count_reads_the_line_protocol_counter_of_either_server(
    counter: bytes, count: int, before: list[bytes], after: list[bytes], exponent: bool
) -> None:
    shown = b"%.6e" % count if exponent and count % 10**6 == 0 else b"%d" % count
    metrics = b"\n".join([*before, counter + b" " + shown, *after]) + b"\n"
    assert influx_count(metrics) == count


@given(st.lists(_OTHERS, max_size=5))
def test_influx_count_is_zero_before_the_first_point(others: list[bytes]) -> None:
    assert influx_count(b"\n".join(others)) == 0


def test_fixed_windows_are_whole_buckets_inside_the_week() -> None:
    end_s = 1_796_312_440  # 10 s aligned, not on a minute
    windows = {name: fixed_window(query, end_s) for name, query in QUERIES.items()}
    assert windows == {
        "one_series_7d_1h_ms": (1_795_708_800, 1_796_310_000),  # 167 whole hours
        "all_series_24h_5m_ms": (1_796_226_300, 1_796_312_400),  # 287 whole 5 min
        "all_series_15m_raw_ms": (1_796_311_540, 1_796_312_440),  # 90 points
    }


def _details(values: list[list[float]], q2_points: int = 2870) -> list[dict[str, Any]]:
    window = [1_795_708_800, 1_796_310_000]
    fixed = {
        "one_series_7d_1h_ms": {"window_s": window, "series": 1, "points": len(values),
                                "values": values},
        "all_series_24h_5m_ms": {"window_s": [0, 1], "series": 10, "points": q2_points},
        "all_series_15m_raw_ms": {"window_s": [0, 1], "series": 10, "points": 900},
    }  # fmt: skip
    return [{"prepare": {}}, {"fixed": fixed}]


def test_agreement_compares_counts_and_the_one_series_values() -> None:
    values = [[1_795_708_800_000 + 3_600_000 * i, 50.0 + i / 3] for i in range(167)]
    close = [[t, v * (1 + 1e-12)] for t, v in values]
    verdicts = agreement(_details(values), _details(close))
    assert all(verdict["agree"] for verdict in verdicts.values())
    assert verdicts["one_series_7d_1h_ms"]["values_differing"] == 0

    off = [*close[:-1], [close[-1][0], close[-1][1] + 0.01]]
    shifted = [[t + 1000, v] for t, v in values]
    assert agreement(_details(values), _details(off))["one_series_7d_1h_ms"] == {
        "series": [1, 1], "points": [167, 167], "values_differing": 2, "agree": False,
    }  # fmt: skip
    assert agreement(_details(values), _details(shifted))["one_series_7d_1h_ms"]["agree"] is False
    fewer = agreement(_details(values), _details(values, q2_points=2860))
    assert fewer["all_series_24h_5m_ms"] == {"series": [10, 10], "points": [2870, 2860],
                                             "agree": False}  # fmt: skip
