"""The series index: series key <-> dense uint32 id, listings by metric, and its log file.

Ids are given in order (0, 1, 2, ...), so an id is also a position in `keys`. New series are
defined in the WAL record that first uses them and appended to the series log at checkpoint
time; the manifest names how many bytes of the log are committed. Bytes beyond them were
appended by a checkpoint that did not finish (those series are still defined in the WAL), and
recovery cuts them off (`discard_uncommitted`).

The tag index (`storage.postings`) follows the listings, series by series, so whatever defines
the series (a write, the log and the WAL replayed after a crash, a follower tailing them)
builds it too.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from storage.errors import CorruptStoreError
from storage.postings import Postings
from storage.records import IntArray, Series
from storage.stale_markers import STALE_METRIC, listed

_LOG = logging.getLogger(__name__)


_LOG_CHUNK_BYTES = 1 << 20
"""The series log is parsed in chunks of about this size."""

_LOOKUPS = 64
_LOOKUP_MIN = 256
"""Ids kept for the last `_LOOKUPS` tuples of series of at least `_LOOKUP_MIN` looked up."""

_LISTING_SHARE = 8
"""A tag match that leaves more than 1/8 of its metric's series to check filters the sorted
listing instead of sorting what it found."""


def sort_key(series: Series) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (series.metric, series.tags)


def _has(series: Series, tags: Sequence[tuple[str, str]]) -> bool:
    return all(series.tag(key) == value for key, value in tags)


def _with_shared_names(series: Series) -> Series:
    """`series` with its metric name and tag keys interned. A parser gives every series its own
    copies of them (`card.v` and `host` a million times over); shared, they cost once, which
    pays for the series' entries in the tag index twice over."""
    intern = sys.intern
    metric = intern(series.metric)
    if metric is series.metric:
        for key, _ in series.tags:
            if intern(key) is not key:
                break
        else:
            return series  # shared already (the line protocol parser interns them)
    return Series(metric, tuple((intern(k), v) for k, v in series.tags))


class SeriesIndex:
    """Thread-safe map of series to ids, with cached sorted listings and the tag index.

    A series whose every point has aged out of retention is forgotten: it leaves the listings
    and the live count but keeps its id, and comes back (`revive`) with its next point."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[Series] = []
        self._ids: dict[Series, int] = {}
        self._by_metric: dict[str, list[Series]] = {}
        self._postings = Postings()  # of the listed series
        self._sorted_metrics: list[str] | None = None
        self._sorted_series: dict[str | None, list[Series]] = {}
        self._forgotten: set[int] = set()
        self._forgotten_mask = np.zeros(0, np.bool_)  # True at forgotten ids
        self._lookups: dict[int, tuple[tuple[Series, ...], IntArray]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def live(self) -> int:
        """Series not forgotten: what the series limit counts."""
        return len(self._keys) - len(self._forgotten)

    @property
    def forgotten(self) -> frozenset[int]:
        return frozenset(self._forgotten)

    def forgotten_among(self, ids: IntArray) -> IntArray:
        """The ids of `ids` (-1 for unknown) that are forgotten, each once."""
        if not self._forgotten:
            return np.empty(0, np.int64)
        # A mask over ids, not the set: this runs on every write once any series is forgotten.
        known = ids[(ids >= 0) & (ids < len(self._forgotten_mask))]
        return np.unique(known[self._forgotten_mask[known]])

    def forget(self, sids: Sequence[int]) -> None:
        """Take series out of the listings and the live count (their ids stay theirs); each
        listing filtered once, however many of its series go."""
        with self._lock:
            forgotten = [
                (sid, self._keys[sid]) for sid in dict.fromkeys(sids) if sid not in self._forgotten
            ]
            if not forgotten:
                return
            ids = [sid for sid, _ in forgotten]
            self._forgotten.update(ids)
            if max(ids) >= len(self._forgotten_mask):
                grown = np.zeros(max(len(self._keys), max(ids) + 1), np.bool_)
                grown[: len(self._forgotten_mask)] = self._forgotten_mask
                self._forgotten_mask = grown
            self._forgotten_mask[ids] = True
            self._postings.remove(forgotten)
            gone: dict[str, set[Series]] = {}
            for _, series in forgotten:
                gone.setdefault(series.metric, set()).add(series)
            for metric, series_gone in gone.items():
                left = [s for s in self._by_metric[metric] if s not in series_gone]
                if left:
                    self._by_metric[metric] = left
                else:
                    del self._by_metric[metric]
                    self._sorted_metrics = None
                self._sorted_series.pop(metric, None)
            self._sorted_series.pop(None, None)

    def revive(self, sid: int) -> None:
        """Bring a forgotten series back into the listings."""
        with self._lock:
            if sid not in self._forgotten:
                return
            self._forgotten.discard(sid)
            self._forgotten_mask[sid] = False
            self._list(sid, self._keys[sid])

    def key(self, sid: int) -> Series:
        return self._keys[sid]

    def keys(self, start: int, stop: int) -> list[Series]:
        return self._keys[start:stop]

    def get(self, series: Series) -> int | None:
        return self._ids.get(series)

    def lookup(self, series: Sequence[Series], *, remember: bool = False) -> IntArray:
        """The id of each series, -1 for unknown ones. A write repeated by shape comes with the
        same tuple of series (the parsers' shape caches): with `remember`, its ids, once all
        known, are kept by the tuple's identity (ids never change), so that it costs a copy
        instead of a dict lookup a series."""
        cached = self._lookups.get(id(series))
        if cached is not None and cached[0] is series:
            return cached[1].copy()
        get = self._ids.get
        ids = np.fromiter((get(s, -1) for s in series), np.int64, len(series))
        if remember and isinstance(series, tuple) and len(series) >= _LOOKUP_MIN:
            self._remember(series, ids)
        return ids

    def _remember(self, series: tuple[Series, ...], ids: IntArray) -> None:
        if not bool((ids >= 0).all()):  # a new series' id is not known yet
            return
        with self._lock:  # readers look up too
            if len(self._lookups) >= _LOOKUPS:
                del self._lookups[next(iter(self._lookups))]
            self._lookups[id(series)] = (series, ids.copy())  # held, so its id stays its

    def add(self, series: Series) -> int:
        """Define a new series; returns its id."""
        series = _with_shared_names(series)
        with self._lock:
            sid = len(self._keys)
            self._keys.append(series)
            self._ids[series] = sid
            self._list(sid, series)
            return sid

    def _list(self, sid: int, series: Series) -> None:
        """Add `series` to the listings and the tag index; the caller holds the lock."""
        self._postings.add(sid, series)
        by_metric = self._by_metric.setdefault(series.metric, [])
        if not by_metric:
            self._sorted_metrics = None
        by_metric.append(series)
        self._sorted_series.pop(series.metric, None)
        self._sorted_series.pop(None, None)

    def define(self, sid: int, series: Series) -> None:
        """Replay a definition read from disk; a repeated one is checked and skipped."""
        known = len(self._keys)
        if sid < known and self._keys[sid] == series:
            return
        if sid != known or series in self._ids:
            raise CorruptStoreError(f"series id {sid} does not fit the index for {series}")
        self.add(series)

    def metrics(self, pattern: str = "*") -> list[str]:
        with self._lock:
            if self._sorted_metrics is None:
                self._sorted_metrics = listed(sorted(self._by_metric))
            names = self._sorted_metrics
        if pattern == "*":
            return list(names)
        match = re.compile(fnmatch.translate(pattern)).match
        return [name for name in names if match(name)]

    def series(self, metric: str | None = None) -> list[Series]:
        with self._lock:
            cached = self._sorted_series.get(metric)
            if cached is None:
                if metric is not None:
                    source = self._by_metric.get(metric, [])
                else:
                    forgotten = self._forgotten
                    source = [
                        s
                        for i, s in enumerate(self._keys)
                        if s.metric != STALE_METRIC and i not in forgotten
                    ]
                cached = sorted(source, key=sort_key)
                self._sorted_series[metric] = cached
        return list(cached)

    def series_with(self, metric: str, tags: Sequence[tuple[str, str]]) -> list[Series]:
        """The series of `metric` that have every (key, value) of `tags` (at least one),
        sorted: the ids of the rarest pair, checked for the others."""
        with self._lock:
            ids = self._postings.rarest(metric, tags)
            listed = len(self._by_metric.get(metric, ()))
        if len(ids) * _LISTING_SHARE > listed:
            return [s for s in self.series(metric) if _has(s, tags)]
        keys = self._keys
        return sorted((s for s in map(keys.__getitem__, ids) if _has(s, tags)), key=sort_key)

    def tag_keys(self, metric: str) -> list[str]:
        """The tag keys the series of `metric` have, sorted."""
        with self._lock:
            return self._postings.keys(metric)

    def tag_values(self, metric: str, key: str) -> list[str]:
        """The values tag `key` takes among the series of `metric`, sorted."""
        with self._lock:
            return self._postings.values(metric, key)


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (if it was on, it is on again after). Replaying a
    million series definitions makes millions of objects, none in a cycle, and the collections
    their number sets off took three quarters of the replay's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def append_log(path: Path, start: int, series: Sequence[Series]) -> int:
    """Write definitions after the first `start` bytes of the series log (dropping anything
    an interrupted checkpoint left there), fsync'd; returns the log's new size in bytes."""
    lines = "".join(json.dumps([s.metric, s.tags]) + "\n" for s in series).encode()
    with path.open("a+b") as f:
        f.truncate(start)
        f.seek(start)
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())
        return f.tell()


def read_log(path: Path, start: int, stop: int) -> list[Series]:
    """The definitions in bytes [start, stop) of the series log, in id order."""
    if stop <= start:
        return []
    with path.open("rb") as f:
        f.seek(start)
        data = f.read(stop - start)
    if len(data) != stop - start or not data.endswith(b"\n"):
        raise CorruptStoreError(f"{path} is shorter than the manifest says")
    found: list[Series] = []
    intern = sys.intern  # the names `SeriesIndex.add` would share anyway, shared at once
    begin = 0
    while begin < len(data):
        # A JSON array per chunk of lines instead of a parse per line (JSON escapes newlines
        # inside strings); chunks, so that the names parsed and dropped for the interned ones
        # leave memory the next chunk reuses.
        end = data.index(b"\n", min(begin + _LOG_CHUNK_BYTES, len(data) - 1)) + 1
        rows = json.loads(b"[" + data[begin : end - 1].replace(b"\n", b",") + b"]")
        found += [Series(intern(m), tuple([(intern(k), v) for k, v in tags])) for m, tags in rows]
        begin = end
    return found


def discard_uncommitted(path: Path, committed_bytes: int) -> None:
    """Cut the series log back to the `committed_bytes` the manifest names, durably, logging
    what a checkpoint that did not finish had appended; a shorter log is `CorruptStoreError`."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    if size < committed_bytes:
        raise CorruptStoreError(
            f"{path} holds {size} bytes and the manifest says {committed_bytes} are committed"
        )
    if size == committed_bytes:
        return
    with path.open("r+b") as f:
        f.truncate(committed_bytes)
        os.fsync(f.fileno())
    _LOG.warning(
        "discarding %d bytes of %s after the %d the manifest committed: series appended by a "
        "checkpoint that did not finish (the WAL still defines them)",
        size - committed_bytes,
        path,
        committed_bytes,
    )
