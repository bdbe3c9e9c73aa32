"""The VictoriaMetrics store: Shipboard's metrics in VictoriaMetrics, single node or cluster.

Raw points go to `/api/v1/import` (JSON lines, `storage.victoria_codec`), to the spool while
VictoriaMetrics is away (`storage.spool_drain`, as for InfluxDB), and come back from
`/api/v1/export`. Rollups are VictoriaMetrics' own work: a rollup tier's rows and merged
sketches are computed when read, by its `*_over_time` functions over the raw points
(`storage.victoria_rollups`), so Shipboard's aggregator does not run on this store, there are
never dirty buckets, and a late or backfilled point is in every tier at once. Retention is
VictoriaMetrics' `-retentionPeriod`, which bounds every tier.

What VictoriaMetrics decides: times are kept to the millisecond; a point rewritten at the same
millisecond is kept beside the first (reads take the later one it returns); a write is
acknowledged once it holds the points in memory (it flushes them to disk about every second),
and is searchable after its next flush (`flush_writes` asks for one after every write: for
tests, and for setups that must read their own writes at once). A tier's newest bucket is read
from the finer tiers until `latency_offset_s` after it ended, as VictoriaMetrics'
`-search.latencyOffset` hides the newest points from `query_range` (30 s by default: set it to
0s, as docker-compose.victoria.yml does, and `latency_offset_s` to 0).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
import orjson
import urllib3

from storage import victoria_codec as codec
from storage import victoria_rollups as rollups
from storage.base import DirtyBuckets, WriteResult, in_order
from storage.errors import ReadOnlyStoreError, StorageError, StoreClosedError
from storage.records import (
    NS_PER_MS,
    NS_PER_S,
    RAW,
    IndexArray,
    Rollups,
    Samples,
    Series,
    Sketches,
    Tier,
)
from storage.series_listing import SeriesListing
from storage.sketches import BoolArray, merge_by
from storage.spool import Spool
from storage.spool_drain import SpoolDrainer, Unavailable, check_status
from storage.victoria_config import VictoriaConfig

_LOG = logging.getLogger(__name__)

_EVERY_METRIC = '{__name__=~"[^~].*"}'
_EVERY_SKETCH = '{__name__=~"~sketch:.*"}'
# One series per sketch series and scale (its sum), not one per bucket key, for listings.
_EVERY_SKETCHED = f'{{__name__=~"~sketch:.*",{codec.KEY_LABEL}="sum"}}'
_EXACT_SELECTORS = 20  # up to this many series of a metric are asked one by one
_SERVER = "VictoriaMetrics"
_FUTURE_MS = 3 * 86_400_000  # it refuses points more than 2 days ahead of its clock
_FIRST_MS = 86_400_000  # a presence window back into 1970's first day finds nothing


class VictoriaStore:
    """A `storage.base.Store` in VictoriaMetrics, writes spooled in `spool_dir` while it is away
    (no spool: a reader, which never writes)."""

    def __init__(
        self,
        config: VictoriaConfig,
        tiers: Sequence[Tier],
        spool_dir: Path | None,
        *,
        spool_max_bytes: int = 1 << 30,
        max_series: int = 1_000_000,
        listing_ttl_s: float = 2.0,
        latency_offset_s: float = 30.0,
        flush_writes: bool = False,
    ) -> None:
        self._config = config
        self._tiers = {t.name: t for t in tiers}
        if RAW not in self._tiers:
            raise ValueError("the tiers must include the raw tier")
        self._max_series = max_series
        self._latency_ns = int(latency_offset_s * NS_PER_S)
        self._flush_writes = flush_writes
        retries = urllib3.Retry(total=2, backoff_factor=0.05, allowed_methods=None)
        timeout = urllib3.Timeout(connect=config.timeout_s, read=config.timeout_s)
        self._http = urllib3.PoolManager(maxsize=8, retries=retries, timeout=timeout)
        self._spool = Spool(spool_dir, spool_max_bytes) if spool_dir is not None else None
        self._drainer = SpoolDrainer(_SERVER, self._spool, self._post)
        self._listing = SeriesListing(_SERVER, self._list_series, listing_ttl_s)
        self._closed = False

    def __enter__(self) -> Self:
        self._check_open()
        self._drainer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def spool_depth(self) -> int:
        """Writes waiting in the spool for VictoriaMetrics."""
        return self._drainer.depth

    @property
    def spool_bytes(self) -> int:
        return self._drainer.size_bytes

    # -- writes ---------------------------------------------------------------------------

    def write(self, samples: Samples, sketches: Sketches | None = None) -> WriteResult:
        self._check_writable()
        sketches = sketches if sketches is not None else Sketches.empty()
        if not len(samples) and not len(sketches):
            return WriteResult(0)
        admitted, refused_series = self._admit(samples.series, samples.index)
        sketch_admitted, more_refused = self._admit(sketches.series, sketches.index)
        keep = admitted[samples.index]
        body, not_finite = codec.encode_samples(samples.take(keep))
        if not_finite:
            _LOG.warning("VictoriaMetrics' import cannot hold NaN or infinity: %d points left out",
                         not_finite)  # fmt: skip
        if len(sketches):
            body += codec.encode_sketches(sketches.take(sketch_admitted[sketches.index]))
        if body:
            self._drainer.deliver(body)
            if self._flush_writes and not self._drainer.depth:
                self._flush()
        accepted = int(np.count_nonzero(keep)) - not_finite
        return WriteResult(accepted, int(np.count_nonzero(~keep)), refused_series + more_refused)

    def _admit(self, series: Sequence[Series], index: IndexArray) -> tuple[BoolArray, int]:
        """Which of `series` may be written (the series limit, names VictoriaMetrics keeps as
        they are), and how many in use were refused."""
        used = np.zeros(len(series), np.bool_)
        used[index] = True
        admitted = np.zeros(len(series), np.bool_)
        refused = 0
        for i, (one, in_use) in enumerate(zip(series, used.tolist(), strict=True)):
            if in_use:
                admitted[i] = codec.writable(one) and self._listing.admit(one, self._max_series)
                refused += not admitted[i]
        return admitted, refused

    def _post(self, body: bytes) -> None:
        try:
            response = self._http.request("POST", self._config.import_url, body=body)
        except urllib3.exceptions.HTTPError as error:
            raise Unavailable(str(error)) from error
        check_status(_SERVER, response.status, response.data.decode(errors="replace"))

    def _flush(self) -> None:
        if self._config.flush_url is not None:
            self._request("GET", self._config.flush_url)

    def write_rollups(
        self,
        tier: str,
        rollups: Rollups,
        watermark_ns: int,
        rerolled: DirtyBuckets | None = None,
        sketches: Sketches | None = None,
    ) -> None:
        raise StorageError("VictoriaMetrics computes rollups itself: nothing rolls up into it")

    def begin_rollup(self, tier: str, end_ns: int) -> None:
        raise StorageError("VictoriaMetrics computes rollups itself: nothing rolls up into it")

    def apply_retention(self, now_ns: int) -> None:
        """Nothing to do: VictoriaMetrics applies its own `-retentionPeriod`."""

    # -- what the tiers hold --------------------------------------------------------------

    def watermark(self, tier: str) -> int | None:
        """Every bucket that ended `latency_offset_s` ago: VictoriaMetrics answers for all of
        them from the raw points."""
        self._check_open()
        width = self._tiers[tier].width_ns
        settled = time.time_ns() - self._latency_ns
        return settled - settled % width if width else settled

    def dirty(self, tier: str) -> DirtyBuckets:
        """None ever: rollups are computed from the raw points when read."""
        self._check_open()
        return DirtyBuckets(np.empty(0, np.int64), time.time_ns())

    # -- reads ----------------------------------------------------------------------------

    def read(self, series: Sequence[Series] | None, start_ns: int, end_ns: int) -> Samples:
        bodies = self._export(self._selectors(series), start_ns, end_ns)
        found = codec.decode_samples(b"".join(bodies), series)
        return found.take((found.ts_ns >= start_ns) & (found.ts_ns < end_ns))

    def read_rollups(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Rollups:
        width = self._rollup_width(tier)
        bodies = [
            body
            for selector in self._selectors(series)
            for body in rollups.evaluate(
                self._query_range, rollups.rollup_query(selector, width), start_ns, end_ns, width
            )
        ]
        return rollups.decode_rollups(bodies, width, series)

    def read_sketches(
        self, tier: str, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> Sketches:
        selectors = self._selectors(series, codec.SKETCH_PREFIX)
        if tier == RAW:
            bodies = self._export(selectors, start_ns, end_ns)
            found = codec.decode_sketches(b"".join(bodies), series)
            found = found.take((found.ts_ns >= start_ns) & (found.ts_ns < end_ns))
        else:
            width = self._rollup_width(tier)
            bodies = [
                body
                for selector in selectors
                for body in rollups.evaluate(
                    self._query_range,
                    rollups.sketch_query(selector, width),
                    start_ns,
                    end_ns,
                    width,
                )
            ]
            found = rollups.decode_sketches(bodies, width, series)
        # One sketch per (series, time): those of different scales merge at the coarsest.
        index, ts, keys, values = merge_by(
            found.index.astype(np.int64), found.ts_ns, found.keys, found.values
        )
        return Sketches(found.series, index.astype(np.int32), ts, keys, values)

    def series_with_data(
        self, series: Sequence[Series] | None, start_ns: int, end_ns: int
    ) -> list[Series]:
        """Raw points only: every tier is computed from them, within one retention. One instant
        query at the range's last millisecond, over a window back to its first, cut to what
        VictoriaMetrics may hold: no point before 1970 or past `_FUTURE_MS` from now, and its
        window reaching into 1970's first day answers nothing at all."""
        first_ms = max(-(-start_ns // NS_PER_MS), _FIRST_MS)
        last_ms = min(-(-end_ns // NS_PER_MS) - 1, int(time.time() * 1000) + _FUTURE_MS)
        selectors = self._selectors(series)
        if last_ms < first_ms or not selectors:
            return []
        query = codec.presence_query(selectors, last_ms - first_ms + 1)
        fields = [("query", query), ("time", _seconds(last_ms)), ("nocache", "1")]
        body = self._request("POST", self._config.read_url("query"), fields)
        return in_order(codec.decode_present(body, series), series)

    def _selectors(self, series: Sequence[Series] | None, prefix: str = "") -> list[str]:
        """Selectors covering `series` (None: every series): one per series of a metric asked
        for few of its series, else one per metric."""
        if series is None:
            return [_EVERY_SKETCH if prefix else _EVERY_METRIC]
        by_metric: dict[str, list[Series]] = {}
        for one in series:
            by_metric.setdefault(one.metric, []).append(one)
        selectors = []
        for metric, some in by_metric.items():
            if len(some) <= _EXACT_SELECTORS and all(codec.matchable(s) for s in some):
                selectors += [codec.selector(metric, [one], prefix) for one in some]
            else:
                selectors.append(codec.selector(metric, (), prefix))
        return selectors

    def _export(self, selectors: Sequence[str], start_ns: int, end_ns: int) -> list[bytes]:
        if not selectors:
            return []
        fields = [("match[]", s) for s in selectors]
        fields += [("start", _seconds(start_ns // NS_PER_MS)),
                   ("end", _seconds(-(-end_ns // NS_PER_MS)))]  # fmt: skip
        return [self._request("POST", self._config.read_url("export"), fields)]

    def _query_range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> bytes:
        fields = [("query", query), ("start", _seconds(start_ms)), ("end", _seconds(end_ms)),
                  ("step", f"{step_ms}ms"), ("nocache", "1")]  # fmt: skip
        return self._request("POST", self._config.read_url("query_range"), fields)

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
        """Every series with raw points or sketches, as VictoriaMetrics lists them."""
        fields = [("match[]", _EVERY_METRIC), ("match[]", _EVERY_SKETCHED), ("start", "0")]
        listed = set()
        for labels in orjson.loads(self._request("POST", self._config.read_url("series"), fields))[
            "data"
        ]:
            labels.pop(codec.KEY_LABEL, None)
            labels.pop(codec.SCALE_LABEL, None)
            name = labels.pop("__name__", "").removeprefix(codec.SKETCH_PREFIX)
            listed.add(Series.of(name, labels.items()))
        return listed

    def refresh(self) -> None:
        """Nothing to catch up with: every read asks VictoriaMetrics."""

    def close(self) -> None:
        """Stop the drainer (spooled writes stay on disk for the next start)."""
        if self._closed:
            return
        self._closed = True
        self._drainer.close()
        self._http.clear()

    # -- plumbing -------------------------------------------------------------------------

    def _request(self, method: str, url: str, fields: list[tuple[str, str]] | None = None) -> bytes:
        self._check_open()
        try:
            if fields is None:
                response = self._http.request(method, url)
            else:
                response = self._http.request(method, url, fields=fields, encode_multipart=False)
        except urllib3.exceptions.HTTPError as error:
            raise StorageError(f"VictoriaMetrics at {url} is unavailable: {error}") from error
        if response.status >= 300:
            text = response.data.decode(errors="replace")[:300]
            raise StorageError(f"VictoriaMetrics answered HTTP {response.status}: {text}")
        return bytes(response.data)

    def _rollup_width(self, tier: str) -> int:
        if tier == RAW or tier not in self._tiers:
            raise ValueError(f"not a rollup tier: {tier!r}")
        return self._tiers[tier].width_ns

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store on {self._config.import_url} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._spool is None:
            raise ReadOnlyStoreError("this VictoriaMetrics store was opened to read only")


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}" if ms >= 0 else str(ms / 1000)
