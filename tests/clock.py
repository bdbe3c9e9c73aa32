"""A clock that tests move by hand, injected where the code takes `clock: Callable[[], int]`."""

from __future__ import annotations


class Clock:
    """Answers `now_ns` (int epoch ns) until the test sets another."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns
