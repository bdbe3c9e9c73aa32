"""Backoff: how long to wait before the next try of something that keeps failing.

The wait doubles with each failure in a row, from `first_s` up to `max_s`, optionally scaled by
a random factor so that many clients that failed together do not retry together; a success
starts over. The caller sleeps (a thread's `Event.wait`, `asyncio.sleep`): this only counts.

    backoff = Backoff(0.2, 5.0)
    while not stopping:
        try:
            send()
        except Unavailable:
            stop.wait(backoff.failed())
            continue
        backoff.succeeded()
"""

from __future__ import annotations

import random

_MAX_DOUBLINGS = 60  # far past any max_s; keeps 2**n a float


class Backoff:
    """Waits that double after each failure in a row, from `first_s` up to `max_s`; each is
    scaled by a random factor in [1 - jitter, 1 + jitter] (0: exact)."""

    def __init__(
        self, first_s: float, max_s: float, *, jitter: float = 0.0, rng: random.Random | None = None
    ) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"backoff needs 0 < first_s <= max_s, not {first_s}, {max_s}")
        if not 0 <= jitter < 1:
            raise ValueError(f"backoff jitter must be in [0, 1), not {jitter}")
        self.first_s = first_s
        self.max_s = max_s
        self.jitter = jitter
        self.failures = 0
        self._rng = rng or random.Random()

    def wait_s(self, failures: int) -> float:
        """The wait after `failures` (at least 1) failed tries in a row, before any jitter."""
        doublings = min(max(failures, 1) - 1, _MAX_DOUBLINGS)
        return min(self.max_s, self.first_s * 2.0**doublings)

    def failed(self) -> float:
        """Count a failure; the wait before the next try."""
        self.failures += 1
        wait_s = self.wait_s(self.failures)
        if self.jitter:
            wait_s *= self._rng.uniform(1 - self.jitter, 1 + self.jitter)
        return wait_s

    def succeeded(self) -> None:
        """A try worked: the next failure waits `first_s` again."""
        self.failures = 0
