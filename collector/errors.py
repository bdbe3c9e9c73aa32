"""Errors of the collector.

CollectorError
 └── ParseError(ValueError)   one input line is malformed; carries `reason` and the line
"""

from __future__ import annotations

_SHOWN = 200


class CollectorError(Exception):
    """Base of every collector error."""


class ParseError(CollectorError, ValueError):
    """A malformed input line. `reason` is a short code (`bad_value`, `no_field`, ...) used as
    the label of the dropped-lines counter; `line` is the offending input, truncated."""

    def __init__(self, reason: str, line: bytes | str, detail: str = "") -> None:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        self.reason = reason
        self.line = text[:_SHOWN] + ("..." if len(text) > _SHOWN else "")
        self.detail = detail
        super().__init__(f"{reason}: {detail + ': ' if detail else ''}{self.line!r}")
