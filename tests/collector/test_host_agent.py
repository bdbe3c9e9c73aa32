"""The agent's line protocol reads back, through our own parser, as the samples it came from."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from collector.host_agent import HostSampler, to_line_protocol
from collector.influx_line import parse_influx
from storage.records import Samples, Series

# What hosts name disks and interfaces: spaces, commas, equals signs and Windows paths too
# (but no backslash before an escapable byte: line protocol cannot say that).
names = st.text(st.sampled_from("abz09 ,=\\:/._-"), min_size=1, max_size=12).filter(
    lambda s: (
        not s.endswith("\\")
        and not any(s[i] == "\\" and s[i + 1] in ",= \\" for i in range(len(s) - 1))
    )
)


@given(st.dictionaries(st.sampled_from(["host", "path", "interface"]), names, max_size=3))
def test_tags_with_spaces_commas_and_backslashes_read_back_unchanged(tags: dict[str, str]) -> None:
    series = Series.of("disk.used_percent", tags)
    result = parse_influx(to_line_protocol(Samples.from_points([(series, 7, 12.5)])), 0)
    assert result.dropped == {}
    assert result.samples.points() == [(series, 7, 12.5)]


def test_a_real_sample_of_this_host_reads_back_whole() -> None:
    samples = HostSampler(host=r"C:\host one").sample(now_ns=1_000)
    result = parse_influx(to_line_protocol(samples), 0)
    assert result.dropped == {}
    assert sorted(result.samples.points(), key=str) == sorted(samples.points(), key=str)
