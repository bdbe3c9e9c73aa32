"""Which sketch times of each tier changed, numbered: what a cache of query answers checks to
stay exact (`aggregator.sketch_cache`).

Every write, rollup or backfill that adds sketches to a tier notes the span [lo, hi] of their
times; retention raising a tier's floor notes everything below it; a reader reloading a data
dir notes everything. Spans are numbered by one counter; the oldest are forgotten past `keep`
per tier, and a caller asking about changes from before them is told that everything changed.
"""

from __future__ import annotations

from collections import deque

Span = tuple[int, int]  # [lo, hi], inclusive: times of sketch rows (bucket starts)

_EVERYTHING: Span = (-(2**63), 2**63 - 1)


class ChangeLog:
    """Numbered spans of changed sketch times per tier; not thread-safe (the store's write
    lock guards it)."""

    def __init__(self, keep: int = 1024) -> None:
        self._keep = keep
        self._number = 0
        self._spans: dict[str, deque[tuple[int, Span]]] = {}
        self._lost: dict[str, int] = {}  # per tier, the newest change number forgotten
        self._reloaded = 0  # the number of the last `note_everything`

    @property
    def number(self) -> int:
        """The number of the last change noted (0 before any)."""
        return self._number

    def note(self, tier: str, lo: int, hi: int) -> None:
        """Sketch times [lo, hi] of `tier` changed."""
        self._number += 1
        spans = self._spans.setdefault(tier, deque())
        spans.append((self._number, (lo, hi)))
        if len(spans) > self._keep:
            self._lost[tier] = spans.popleft()[0]

    def note_everything(self) -> None:
        """Every time of every tier may have changed (a data dir reloaded)."""
        self._number += 1
        self._reloaded = self._number
        for spans in self._spans.values():
            spans.clear()

    def since(self, tier: str, number: int) -> tuple[Span, ...]:
        """The spans of `tier` changed after change `number`; everything when `number` is
        older than what is kept (or a reload came after it)."""
        if number < max(self._lost.get(tier, 0), self._reloaded):
            return (_EVERYTHING,)
        return tuple(span for n, span in self._spans.get(tier, ()) if n > number)
