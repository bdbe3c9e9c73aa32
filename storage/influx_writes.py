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
import re
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import numpy as np
import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from storage import influx_codec as codec
from storage.records import IntArray
from storage.spool import Spool
from storage.spool_drain import SpoolDrainer, Unavailable, check_status

if TYPE_CHECKING:
    from storage.influx import InfluxConfig

DIRTY = "~dirty"
_MARK = re.compile(rb"^(~dirty,[^ ]+ n=1i) \d+$", re.MULTILINE)


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
        self._drainer = SpoolDrainer("InfluxDB", spool, self.post, _restamp)

    def start(self) -> None:
        """Start the drainer thread (none without a spool, or if it runs already)."""
        self._drainer.start()

    def close(self) -> None:
        """Stop the drainer (spooled bodies stay on disk for the next start)."""
        self._drainer.close()
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]

    @property
    def spool_depth(self) -> int:
        """Bodies waiting in the spool for InfluxDB."""
        return self._drainer.depth

    @property
    def spool_bytes(self) -> int:
        return self._drainer.size_bytes

    def deliver(self, payload: bytes, ts_ns: IntArray) -> None:
        """Send now, or spool when InfluxDB is away or bodies are already queued (order).
        Points sent now mark their buckets dirty if they are older than the late margin;
        spooled ones all do (they arrive late), stamped again when they are delivered."""
        late = ts_ns[ts_ns < time.time_ns() - self._late_margin_ns]
        self._drainer.deliver(payload + self._marks(late), payload + self._marks(ts_ns))

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


def _restamp(body: bytes) -> bytes:
    """A spooled body's dirty marks, stamped again as it is delivered."""
    return _MARK.sub(b"\\1 %d" % time.time_ns(), body)


def _check_status(status: int, body: str) -> None:
    check_status("InfluxDB", status, body)
