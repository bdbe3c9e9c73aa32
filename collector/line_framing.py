"""Newline framing of a TCP stream, shared by the StatsD and Graphite listeners and the relay."""

from __future__ import annotations

from collections.abc import Callable

MAX_LINE_BYTES = 64 * 1024


class LineFramer:
    """Hands each read's complete lines to `deliver` at once (one chunk, without its last
    newline); a partial line waits for the next read. A line longer than `max_line_bytes` is
    counted by `on_too_long` and dropped, the rest of it up to its newline discarded."""

    def __init__(
        self,
        deliver: Callable[[bytes], None],
        on_too_long: Callable[[int], None],
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self._deliver = deliver
        self._on_too_long = on_too_long
        self._max = max_line_bytes
        self._partial = b""
        self._discarding = False  # inside an over-long line, waiting for its newline

    def feed(self, data: bytes) -> None:
        if self._partial:
            data = self._partial + data
            self._partial = b""
        end = data.rfind(b"\n")
        complete, rest = data[: max(end, 0)], data[end + 1 :]
        if self._discarding and end >= 0:
            cut = complete.find(b"\n")
            complete = b"" if cut < 0 else complete[cut + 1 :]
            self._discarding = False
        if not self._discarding:
            if len(rest) > self._max:
                self._on_too_long(1)
                self._discarding = True
            else:
                self._partial = rest
        if len(complete) > self._max:
            complete = self._without_long_lines(complete)
        if complete:
            self._deliver(complete)

    def finish(self) -> None:
        """The stream ended: a last line without its newline still counts."""
        if self._partial and not self._discarding:
            self._deliver(self._partial)
        self._partial = b""

    def _without_long_lines(self, chunk: bytes) -> bytes:
        lines = chunk.split(b"\n")
        if max(map(len, lines)) <= self._max:  # the usual case, checked in C
            return chunk
        kept = [line for line in lines if len(line) <= self._max]
        self._on_too_long(len(lines) - len(kept))
        return b"\n".join(kept)
