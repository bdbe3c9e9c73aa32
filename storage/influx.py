"""The InfluxDB store: Shipboard's metrics in InfluxDB, for more than one machine.

Layout in one database (v1) or bucket (v2), all in its default retention policy:

    <metric>,<tags> value=<float>                       raw points
    ~<tier>:<metric>,<tags> min=,max=,sum=,count=,last=  rollup rows, one point per bucket
    ~meta,tier=<tier> watermark=<int>i 0                 each tier's watermark

Names starting with `~` are the store's own, so a metric may not start with one. Retention is
`DELETE ... WHERE time < now - retention` per tier (a measurement regex tells tiers apart):
InfluxDB's retention policies are per database and refuse points older than their duration,
which would refuse backfills a tier still keeps.

Writes go to `/api/v2/write` through influxdb-client (gzip, retries with backoff) or, with
`api="v1"`, to `/write` with user and password; a write is acknowledged once InfluxDB answered
204. When InfluxDB is down or slow the write goes to the spool instead (durable, bounded) and a
drainer thread delivers spooled writes in order; while anything is spooled new writes queue
behind it. Re-delivery after a crash is harmless: a point written twice is one point.
Rollup rows are combined with the stored rows of the same bucket before they are written (read,
combine, overwrite), since InfluxDB keeps one point per series and time; one aggregator writes.
Reads are one InfluxQL query each over `/query` (chunked JSON, orjson, numpy).
"""

from __future__ import annotations

import fnmatch
import gzip
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import orjson
import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from storage import influx_codec as codec
from storage.base import WriteResult
from storage.columns import ROLLUP_WIDTH, Columns, IdArray, merge
from storage.errors import (
    ReadOnlyStoreError,
    ServerWriteError,
    StorageError,
    StoreClosedError,
)
from storage.records import (
    RAW,
    FloatArray,
    IndexArray,
    IntArray,
    Rollups,
    Samples,
    Series,
    Tier,
)
from storage.series_index import sort_key
from storage.spool import Spool

_LOG = logging.getLogger(__name__)

_META = "~meta"
_RAW_MEASUREMENTS = "^[^~]"
_MIN_TS, _MAX_TS = -(2**63) + 2, 2**63 - 2  # InfluxDB's representable time range
_CHUNK_ROWS = 50_000
_MAX_FILTER_SERIES = 500  # above this a read filters by measurement only, then exactly here
_RETRY_S = (0.2, 5.0)


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    """Where InfluxDB is and how to authenticate: a token, org and bucket (v2) or a user,
    password and database (v1)."""

    url: str
    api: str = "v2"
    token: str = ""
    org: str = ""
    bucket: str = "shipboard"
    user: str = ""
    password: str = ""
    database: str = "shipboard"
    timeout_s: float = 5.0

    @property
    def db(self) -> str:
        return self.database if self.api == "v1" else self.bucket


class _Unavailable(Exception):
    """InfluxDB did not answer, answered too late, or answered 5xx/429: try again later."""


class InfluxStore:
    """A `storage.base.Store` in InfluxDB, with writes spooled in `spool_dir` while it is away."""

    def __init__(
        self,
        config: InfluxConfig,
        tiers: Sequence[Tier],
        spool_dir: Path | None,
        *,
        spool_max_bytes: int = 1 << 30,
        max_series: int = 1_000_000,
        listing_ttl_s: float = 2.0,
    ) -> None:
        if config.api not in ("v1", "v2"):
            raise ValueError(f"influx api must be v1 or v2, not {config.api!r}")
        self._config = config
        self._tiers = {t.name: t for t in tiers}
        if RAW not in self._tiers:
            raise ValueError("the tiers must include the raw tier")
        self._max_series = max_series
        self._listing_ttl_s = listing_ttl_s
        self._url = config.url.rstrip("/")
        retries = urllib3.Retry(total=2, backoff_factor=0.05, allowed_methods=None)
        timeout = urllib3.Timeout(connect=config.timeout_s, read=config.timeout_s)
        self._http = urllib3.PoolManager(maxsize=8, retries=retries, timeout=timeout)
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
        # No spool: a reader (the dashboards process), which never writes.
        self._spool = Spool(spool_dir, spool_max_bytes) if spool_dir is not None else None
        self._lock = threading.Lock()  # guards the series listing and prefixes
        self._rollup_lock = threading.Lock()  # one read-combine-write of rollups at a time
        self._prefixes: dict[Series, str] = {}  # series this process wrote
        self._listed: set[Series] = set()
        self._listed_at = -float("inf")
        self._closed = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._drainer = None
        if self._spool is not None:
            self._drainer = threading.Thread(target=self._drain, name="influx-spool-drainer")
            self._drainer.start()

    # -- writes ---------------------------------------------------------------------------

    def write(self, samples: Samples) -> WriteResult:
        self._check_writable()
        if not len(samples):
            return WriteResult(0)
        prefixes, refused_series = self._admit(samples)
        keep = np.asarray([p is not None for p in prefixes], np.bool_)[samples.index]
        finite = np.isfinite(samples.values)
        if not finite.all():
            _LOG.warning(
                "InfluxDB cannot hold NaN or infinity: %d points left out", (~finite).sum()
            )
        kept = keep & finite
        subset = samples.take(kept)
        if len(subset):
            self._deliver(codec.encode_samples(subset, [p or "" for p in prefixes]))
        refused = int((~keep).sum())
        return WriteResult(len(subset), refused, refused_series)

    def _admit(self, samples: Samples) -> tuple[list[str | None], int]:
        """Line prefixes of the batch's series (None: refused by the series limit or not
        writable), and how many series were refused."""
        used = np.zeros(len(samples.series), np.bool_)
        used[samples.index] = True
        prefixes: list[str | None] = []
        refused = 0
        with self._lock:
            for series, in_use in zip(samples.series, used.tolist(), strict=True):
                prefix = self._prefixes.get(series)
                if prefix is None and in_use:
                    full = series not in self._listed and len(self._listed) >= self._max_series
                    if full or not codec.writable(series) or series.metric.startswith("~"):
                        refused += 1
                    else:
                        prefix = codec.line_prefix(series, series.metric)
                        self._prefixes[series] = prefix
                        self._listed.add(series)
                prefixes.append(prefix)
        return prefixes, refused

    def _deliver(self, payload: bytes) -> None:
        """Send now, or spool when InfluxDB is away or writes are already queued (order)."""
        assert self._spool is not None  # writes are checked by _check_writable
        if not self._spool.depth:
            try:
                self._post_write(payload)
                return
            except _Unavailable as error:
                _LOG.warning("InfluxDB is unavailable (%s): spooling writes", error)
        self._spool.append(payload)
        self._wake.set()

    def _post_write(self, payload: bytes) -> None:
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
            self._check_status(error.status or 0, str(error.body))
            return
        except urllib3.exceptions.HTTPError as error:
            raise _Unavailable(str(error)) from error
        self._check_status(response.status, response.data.decode(errors="replace"))

    @staticmethod
    def _check_status(status: int, body: str) -> None:
        if status >= 500 or status == 429:
            raise _Unavailable(f"HTTP {status}: {body[:200]}")
        if status >= 300:
            raise ServerWriteError(f"InfluxDB refused a write: HTTP {status}: {body[:200]}")

    def _drain(self) -> None:
        """Deliver spooled writes oldest first, each removed only once InfluxDB took it."""
        assert self._spool is not None
        delay = _RETRY_S[0]
        while not self._stop.is_set():
            record = self._spool.oldest()
            if record is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            seq, payload = record
            try:
                self._post_write(payload)
            except _Unavailable:
                self._stop.wait(delay)
                delay = min(2 * delay, _RETRY_S[1])
                continue
            except ServerWriteError:
                _LOG.exception("dropping spooled write %d: InfluxDB will never take it", seq)
            self._spool.remove(seq)
            delay = _RETRY_S[0]

    @property
    def spool_depth(self) -> int:
        """Writes waiting in the spool for InfluxDB."""
        return self._spool.depth if self._spool is not None else 0

    @property
    def spool_bytes(self) -> int:
        return self._spool.size_bytes if self._spool is not None else 0

    def write_rollups(self, tier: str, rollups: Rollups, watermark_ns: int) -> None:
        self._check_writable()
        self._check_rollup_tier(tier)
        lines = []
        with self._rollup_lock:
            if len(rollups):
                lines = self._combined_rollup_lines(tier, rollups)
            meta = codec.line_prefix(Series.of(_META, {"tier": tier}), _META)
            lines.append(f"{meta} watermark={watermark_ns}i 0")
            try:
                self._post_write(("\n".join(lines) + "\n").encode())
            except _Unavailable as error:
                raise StorageError(f"InfluxDB is unavailable: {error}") from error

    def _combined_rollup_lines(self, tier: str, rollups: Rollups) -> list[str]:
        writable = [codec.writable(s) for s in rollups.series]
        series = [s for s, ok in zip(rollups.series, writable, strict=True) if ok]
        position = {s: i for i, s in enumerate(rollups.series)}
        lo, hi = int(rollups.bucket_ns.min()), int(rollups.bucket_ns.max())
        stored = self.read_rollups(tier, series, lo, hi + 1)
        remap = np.asarray([position[s] for s in stored.series], np.uint32)

        def columns(r: Rollups, sid: IdArray) -> Columns:
            return Columns(sid, r.bucket_ns, (r.min, r.max, r.sum, r.count, r.last))

        new = merge([columns(rollups, rollups.index.astype(np.uint32))], ROLLUP_WIDTH)
        old = columns(stored, remap[stored.index] if len(stored) else np.empty(0, np.uint32))
        wanted = {(int(s), int(t)) for s, t in zip(new.sid, new.ts, strict=True)}
        keep = [(int(s), int(t)) in wanted for s, t in zip(old.sid, old.ts, strict=True)]
        both = merge([old.take(np.asarray(keep, np.bool_)), new], ROLLUP_WIDTH)
        index = both.sid.astype(np.int32)
        prefixes = [codec.line_prefix(s, f"~{tier}:{s.metric}") for s in rollups.series]
        finite = np.all([np.isfinite(c) for c in both.cols], axis=0)
        mask = np.asarray(writable, np.bool_)[index] & finite
        return codec.encode_rollups(
            Rollups(rollups.series, index[mask], both.ts[mask], *(c[mask] for c in both.cols)),
            prefixes,
        )

    def watermark(self, tier: str) -> int | None:
        self._check_open()
        query = f"SELECT {codec.ident('watermark')} FROM {codec.ident(_META)} WHERE "
        query += f"{codec.ident('tier')}={codec.literal(tier)}"
        body = self._query(query, chunked=False)
        for result in orjson.loads(body).get("results", ()):
            for series in result.get("series", ()):
                for row in series.get("values") or ():
                    return int(row[1])
        return None

    # -- reads ----------------------------------------------------------------------------

    def read(self, series: Sequence[Series] | None, start_ns: int, end_ns: int) -> Samples:
        keys, index, ts, fields = self._select(RAW, series, start_ns, end_ns, ("value",))
        return Samples(keys, index, ts, fields[0])

    def read_rollups(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Rollups:
        self._check_rollup_tier(tier)
        keys, index, ts, fields = self._select(tier, series, start_ns, end_ns, codec.ROLLUP_FIELDS)
        return Rollups(keys, index, ts, *fields)

    def _select(
        self,
        tier: str,
        series: Sequence[Series] | None,
        start_ns: int,
        end_ns: int,
        fields: Sequence[str],
    ) -> tuple[tuple[Series, ...], IndexArray, IntArray, list[FloatArray]]:
        """One query for `fields` of `tier` in range; rows sorted by (position in keys, ts)."""
        self._check_open()
        keys: tuple[Series, ...] = () if series is None else tuple(series)
        start_ns, end_ns = max(start_ns, _MIN_TS), min(end_ns, _MAX_TS)
        prefix = "" if tier == RAW else f"~{tier}:"
        found: list[codec.ResultSeries] = []
        if end_ns > start_ns and (series is None or keys):
            if series is None:
                sources = codec.regex_literal(
                    _RAW_MEASUREMENTS if not prefix else "^" + re.escape(prefix)
                )
                condition = ""
            else:
                metrics = sorted({s.metric for s in keys})
                sources = ",".join(codec.ident(prefix + m) for m in metrics)
                condition = codec.series_filter(keys) if len(keys) <= _MAX_FILTER_SERIES else ""
            select = ",".join(codec.ident(f) for f in fields)
            query = f"SELECT {select} FROM {sources} WHERE time >= {start_ns} AND time < {end_ns}"
            if condition:
                query += f" AND ({condition})"
            found = codec.parse_query(self._query(query + " GROUP BY *"))
        results = [(Series.of(r.name.removeprefix(prefix), r.tags), r) for r in found]
        if series is None:
            results.sort(key=lambda item: sort_key(item[0]))
            keys = tuple(s for s, _ in results)
            positions = list(range(len(results)))
        else:
            where: dict[Series, int] = {}
            for i, s in enumerate(keys):
                where.setdefault(s, i)
            positions = [where.get(s, -1) for s, _ in results]
        picked = [(p, r) for p, (_, r) in zip(positions, results, strict=True) if p >= 0]
        picked.sort(key=lambda item: item[0])
        index = np.concatenate(
            [np.full(len(r.ts_ns), p, np.int32) for p, r in picked] or [np.empty(0, np.int32)]
        )
        ts = np.concatenate([r.ts_ns for _, r in picked] or [np.empty(0, np.int64)])
        columns = [
            np.concatenate([r.columns[f] for _, r in picked] or [np.empty(0, np.float64)])
            for f in fields
        ]
        return keys, index, ts, columns

    def metrics(self, pattern: str = "*") -> list[str]:
        names = sorted({s.metric for s in self._listing()})
        if pattern == "*":
            return names
        match = re.compile(fnmatch.translate(pattern)).match
        return [name for name in names if match(name)]

    def series(self, metric: str | None = None) -> list[Series]:
        listed = self._listing()
        chosen = listed if metric is None else {s for s in listed if s.metric == metric}
        return sorted(chosen, key=sort_key)

    def series_count(self) -> int:
        """Series listed when last asked (`/metrics` calls this on the event loop, so it lists
        anew only on its first call) plus those written since."""
        never = self._listed_at == -float("inf")
        return len(self._listing(self._listing_ttl_s if never else float("inf")))

    def _listing(self, ttl_s: float | None = None) -> set[Series]:
        """Every raw series: InfluxDB's list (refreshed after `listing_ttl_s`) plus what this
        process wrote since."""
        self._check_open()
        if time.monotonic() - self._listed_at >= (self._listing_ttl_s if ttl_s is None else ttl_s):
            started = time.monotonic()
            query = f"SHOW SERIES FROM {codec.regex_literal(_RAW_MEASUREMENTS)}"
            try:
                keys = codec.show_values(self._query(query))
            except StorageError:
                _LOG.warning("InfluxDB is unavailable: series listing may be stale")
                with self._lock:
                    self._listed_at = started  # not again before the TTL: callers wait on it
            else:
                listed = {codec.parse_series_key(k) for k in keys}
                with self._lock:
                    self._listed = listed | set(self._prefixes)
                    self._listed_at = started
        with self._lock:
            return set(self._listed)

    # -- maintenance ----------------------------------------------------------------------

    def apply_retention(self, now_ns: int) -> None:
        self._check_writable()
        statements = []
        for name, tier in self._tiers.items():
            pattern = _RAW_MEASUREMENTS if name == RAW else "^" + re.escape(f"~{name}:")
            floor = max(now_ns - tier.retention_ns, _MIN_TS)
            statements.append(f"DELETE FROM {codec.regex_literal(pattern)} WHERE time < {floor}")
        self._query(";".join(statements), chunked=False)
        with self._lock:
            self._listed_at = -float("inf")

    def close(self) -> None:
        """Stop the drainer (spooled writes stay on disk for the next start)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._drainer is not None:
            self._drainer.join()
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
        self._http.clear()

    # -- plumbing -------------------------------------------------------------------------

    def _query(self, query: str, *, chunked: bool = True) -> bytes:
        """POST an InfluxQL query to `/query`; the raw answer (JSON, or JSON lines if chunked)."""
        fields = {"q": query, "db": self._config.db, "epoch": "ns"}
        if chunked:
            fields |= {"chunked": "true", "chunk_size": str(_CHUNK_ROWS)}
        headers = {}
        if self._config.api == "v1":
            fields |= {"u": self._config.user, "p": self._config.password}
        else:
            headers["Authorization"] = f"Token {self._config.token}"
        try:
            response = self._http.request(
                "POST", f"{self._url}/query", fields=fields, headers=headers, encode_multipart=False
            )
        except urllib3.exceptions.HTTPError as error:
            raise StorageError(f"InfluxDB at {self._url} is unavailable: {error}") from error
        if response.status != 200:
            text = response.data.decode(errors="replace")[:300]
            raise StorageError(f"InfluxDB query failed: HTTP {response.status}: {text}")
        return bytes(response.data)

    def _check_rollup_tier(self, tier: str) -> None:
        if tier == RAW or tier not in self._tiers:
            raise ValueError(f"not a rollup tier: {tier!r}")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store on {self._url} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._spool is None:
            raise ReadOnlyStoreError(f"store on {self._url} was opened to read only")
