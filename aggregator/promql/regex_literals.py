"""The strings a label regex can match when it is only literals joined by `|`: what Grafana
writes for a variable (`host=~"$host"` is `h1`, or `h1|h2` with several chosen, dots and other
metacharacters escaped), so that the tag index can look the values up instead of the regex
being tried on every series."""

from __future__ import annotations

_META = frozenset(".^$*+?{}[]\\|()")
_GROUPS = ("(?:", "(")


def literal_alternatives(pattern: str) -> frozenset[str] | None:
    """The strings `pattern` matches whole (as a label matcher anchors it) when it is literals
    joined by `|`, the whole perhaps in one group; None for any other regex."""
    for opening in _GROUPS:
        if pattern.startswith(opening) and pattern.endswith(")"):
            # A group that does not span the pattern (`(a)|(b)`) leaves parentheses inside,
            # which are no literal: None below.
            pattern = pattern[len(opening) : -1]
            break
    found: set[str] = set()
    current: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            # `\.` is a dot; `\d`, `\w`, `\1`, `\x41` and the like are classes or codes.
            if not escaped or not escaped.isascii() or escaped.isalnum():
                return None
            current.append(escaped)
        elif char == "|":
            found.add("".join(current))
            current = []
        elif char in _META:
            return None
        else:
            current.append(char)
    found.add("".join(current))
    return frozenset(found)
