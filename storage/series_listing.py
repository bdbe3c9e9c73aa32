"""The series a remote store (InfluxDB, VictoriaMetrics) holds: the server's list, fetched again
after a TTL, plus the series this process wrote since, so a write is listed at once and the
series limit counts it."""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
import time
from collections.abc import Callable

from storage.errors import StorageError
from storage.records import Series
from storage.series_index import sort_key
from storage.stale_markers import STALE_METRIC, listed

_LOG = logging.getLogger(__name__)


class SeriesListing:
    """`fetch()` lists the server's series (StorageError when it is away); thread-safe."""

    def __init__(self, server: str, fetch: Callable[[], set[Series]], ttl_s: float) -> None:
        self._server = server
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._listed: set[Series] = set()
        self._written: set[Series] = set()
        self._listed_at = -float("inf")

    def admit(self, series: Series, max_series: int) -> bool:
        """Whether a write may add `series` (listed already, or room under `max_series`);
        listed from now on if so."""
        with self._lock:
            if series not in self._listed and len(self._listed) >= max_series:
                return False
            self._listed.add(series)
            self._written.add(series)
            return True

    def metrics(self, pattern: str = "*") -> list[str]:
        """Metric names matching the glob `pattern`, sorted."""
        names = listed(sorted({s.metric for s in self.current()}))
        if pattern == "*":
            return names
        match = re.compile(fnmatch.translate(pattern)).match
        return [name for name in names if match(name)]

    def series(self, metric: str | None = None) -> list[Series]:
        current = self.current()
        chosen = (
            {s for s in current if s.metric != STALE_METRIC}
            if metric is None
            else {s for s in current if s.metric == metric}
        )
        return sorted(chosen, key=sort_key)

    def count(self) -> int:
        """Series listed when last asked (`/metrics` calls this on the event loop, so it lists
        anew only on its first call) plus those written since."""
        never = self._listed_at == -float("inf")
        return len(self.current(self._ttl_s if never else float("inf")))

    def invalidate(self) -> None:
        """List anew on the next call (after retention dropped series)."""
        with self._lock:
            self._listed_at = -float("inf")

    def current(self, ttl_s: float | None = None) -> set[Series]:
        """The listing, fetched again if older than `ttl_s` (default: the TTL)."""
        if time.monotonic() - self._listed_at >= (self._ttl_s if ttl_s is None else ttl_s):
            started = time.monotonic()
            try:
                listed = self._fetch()
            except StorageError:
                _LOG.warning("%s is unavailable: the series listing may be stale", self._server)
                with self._lock:
                    self._listed_at = started  # not again before the TTL: callers wait on it
            else:
                with self._lock:
                    self._listed = listed | self._written
                    self._listed_at = started
        with self._lock:
            return set(self._listed)
