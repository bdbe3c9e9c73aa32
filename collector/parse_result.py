"""What a line-protocol parser returns: the good points as columns, and what it dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from collector.errors import ParseError
from storage.records import Samples


@dataclass(frozen=True, slots=True)
class ParseResult:
    """The good points of a body as one batch, bad lines counted by `ParseError.reason`, the
    first bad line for error messages, and how many string fields were skipped."""

    samples: Samples
    dropped: Counter[str] = field(default_factory=Counter)
    first_error: ParseError | None = None
    skipped_strings: int = 0
