"""The vectorised decimal column gives float()'s value to the bit, or None and the caller parses
value by value; never another number."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from collector.decimal_column import parse_decimals

plain = st.builds(
    lambda sign, whole, dot, fraction: (sign + whole + dot + fraction) or "0",
    st.sampled_from(["", "-"]),
    st.text("0123456789", max_size=7),
    st.sampled_from(["", "."]),
    st.text("0123456789", max_size=7),
).filter(lambda text: any(c.isdigit() for c in text) and not text.endswith("-"))


def bits(values: list[float]) -> list[str]:
    return [math.copysign(1, v).hex() + v.hex() for v in values]


@given(st.lists(plain, min_size=1, max_size=60))
def test_plain_decimals_are_floats_to_the_bit(texts: list[str]) -> None:
    joined = " ".join(texts).encode()
    parsed = parse_decimals(joined, len(texts))
    assert parsed is not None, texts
    assert bits(parsed.tolist()) == bits([float(t) for t in texts])


@given(st.text("0123456789.- e", min_size=1, max_size=80))
def test_any_bytes_of_the_alphabet_give_floats_or_none(text: str) -> None:
    joined = text.encode()
    parsed = parse_decimals(joined, joined.count(b" ") + 1)
    if parsed is None:
        return
    assert bits(parsed.tolist()) == bits([float(t) for t in joined.split(b" ")])


def test_long_mantissas_and_exponents_are_left_to_float() -> None:
    assert parse_decimals(b"1234567890123456 1", 2) is None  # 16 digits: not exact in the sum
    assert parse_decimals(b"1e3 1", 2) is None
    assert parse_decimals(b"1 2", 3) is None  # not the count the caller found
