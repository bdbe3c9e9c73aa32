"""TCP newline framing, however a stream is cut into reads."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from collector.line_framing import LineFramer

MAX = 8


def framed(reads: list[bytes]) -> tuple[list[bytes], int]:
    """The non-empty lines delivered, and how many lines were dropped as too long."""
    chunks: list[bytes] = []
    dropped: list[int] = []
    framer = LineFramer(chunks.append, dropped.append, MAX)
    for data in reads:
        framer.feed(data)
    framer.finish()
    assert all(chunks)  # nothing empty is handed on
    return [line for chunk in chunks for line in chunk.split(b"\n") if line], sum(dropped)


@given(
    st.lists(st.binary(max_size=2 * MAX).map(lambda b: b.replace(b"\n", b"x")), max_size=12),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_every_line_arrives_once_and_only_too_long_ones_are_dropped(
    lines: list[bytes], trailing_newline: bool, cuts: list[int]
) -> None:
    stream = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    reads = [stream[a:b] for a, b in pairwise(bounds)]
    delivered, dropped = framed(reads)
    assert delivered == [line for line in lines if 0 < len(line) <= MAX]
    assert dropped == sum(len(line) > MAX for line in lines)


def test_the_tail_of_a_too_long_line_is_never_read_as_a_line() -> None:
    delivered, dropped = framed([b"a" * (MAX + 5), b"bbbb:1|c\nok:1|c\n"])
    assert (delivered, dropped) == ([b"ok:1|c"], 1)
