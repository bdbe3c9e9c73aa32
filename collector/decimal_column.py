"""A column of plain decimals (`-12.5`, `3`, `.25`, `7.`) parsed at once with numpy, to the bit
what `float()` gives each.

Each value's digits make an integer mantissa m and its fractional digits a power k, and the
value is m / 10^k: with m below 2^53 and k at most 22 both are exact doubles, so the one IEEE
division rounds the exact quotient correctly, which is what `float()` does (Clinger's fast path
of strtod). A column with anything else (exponents, more than 15 digits in a value, a stray
sign or dot) is None: the caller parses it value by value.
"""

from __future__ import annotations

import numpy as np

from storage.records import FloatArray

_SPACE, _MINUS, _DOT, _ZERO = ord(" "), ord("-"), ord("."), ord("0")
_MAX_DIGITS = 15  # 10^15 < 2^53: every mantissa exact
_POWERS = 10.0 ** np.arange(23)  # exact doubles up to 10^22
_DIGIT_POWERS = 10 ** np.arange(_MAX_DIGITS, dtype=np.int64)


def parse_decimals(joined: bytes, count: int) -> FloatArray | None:
    """The `count` space-separated decimals of `joined` (its bytes only digits, `-`, `.` and
    single spaces between values), or None when one is not of the plain form."""
    data = np.frombuffer(joined, np.uint8)
    if not len(data):
        return None
    space = data == _SPACE
    token = np.cumsum(space)  # each byte's value number (a space: the next one's)
    if int(token[-1]) != count - 1:
        return None
    digit = (data >= _ZERO) & (data <= _ZERO + 9)
    dot, minus = data == _DOT, data == _MINUS
    starts = np.concatenate([[0], np.flatnonzero(space) + 1])
    digits = np.bincount(token[digit], minlength=count)
    dots = np.bincount(token[dot], minlength=count)
    if (
        (digits == 0).any()
        or (digits > _MAX_DIGITS).any()
        or (dots > 1).any()
        # A minus only first in its value; every byte a digit, dot, minus or separator.
        or np.count_nonzero(minus) != np.count_nonzero(minus[starts[starts < len(data)]])
        or np.count_nonzero(digit | dot | minus | space) != len(data)
    ):
        return None
    # Digits after the dot (if any) of each value: its k; the place of each digit from the
    # right within its value: its power of ten in the mantissa.
    digit_at = np.flatnonzero(digit)
    digit_token = token[digit_at]
    ends = np.cumsum(digits)  # one past each value's last digit, among all digits
    place = ends[digit_token] - 1 - np.arange(len(digit_at))
    mantissa = np.bincount(
        digit_token,
        (data[digit_at] - _ZERO).astype(np.int64) * _DIGIT_POWERS[place],
        minlength=count,
    )
    fraction = np.zeros(count, np.int64)
    with_dot = np.flatnonzero(dot)
    if len(with_dot):  # the digits of its value after the dot: all but those up to the dot
        dot_token = token[with_dot]
        fraction[dot_token] = ends[dot_token] - np.cumsum(digit)[with_dot]
    # bincount's float sums of the exact int64 terms are exact: m < 2^53.
    values = mantissa / _POWERS[fraction]
    negative = np.zeros(count, np.bool_)
    negative[token[minus]] = True
    return np.where(negative, -values, values)
