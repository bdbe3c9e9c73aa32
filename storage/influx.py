"""The InfluxDB store: Shipboard's metrics in InfluxDB, for more than one machine.

Layout in one database (v1) or bucket (v2), all in its default retention policy:

    <metric>,<tags> value=<float>                       raw points
    ~<tier>:<metric>,<tags> min=,max=,sum=,count=,last=  rollup rows, one point per bucket
    ~sketch:<tier>:<metric>,<tags> scale=<int>i,sum=,min=,max=,buckets="<k>:<n>,<dk>:<n>,..."
                                                         a sketch of a tier (raw too), one point
                                                         per flush or bucket
    ~meta,tier=<tier> watermark=<int>i 0                 each tier's watermark
    ~meta,tier=raw floor=<int>i 0                        the raw retention floor
    ~dirty,bucket=<ns>,tier=<tier> n=1i <when marked>    a dirty bucket of a rollup tier

Names starting with `~` are the store's own, so a metric may not start with one. Retention is
`DELETE ... WHERE time < now - retention` per tier (a measurement regex tells tiers apart):
InfluxDB's retention policies are per database and refuse points older than their duration,
which would refuse backfills a tier still keeps. A sketch's buckets are one string field
(`storage.influx_sketches`), so a later sketch of its series and time replaces it whole.

Writes go to InfluxDB at once, or to the spool while it is away (`storage.influx_writes`).
A rollup row overwrites the stored row of its bucket (InfluxDB keeps one point per series and
time). Collectors and the aggregator may be separate processes, so a write cannot know how far
a rollup pass has read: every point older than `late_margin_ns` marks its bucket of every
rollup tier dirty with a `~dirty` point in the same body. A pass clears a mark only if it was
stamped `settle_ns` before the pass began, so the points it marks are visible to the pass's read.
Reads are one InfluxQL query each over `/query` (chunked JSON, orjson, numpy).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import orjson
import urllib3

from storage import influx_codec as codec
from storage import influx_sketches as sketch_lines
from storage.base import DirtyBuckets, WriteResult, data_ranges, in_order, retention_floors
from storage.errors import ReadOnlyStoreError, StorageError, StoreClosedError
from storage.influx_writes import DIRTY, InfluxWriter
from storage.records import RAW, FloatArray, Rollups, Samples, Series, Sketches, Tier
from storage.series_listing import SeriesListing
from storage.spool import Spool
from storage.spool_drain import Unavailable

_LOG = logging.getLogger(__name__)

_META = "~meta"
_RAW_MEASUREMENTS = "^[^~]"
_RAW_SKETCHES = sketch_lines.measurement_prefix(RAW)
_CHUNK_ROWS = 50_000
_FLOOR_TTL_S = 60.0


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
        late_margin_ns: int = 10 * 1_000_000_000,
        settle_ns: int | None = None,
    ) -> None:
        if config.api not in ("v1", "v2"):
            raise ValueError(f"influx api must be v1 or v2, not {config.api!r}")
        self._config = config
        self._tiers = {t.name: t for t in tiers}
        if RAW not in self._tiers:
            raise ValueError("the tiers must include the raw tier")
        self._max_series = max_series
        # A body is in InfluxDB within its request's timeout, or failed and goes to the spool.
        self._settle_ns = (
            settle_ns if settle_ns is not None else int((config.timeout_s + 1) * 1_000_000_000)
        )
        self._rollup_widths = {n: t.width_ns for n, t in self._tiers.items() if n != RAW}
        self._floor_ns: int | None = None
        self._floor_at = -float("inf")
        self._url = config.url.rstrip("/")
        retries = urllib3.Retry(total=2, backoff_factor=0.05, allowed_methods=None)
        timeout = urllib3.Timeout(connect=config.timeout_s, read=config.timeout_s)
        self._http = urllib3.PoolManager(maxsize=8, retries=retries, timeout=timeout)
        # No spool: a reader (the dashboards process), which never writes.
        self._spool = Spool(spool_dir, spool_max_bytes) if spool_dir is not None else None
        self._writer = InfluxWriter(
            config,
            self._http,
            retries,
            self._spool,
            rollup_widths=self._rollup_widths,
            late_margin_ns=late_margin_ns,
        )
        self._lock = threading.Lock()  # guards the prefixes and the floor
        self._prefixes: dict[Series, str] = {}  # series this process wrote
        self._listing = SeriesListing("InfluxDB", self._list_series, listing_ttl_s)
        self._closed = False

    def __enter__(self) -> Self:
        """Start the spool's drainer (a writer's; a reader has none) until `close()`, which
        `__exit__` calls."""
        self._check_open()
        self._writer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------

    def write(self, samples: Samples, sketches: Sketches | None = None) -> WriteResult:
        self._check_writable()
        sketches = sketches if sketches is not None else Sketches.empty()
        if not len(samples) and not len(sketches):
            return WriteResult(0)
        prefixes, refused_series = self._admit(samples)
        sketch_prefixes, more_refused = self._admit(sketches)
        keep = np.asarray([p is not None for p in prefixes], np.bool_)[samples.index]
        finite = np.isfinite(samples.values)
        if not finite.all():
            _LOG.warning(
                "InfluxDB cannot hold NaN or infinity: %d points left out", (~finite).sum()
            )
        floor = self._floor()
        recent = samples.ts_ns >= floor if floor is not None else np.ones(len(samples), np.bool_)
        too_old = int(np.count_nonzero(~recent))
        kept = keep & finite & recent
        subset = samples.take(kept)
        lines, sketch_ts = sketch_lines.encode(RAW, sketches, sketch_prefixes, floor)
        if len(subset) or lines:
            payload = codec.encode_samples(subset, [p or "" for p in prefixes])
            payload += "".join(line + "\n" for line in lines).encode()
            self._writer.deliver(payload, np.concatenate([subset.ts_ns, sketch_ts]))
        refused = int((~keep & recent).sum())
        return WriteResult(len(subset), refused, refused_series + more_refused, too_old)

    def _floor(self) -> int | None:
        """The raw retention floor: older points are refused, as their buckets are no longer
        whole in raw to be rolled up again from (read from InfluxDB at most once a minute)."""
        if time.monotonic() - self._floor_at >= _FLOOR_TTL_S:
            query = f"SELECT {codec.ident('floor')} FROM {codec.ident(_META)} WHERE "
            query += f"{codec.ident('tier')}={codec.literal(RAW)}"
            try:
                found = codec.parse_query(self._query(query))
            except StorageError:
                _LOG.warning("InfluxDB is unavailable: the raw retention floor may be stale")
                found = []
            with self._lock:
                self._floor_at = time.monotonic()
                for result in found:
                    if len(result.ts_ns):
                        self._floor_ns = int(result.columns["floor"][-1])
        with self._lock:
            return self._floor_ns

    def _admit(self, samples: Samples | Sketches) -> tuple[list[str | None], int]:
        """Raw line prefixes of the batch's series (None: refused by the series limit or not
        writable), and how many series were refused."""
        used = np.zeros(len(samples.series), np.bool_)
        used[samples.index] = True
        prefixes: list[str | None] = []
        refused = 0
        with self._lock:
            for series, in_use in zip(samples.series, used.tolist(), strict=True):
                prefix = self._prefixes.get(series)
                if prefix is None and in_use:
                    if (
                        not codec.writable(series)
                        or series.metric.startswith("~")
                        or not self._listing.admit(series, self._max_series)
                    ):
                        refused += 1
                    else:
                        prefix = codec.line_prefix(series, series.metric)
                        self._prefixes[series] = prefix
                prefixes.append(prefix)
        return prefixes, refused

    @property
    def spool_depth(self) -> int:
        """Writes waiting in the spool for InfluxDB."""
        return self._writer.spool_depth

    @property
    def spool_bytes(self) -> int:
        return self._writer.spool_bytes

    def write_rollups(
        self,
        tier: str,
        rollups: Rollups,
        watermark_ns: int,
        rerolled: DirtyBuckets | None = None,
        sketches: Sketches | None = None,
    ) -> None:
        self._check_writable()
        self._check_rollup_tier(tier)
        writable = [codec.writable(s) for s in rollups.series]
        finite = np.all([np.isfinite(c) for c in _rollup_columns(rollups)], axis=0)
        mask = np.asarray(writable, np.bool_)[rollups.index] & finite
        prefixes = [codec.line_prefix(s, f"~{tier}:{s.metric}") for s in rollups.series]
        lines = codec.encode_rollups(rollups.take(mask), prefixes)
        if sketches is not None:
            own = [
                codec.line_prefix(s, s.metric) if codec.writable(s) else None
                for s in sketches.series
            ]
            lines += sketch_lines.encode(tier, sketches, own)[0]
        meta = codec.line_prefix(Series.of(_META, {"tier": tier}), _META)
        lines.append(f"{meta} watermark={watermark_ns}i 0")
        try:
            self._writer.post(("\n".join(lines) + "\n").encode())
        except Unavailable as error:
            raise StorageError(f"InfluxDB is unavailable: {error}") from error
        if rerolled is not None and len(rerolled):
            # After the rows: a crash in between leaves the marks, and the buckets are rolled
            # up again, which a rewrite makes harmless.
            where = f"{codec.ident('tier')}={codec.literal(tier)} AND time <= {rerolled.seq}"
            self._query(
                ";".join(
                    f"DELETE FROM {codec.ident(DIRTY)} WHERE {where} "
                    f"AND {codec.ident('bucket')}={codec.literal(str(bucket))}"
                    for bucket in rerolled.bucket_ns.tolist()
                ),
                chunked=False,
            )

    def begin_rollup(self, tier: str, end_ns: int) -> None:
        """Nothing to do: writers mark every point older than the late margin, whatever pass
        runs, so the pass's grace must exceed that margin."""
        self._check_rollup_tier(tier)

    def dirty(self, tier: str) -> DirtyBuckets:
        self._check_open()
        self._check_rollup_tier(tier)
        # Marks stamped after `seq` may cover points not yet visible: a pass keeps them.
        seq = time.time_ns() - self._settle_ns
        query = f"SELECT last({codec.ident('n')}) FROM {codec.ident(DIRTY)} WHERE "
        query += f"{codec.ident('tier')}={codec.literal(tier)} GROUP BY {codec.ident('bucket')}"
        settled: list[int] = []
        recent: list[int] = []
        for result in codec.parse_query(self._query(query)):
            bucket = int(dict(result.tags)["bucket"])
            (settled if int(result.ts_ns.max()) <= seq else recent).append(bucket)
        return DirtyBuckets(
            np.sort(np.asarray(settled, np.int64)), seq, np.sort(np.asarray(recent, np.int64))
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
        keys, picked = self._found("", series, start_ns, end_ns, ("value",))
        index, ts, (values,) = codec.stack(picked, ("value",))
        return Samples(keys, index, ts, values)

    def read_rollups(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Rollups:
        self._check_rollup_tier(tier)
        fields = codec.ROLLUP_FIELDS
        keys, picked = self._found(f"~{tier}:", series, start_ns, end_ns, fields)
        index, ts, columns = codec.stack(picked, fields)
        return Rollups(keys, index, ts, *columns)

    def read_sketches(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Sketches:
        if tier not in self._tiers:
            raise ValueError(f"not a tier: {tier!r}")
        prefix = sketch_lines.measurement_prefix(tier)
        fields = (*sketch_lines.HEADER_FIELDS, sketch_lines.BUCKETS)
        keys, picked = self._found(prefix, series, start_ns, end_ns, fields, sketch_lines.BUCKETS)
        return sketch_lines.decode(keys, picked)

    def series_with_data(
        self, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> list[Series]:
        found: set[Series] = set()
        for tier, lo, hi in data_ranges(self._tiers.values(), self._floor(), start_ns, end_ns):
            prefix, field = ("", "value") if tier == RAW else (f"~{tier}:", "count")
            keys, picked = self._found(prefix, series, lo, hi, (field,), first_only=True)
            found.update(keys[p] for p, _ in picked)
        return in_order(found, series)

    def _found(
        self,
        prefix: str,
        series: Sequence[Series] | None,
        start_ns: int,
        end_ns: int,
        fields: Sequence[str],
        text: str = "",
        *,
        first_only: bool = False,
    ) -> tuple[tuple[Series, ...], list[tuple[int, codec.ResultSeries]]]:
        """One query for `fields` (`text` a string one) of the measurements named `prefix` +
        metric in range (`first_only`: the first point of each series): its series and
        answers as `codec.pick` gives them."""
        self._check_open()
        keys = None if series is None else tuple(series)
        every = "^" + re.escape(prefix) if prefix else _RAW_MEASUREMENTS
        query = codec.select_query(prefix, keys, start_ns, end_ns, fields, every)
        if query is not None and first_only:
            query += " LIMIT 1"  # per series, as grouped by every tag
        texts = (text,) if text else ()
        found = [] if query is None else codec.parse_query(self._query(query), texts)
        return codec.pick(found, prefix, keys)

    def metrics(self, pattern: str = "*") -> list[str]:
        self._check_open()
        return self._listing.metrics(pattern)

    def series(self, metric: str | None = None) -> list[Series]:
        self._check_open()
        return self._listing.series(metric)

    def series_count(self) -> int:
        self._check_open()
        return self._listing.count()

    def _list_series(self) -> set[Series]:
        """Every series with raw points or sketches, as InfluxDB lists them."""
        pattern = f"{_RAW_MEASUREMENTS}|^{re.escape(_RAW_SKETCHES)}"
        keys = codec.show_values(self._query(f"SHOW SERIES FROM {codec.regex_literal(pattern)}"))
        found = (codec.parse_series_key(k) for k in keys)
        return {Series(s.metric.removeprefix(_RAW_SKETCHES), s.tags) for s in found}

    # -- maintenance ----------------------------------------------------------------------

    def apply_retention(self, now_ns: int) -> None:
        self._check_writable()
        oldest_dirty = {
            t: int(b[0]) for t in self._rollup_widths if len(b := self.dirty(t).for_readers())
        }
        statements = []
        cuts = retention_floors(tuple(self._tiers.values()), now_ns, oldest_dirty)
        for name, cut in cuts.items():
            rows = _RAW_MEASUREMENTS if name == RAW else "^" + re.escape(f"~{name}:")
            pattern = f"{rows}|^{re.escape(sketch_lines.measurement_prefix(name))}"
            floor = max(cut, codec.MIN_TS)
            statements.append(f"DELETE FROM {codec.regex_literal(pattern)} WHERE time < {floor}")
        self._query(";".join(statements), chunked=False)
        meta = codec.line_prefix(Series.of(_META, {"tier": RAW}), _META)
        raw_floor = max(cuts[RAW], codec.MIN_TS)
        self._writer.post(f"{meta} floor={raw_floor}i 0\n".encode())
        self._listing.invalidate()
        with self._lock:
            self._floor_ns, self._floor_at = raw_floor, time.monotonic()

    def refresh(self) -> None:
        """Nothing to catch up with: every read asks InfluxDB."""

    def close(self) -> None:
        """Stop the drainer (spooled writes stay on disk for the next start)."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
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


def _rollup_columns(r: Rollups) -> tuple[FloatArray, ...]:
    return (r.min, r.max, r.sum, r.count, r.last)
