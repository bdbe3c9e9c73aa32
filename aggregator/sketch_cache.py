"""Percentiles per step bucket from merged sketches, with the answers of a repeated query kept.

A dashboard asks the same percentile over the same series again and again, and all but its
newest step buckets lie in a rollup tier that changes once a bucket's pass is done. So the
answers of each step bucket read wholly from the tier (before its watermark, no dirty bucket in
it) are kept, per (store, tier, step, quantile, group_by, series), with the number of the
store's last sketch change. A later query takes a kept answer only if no change noted since
(`storage.base.SketchChanges`: a write, rollup or backfill of sketches of that tier, retention
cutting it) touches its step bucket and it is still wholly before the watermark and clean;
every other step bucket is read and merged as without the cache. Kept answers are exact: a
step bucket's percentile depends only on the sketches in it when bucket counts are whole
numbers summing below 2^53 (`sketches.exact_quantiles`), and answers of other counts are not kept.
A store that cannot tell its changes (InfluxDB) keeps nothing.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from storage.base import SketchChanges, StoreReader, bucket_spans
from storage.records import FloatArray, IndexArray, IntArray, Tier

Answers = tuple[IndexArray, IntArray, FloatArray]  # (group, step bucket, value), sorted
Compute = Callable[[int, int], tuple[Answers, bool]]  # [lo, hi) -> answers, exact to keep
Key = tuple[object, ...]

MAX_KEPT_ANSWERS = 2_000_000  # per store, about 40 MB


@dataclass(frozen=True, slots=True)
class _Kept:
    change: int  # the store's last sketch change when these were read
    buckets: IntArray  # the step buckets answered, sorted (some have no answer: no data)
    answers: Answers


class _StoreCache:
    """The kept answers of one store, least recently used first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[Key, _Kept] = OrderedDict()
        self.size = 0

    def get(self, key: Key) -> _Kept | None:
        with self.lock:
            kept = self.entries.get(key)
            if kept is not None:
                self.entries.move_to_end(key)
            return kept

    def put(self, key: Key, kept: _Kept) -> None:
        size = len(kept.answers[0]) + len(kept.buckets)
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.size -= len(old.answers[0]) + len(old.buckets)
            if size > MAX_KEPT_ANSWERS:
                return
            self.entries[key] = kept
            self.size += size
            while self.size > MAX_KEPT_ANSWERS:
                _, dropped = self.entries.popitem(last=False)
                self.size -= len(dropped.answers[0]) + len(dropped.buckets)


_CACHES: weakref.WeakKeyDictionary[StoreReader, _StoreCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cached_answers(
    store: StoreReader,
    tier: Tier,
    key: Key,
    start_ns: int,
    end_ns: int,
    step_ns: int,
    compute: Compute,
) -> Answers:
    """The answers of every step bucket of [start_ns, end_ns) (`start_ns` on a step edge):
    kept ones still exact, the others from `compute` over spans of whole step buckets."""
    if tier.is_raw or not isinstance(store, SketchChanges):
        return compute(start_ns, end_ns)[0]
    with _CACHES_LOCK:
        cache = _CACHES.setdefault(store, _StoreCache())
    key = (tier.name, step_ns, *key)
    kept = cache.get(key)
    # The change number first, then watermark and dirty buckets, then rows (as `tiered`
    # reads them): a change after this number is seen by the next query.
    change, changed = store.sketch_changes(tier.name, kept.change if kept else 0)
    watermark = store.watermark(tier.name)
    clean_end = min(max(watermark if watermark is not None else start_ns, start_ns), end_ns)
    clean_end -= (clean_end - start_ns) % step_ns
    buckets = np.arange(start_ns, end_ns, step_ns, dtype=np.int64)
    keep = buckets < clean_end
    dirty = store.dirty(tier.name).within(start_ns, clean_end).for_readers()
    keep[np.searchsorted(buckets, dirty - (dirty - start_ns) % step_ns)] = False
    reuse = np.zeros(len(buckets), np.bool_)
    if kept is not None:
        reuse = keep & np.isin(buckets, kept.buckets)
        for lo, hi in changed:
            reuse &= (buckets > hi) | (buckets + step_ns <= lo)
    parts: list[Answers] = []
    exact = True
    for lo, hi in bucket_spans(buckets[~reuse], step_ns):
        answers, span_exact = compute(lo, min(hi, end_ns))
        parts.append(answers)
        exact &= span_exact
    if kept is not None and reuse.any():
        parts.append(_at(kept.answers, buckets[reuse]))
    found = _joined(parts)
    if exact and keep.any():
        cache.put(key, _Kept(change, buckets[keep], _at(found, buckets[keep])))
    return found


def _at(answers: Answers, buckets: IntArray) -> Answers:
    """The answers whose step bucket is in the sorted `buckets`."""
    picked = np.isin(answers[1], buckets)
    return answers[0][picked], answers[1][picked], answers[2][picked]


def _joined(parts: Sequence[Answers]) -> Answers:
    """Answers of disjoint step buckets as one, sorted by (group, bucket)."""
    if len(parts) == 1:
        return parts[0]
    index, bucket, value = (np.concatenate([p[i] for p in parts]) for i in range(3))
    order = np.lexsort((bucket, index))
    return index[order].astype(np.int32), bucket[order], value[order]
