"""Writes to a remote metric server (InfluxDB, VictoriaMetrics): each body posted at once, or
kept in the on-disk spool while the server is away and delivered in order by a thread.

While anything is spooled, new bodies queue behind it, so the server sees writes in the order
they were acknowledged. A spooled body is removed only once the server took it (or refused it
as bad for good, which is logged): re-delivery after a crash writes a point twice, which both
servers keep as one point.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from storage.backoff import Backoff
from storage.errors import ServerWriteError
from storage.spool import Spool

_LOG = logging.getLogger(__name__)

_RETRY_S = (0.2, 5.0)


class Unavailable(Exception):
    """The server did not answer, answered too late, or answered 5xx/429: try again later."""


def check_status(server: str, status: int, body: str) -> None:
    """`Unavailable` for an answer worth retrying, `ServerWriteError` for a refusal."""
    if status >= 500 or status == 429:
        raise Unavailable(f"HTTP {status}: {body[:200]}")
    if status >= 300:
        raise ServerWriteError(f"{server} refused a write: HTTP {status}: {body[:200]}")


class SpoolDrainer:
    """Delivers bodies with `post` now, or spools them; `start()` runs the drainer thread.
    `on_drain` rewrites a spooled body just before it is delivered (InfluxDB's dirty marks are
    stamped again then)."""

    def __init__(
        self,
        server: str,
        spool: Spool | None,
        post: Callable[[bytes], None],
        on_drain: Callable[[bytes], bytes] = lambda body: body,
    ) -> None:
        self._server = server
        self._spool = spool
        self._post = post
        self._on_drain = on_drain
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the drainer thread (none without a spool, or if it runs already)."""
        if self._spool is not None and self._thread is None:
            name = f"{self._server.lower()}-spool-drainer"
            self._thread = threading.Thread(target=self._drain, name=name)
            self._thread.start()

    def close(self) -> None:
        """Stop the drainer (spooled bodies stay on disk for the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def depth(self) -> int:
        """Bodies waiting in the spool."""
        return self._spool.depth if self._spool is not None else 0

    @property
    def size_bytes(self) -> int:
        return self._spool.size_bytes if self._spool is not None else 0

    def deliver(self, now: bytes, spooled: bytes | None = None) -> None:
        """Post `now`, or spool `spooled` (default: the same body) when the server is away or
        bodies are already queued. Raises SpoolFullError when the spool is full."""
        assert self._spool is not None  # the store checks it is writable
        if not self._spool.depth:
            try:
                self._post(now)
                return
            except Unavailable as error:
                _LOG.warning("%s is unavailable (%s): spooling writes", self._server, error)
        self._spool.append(now if spooled is None else spooled)
        self._wake.set()

    def _drain(self) -> None:
        """Deliver spooled bodies oldest first, each removed only once the server took it."""
        assert self._spool is not None
        backoff = Backoff(*_RETRY_S)
        while not self._stop.is_set():
            record = self._spool.oldest()
            if record is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            seq, payload = record
            try:
                self._post(self._on_drain(payload))
            except Unavailable:
                self._stop.wait(backoff.failed())
                continue
            except ServerWriteError:
                _LOG.exception("dropping spooled write %d: %s never takes it", seq, self._server)
            self._spool.remove(seq)
            backoff.succeeded()
