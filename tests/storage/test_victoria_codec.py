"""VictoriaMetrics' JSON lines and URLs, without a server: any batch round-trips through the
import/export format, any sketch through its per-key series, any tag value through a selector
that PromQL's own parser reads back, and the single-node and cluster paths are the documented
ones."""

from __future__ import annotations

import numpy as np
import promql_parser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import victoria_codec as codec
from storage.records import NS_PER_MS, Samples, Series
from storage.victoria_config import VictoriaConfig
from tests.storage.sketch_cases import rows_of, scales, sketch_batch, value_lists

label_names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in ("__name__", codec.KEY_LABEL, codec.SCALE_LABEL)
)
series_strategy = st.builds(
    Series.of,
    st.text(min_size=1, max_size=12).filter(lambda name: not name.startswith("~")),
    st.dictionaries(label_names, st.text(min_size=1, max_size=12), max_size=3),
)
points = st.lists(
    st.tuples(
        series_strategy,
        st.integers(0, 2**41).map(lambda ms: ms * NS_PER_MS),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    max_size=30,
)


@pytest.mark.slow
@given(points)
def test_any_batch_round_trips_through_import_lines(sent: list[tuple[Series, int, float]]) -> None:
    samples = Samples.from_points(sent)
    body, left_out = codec.encode_samples(samples)
    assert left_out == 0
    got = codec.decode_samples(body, samples.series)
    last = {(s, t): v for s, t, v in sent}  # one point per series and millisecond: the last
    want = sorted(last.items(), key=lambda kv: (samples.series.index(kv[0][0]), kv[0][1]))
    assert got.points() == [(s, t, v) for (s, t), v in want]
    everything = codec.decode_samples(body, None)
    assert sorted(everything.points(), key=str) == sorted(got.points(), key=str)


def test_points_that_are_not_finite_are_left_out_and_counted() -> None:
    a = Series("a")
    samples = Samples.from_points([(a, 1, np.nan), (a, 2, 1.0), (a, 3, np.inf), (a, 4, -np.inf)])
    body, left_out = codec.encode_samples(samples)
    assert left_out == 3
    assert codec.decode_samples(body, [a]).values.tolist() == [1.0]


@pytest.mark.slow
@given(
    st.lists(
        st.tuples(series_strategy, st.integers(0, 2**30), value_lists()), min_size=1, max_size=4
    ),
    scales,
)
def test_any_sketches_round_trip_through_their_per_key_series(entries, scale: int) -> None:
    entries = [(s, ms * NS_PER_MS, values) for s, ms, values in entries]
    # One sketch per (series, time), as a flush writes them.
    entries = list({(s, t): (s, t, v) for s, t, v in entries}.values())
    with np.errstate(over="ignore", invalid="ignore"):  # huge values sum to inf (or nan)
        sent = sketch_batch(entries, scale)
    finite = np.isfinite(sent.values)
    got = codec.decode_sketches(codec.encode_sketches(sent), None)
    if finite.all():
        assert sorted(rows_of(got)) == sorted(rows_of(sent))
    else:  # a sum that overflowed: that row is left out, the rest of the sketch stays
        assert len(got) == len(sent) - np.count_nonzero(~finite)


@given(st.text(min_size=1, max_size=20), st.text(max_size=20))
def test_any_tag_value_survives_a_selector(metric: str, value: str) -> None:
    selector = codec.selector(metric, [Series.of(metric, {"host": value})])
    parsed = promql_parser.parse(selector)
    assert isinstance(parsed, promql_parser.VectorSelector)
    matchers = {m.name: m.value for m in parsed.matchers.matchers}
    assert matchers == {"__name__": metric, "host": value}


def test_a_tag_a_selector_cannot_spell_is_refused() -> None:
    odd = Series.of("m", {"k.8s": "x"})
    assert not codec.matchable(odd)
    with pytest.raises(ValueError, match="cannot be matched"):
        codec.selector("m", [odd])


def test_a_single_node_serves_every_api_at_its_root() -> None:
    config = VictoriaConfig(url="http://vm:8428/")
    assert config.import_url == "http://vm:8428/api/v1/import"
    assert config.read_url("export") == "http://vm:8428/api/v1/export"
    assert config.read_url("query_range") == "http://vm:8428/api/v1/query_range"
    assert config.flush_url == "http://vm:8428/internal/force_flush"
    assert not config.cluster


def test_a_cluster_writes_to_vminsert_and_reads_from_vmselect_under_the_tenant() -> None:
    config = VictoriaConfig(
        insert_url="http://vminsert:8480", select_url="https://vmselect:8481/", tenant="42:7"
    )
    assert config.cluster
    assert config.import_url == "http://vminsert:8480/insert/42:7/prometheus/api/v1/import"
    assert config.read_url("export") == "https://vmselect:8481/select/42:7/prometheus/api/v1/export"
    assert config.read_url("series") == "https://vmselect:8481/select/42:7/prometheus/api/v1/series"
    assert config.flush_url is None
    default = VictoriaConfig(insert_url="http://i:8480", select_url="http://s:8481")
    assert default.import_url == "http://i:8480/insert/0/prometheus/api/v1/import"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({}, "needs --vm-url"),
        ({"insert_url": "http://i:8480"}, "needs --vm-url"),
        ({"url": "http://vm:8428", "select_url": "http://s:8481"}, "give --vm-url"),
        ({"url": "http://vm:8428", "tenant": "team-a"}, "--vm-tenant must be"),
        ({"url": "vm:8428"}, "must be http"),
    ],
)
def test_a_wrong_configuration_says_what_to_fix(options: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        VictoriaConfig(**options)  # type: ignore[arg-type]


def test_an_empty_answer_is_an_empty_batch() -> None:
    assert len(codec.decode_samples(b"", None)) == 0
    assert len(codec.decode_sketches(b"\n", None)) == 0
