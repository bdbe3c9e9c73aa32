"""Writes to InfluxDB: each body posted at once, or kept in the on-disk spool and drained in order.

A body goes to `/api/v2/write` through influxdb-client (gzip, retries with backoff) or, with
`api="v1"`, to `/write` with user and password; it is delivered once InfluxDB answered 204.
When InfluxDB is down or slow the body goes to the spool instead (durable, bounded) and a
drainer thread delivers spooled bodies in order; while anything is spooled new bodies queue
behind it. Re-delivery after a crash is harmless: a point written twice is one point.
Points older than the late margin mark their bucket of every rollup tier dirty with a `~dirty`
point in the same body; a spooled body marks every bucket it touches, stamped again when it
is delivered.
"""

from __future__ import annotations

import gzip
import logging
import re
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import numpy as np
import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from storage import influx_codec as codec
from storage.backoff import Backoff
from storage.errors import ServerWriteError
from storage.records import IntArray
from storage.spool import Spool

if TYPE_CHECKING:
    from storage.influx import InfluxConfig

_LOG = logging.getLogger(__name__)

DIRTY = "~dirty"
_MARK = re.compile(rb"^(~dirty,[^ ]+ n=1i) \d+$", re.MULTILINE)
_RETRY_S = (0.2, 5.0)


class Unavailable(Exception):
    """InfluxDB did not answer, answered too late, or answered 5xx/429: try again later."""


class InfluxWriter:
    """Posts line-protocol bodies to InfluxDB; with a spool, keeps those it could not take
    and drains them in order from a thread started by `start()`."""

    def __init__(
        self,
        config: InfluxConfig,
        http: urllib3.PoolManager,
        retries: urllib3.Retry,
        spool: Spool | None,
        *,
        rollup_widths: dict[str, int],
        late_margin_ns: int,
    ) -> None:
        self._config = config
        self._url = config.url.rstrip("/")
        self._http = http
        self._spool = spool
        self._rollup_widths = rollup_widths
        self._late_margin_ns = late_margin_ns
        self._client: InfluxDBClient | None = None
        if config.api == "v2":
            self._client = InfluxDBClient(
                self._url,
                token=config.token,
                org=config.org,
                enable_gzip=True,
                timeout=int(config.timeout_s * 1000),
                retries=retries,
            )
            self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._drainer: threading.Thread | None = None

    def start(self) -> None:
        """Start the drainer thread (none without a spool, or if it runs already)."""
        if self._spool is not None and self._drainer is None:
            self._drainer = threading.Thread(target=self._drain, name="influx-spool-drainer")
            self._drainer.start()

    def close(self) -> None:
        """Stop the drainer (spooled bodies stay on disk for the next start)."""
        self._stop.set()
        self._wake.set()
        if self._drainer is not None:
            self._drainer.join()
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]

    @property
    def spool_depth(self) -> int:
        """Bodies waiting in the spool for InfluxDB."""
        return self._spool.depth if self._spool is not None else 0

    @property
    def spool_bytes(self) -> int:
        return self._spool.size_bytes if self._spool is not None else 0

    def deliver(self, payload: bytes, ts_ns: IntArray) -> None:
        """Send now, or spool when InfluxDB is away or bodies are already queued (order).
        Points sent now mark their buckets dirty if they are older than the late margin;
        spooled ones all do (they arrive late), stamped again when they are delivered."""
        assert self._spool is not None  # the store checks it is writable
        if not self._spool.depth:
            late = ts_ns[ts_ns < time.time_ns() - self._late_margin_ns]
            try:
                self.post(payload + self._marks(late))
                return
            except Unavailable as error:
                _LOG.warning("InfluxDB is unavailable (%s): spooling writes", error)
        self._spool.append(payload + self._marks(ts_ns))
        self._wake.set()

    def _marks(self, ts_ns: IntArray) -> bytes:
        """`~dirty` lines for the bucket of each of `ts_ns` in every rollup tier, stamped now."""
        stamp = time.time_ns()
        lines = [
            f"{DIRTY},bucket={bucket},tier={codec.key_text(tier)} n=1i {stamp}"
            for tier, width in self._rollup_widths.items()
            for bucket in np.unique(ts_ns - ts_ns % width).tolist()
        ]
        return ("\n".join(lines) + "\n").encode() if lines else b""

    def post(self, payload: bytes) -> None:
        """Write `payload` now: `Unavailable` if InfluxDB may take it later, `ServerWriteError`
        if it never will."""
        try:
            if self._client is not None:
                self._write_api.write(self._config.bucket, self._config.org, payload)
                return
            params = {"db": self._config.database, "precision": "ns"}
            if self._config.user:
                params |= {"u": self._config.user, "p": self._config.password}
            response = self._http.request(
                "POST",
                f"{self._url}/write?{urlencode(params)}",
                body=gzip.compress(payload, 1),
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
            )
        except ApiException as error:
            _check_status(error.status or 0, str(error.body))
            return
        except urllib3.exceptions.HTTPError as error:
            raise Unavailable(str(error)) from error
        _check_status(response.status, response.data.decode(errors="replace"))

    def _drain(self) -> None:
        """Deliver spooled bodies oldest first, each removed only once InfluxDB took it."""
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
                self.post(_MARK.sub(b"\\1 %d" % time.time_ns(), payload))
            except Unavailable:
                self._stop.wait(backoff.failed())
                continue
            except ServerWriteError:
                _LOG.exception("dropping spooled write %d: InfluxDB will never take it", seq)
            self._spool.remove(seq)
            backoff.succeeded()


def _check_status(status: int, body: str) -> None:
    if status >= 500 or status == 429:
        raise Unavailable(f"HTTP {status}: {body[:200]}")
    if status >= 300:
        raise ServerWriteError(f"InfluxDB refused a write: HTTP {status}: {body[:200]}")
