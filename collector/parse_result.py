"""What a line-protocol parser returns, and how a parser splits a body around its odd lines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from collector.errors import ParseError
from storage.records import Samples

# Below this size a part the fast path refuses is parsed the exact way at once.
MIN_SPLIT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class ParseResult:
    """The good points of a body as one batch, bad lines counted by `ParseError.reason`, the
    first bad line for error messages, and how many string fields were skipped."""

    samples: Samples
    dropped: Counter[str] = field(default_factory=Counter)
    first_error: ParseError | None = None
    skipped_strings: int = 0

    @classmethod
    def merge(cls, parts: Sequence[ParseResult]) -> ParseResult:
        """One result for consecutive parts of a body, points in part order."""
        dropped: Counter[str] = Counter()
        for part in parts:
            dropped.update(part.dropped)
        errors = [part.first_error for part in parts if part.first_error is not None]
        return cls(
            Samples.concat([part.samples for part in parts]),
            dropped,
            errors[0] if errors else None,
            sum(part.skipped_strings for part in parts),
        )


def parse_in_parts(
    data: bytes,
    fast: Callable[[bytes], ParseResult | None],
    exact: Callable[[bytes], ParseResult],
    min_bytes: int = MIN_SPLIT_BYTES,
) -> ParseResult:
    """`fast` on the whole body; where it refuses, halve the body at a newline and try again,
    down to small parts parsed by `exact`. One bad line then costs about two fast passes over
    the body instead of an exact pass. Only for formats where no value spans a newline."""
    result = fast(data)
    if result is not None:
        return result
    halves = split_near_middle(data) if len(data) > min_bytes else None
    if halves is None:
        return exact(data)
    return ParseResult.merge([parse_in_parts(half, fast, exact, min_bytes) for half in halves])


def split_near_middle(data: bytes) -> tuple[bytes, bytes] | None:
    """`data` cut at the newline nearest after its middle (else before it), or None."""
    middle = data.find(b"\n", len(data) // 2)
    if middle < 0:
        middle = data.rfind(b"\n", 0, len(data) // 2)
    return None if middle < 0 else (data[:middle], data[middle + 1 :])


_NOT_SPACE_OR_NEWLINE = bytes(b for b in range(256) if b not in b" \n")
_LINE_SEPARATORS = {2: b" \n", 3: b"  \n"}


def uniform_width(body: bytes, count: int) -> int:
    """3 when each of the `count` lines is `a b c`, 2 when each is `a b`, else 0: the spaces
    and newlines of the body, in order, must be one pattern repeated."""
    separators = body.translate(None, _NOT_SPACE_OR_NEWLINE)
    width = len(separators) // count + 1
    expected = _LINE_SEPARATORS.get(width, b"") * count
    return width if expected and separators == expected[:-1] else 0
