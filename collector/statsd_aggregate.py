"""StatsD aggregation per flush interval, as etsy/statsd does it, over numpy columns.

Two ingest paths feed the same per-batch update (`_apply`), so they can only differ in
parsing. The fast path splits a whole chunk at its values with one regex call and maps each
line without its value (`name:|type...`) to a cached key id; it takes the chunk only if every
key is known (or learnt from the exact parser), every line holds one value and every value
is valid (a finite number; not negative for an `ms` timer, as etsy refuses those).
Otherwise the chunk is halved until the pieces are small, and those go line by line through
`collector.statsd.parse_line`, which drops and counts each bad line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from itertools import repeat
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from collector.errors import ParseError
from collector.parse_result import split_near_middle
from collector.stats import IngestStats
from collector.statsd import COUNTER, GAUGE, SET, TIMER, StatsdMetric, parse_line
from collector.statsd_flush import SlotOutputs, output_names, timer_stats
from storage.records import FloatArray, IndexArray, Samples, Series, Sketches
from storage.sketches import build as build_sketches

log = logging.getLogger(__name__)

# A value lies between a `:` and the next `|`; the exact parser decides whether a line with
# one such match is `name:value|suffix`.
_VALUE = re.compile(rb":([^|:\n]*)\|")
_NUMBER_BYTES = b"0123456789.+-eE"
_SIGNS = (b"+", b"-")
_EMPTY_LINE = 0  # key id of empty lines, which are skipped
_EXACT_BYTES = 2048  # chunks up to this size that the fast path refuses go line by line
_VALUES_MAX = 100_000  # bound of the value-text cache (cleared when full)
_KEYS_MAX = 1_000_000  # bound of the key cache; slots are bounded by idle expiry

BoolArray = NDArray[np.bool_]


class Flushed(NamedTuple):
    """What one flush interval produced."""

    samples: Samples
    sketches: Sketches


class StatsdAggregator:
    """Counters, gauges, timers and sets of one flush interval, keyed by (kind, series)."""

    def __init__(
        self,
        stats: IngestStats,
        *,
        flush_interval_s: float,
        percentiles: Sequence[float] = (90, 95, 99),
        idle_flushes: int = 5,
    ) -> None:
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be positive")
        if any(not 0 < p <= 100 for p in percentiles):
            raise ValueError("percentiles must lie in (0, 100]")
        self._stats = stats
        self._interval_s = flush_interval_s
        self._percentiles = tuple(percentiles)
        self._idle_flushes = idle_flushes
        # Slots: one per (kind, series), columns indexed by slot id.
        self._slots: dict[tuple[int, Series], int] = {}
        self._slot_keys: list[tuple[int, Series]] = []
        self._outputs: list[SlotOutputs] = []
        self._kind = np.zeros(64, np.int8)
        self._active = np.zeros(64, np.bool_)
        self._idle = np.zeros(64, np.int32)
        self._counter = np.zeros(64, np.float64)
        self._gauge = np.zeros(64, np.float64)
        self._timer_parts: list[tuple[IndexArray, FloatArray, FloatArray]] = []
        self._sets: dict[int, set[bytes]] = {}
        # Keys of the fast path: a line without its value -> key id -> (slot, 1 / sample rate,
        # whether its type refuses negative values).
        self._kids: dict[bytes, int] = {}
        self._kid_slot = np.zeros(64, np.int32)
        self._kid_weight = np.ones(64, np.float64)
        self._kid_non_negative = np.zeros(64, np.bool_)
        self._reset_kids()
        # Value texts seen before -> row of their float and whether they begin with a sign;
        # only valid finite numbers get in.
        self._value_id: dict[bytes, int] = {}
        self._value_table = np.empty(1024, np.float64)
        self._value_signed = np.zeros(1024, np.bool_)

    # --- ingest ---------------------------------------------------------------------------

    def ingest(self, data: bytes) -> None:
        """Take one datagram or a chunk of complete lines."""
        if not self._ingest_fast(data):
            self._ingest_split(data)

    def ingest_exact(self, data: bytes) -> None:
        """Take a chunk line by line, dropping and counting bad lines (the fast path's
        fallback, and the reference it is tested against)."""
        metrics: list[StatsdMetric] = []
        for line in data.split(b"\n"):
            if not line or line == b"\r":
                continue
            try:
                metrics.extend(parse_line(line))
            except ParseError as e:
                self._stats.add_dropped("statsd", e.reason)
                log.debug("dropped StatsD line: %s", e)
        if not metrics:
            return
        slots = np.fromiter((self._slot(m.kind, m.series) for m in metrics), np.int32)
        values = np.fromiter((m.value for m in metrics), np.float64, len(metrics))
        weights = np.fromiter((1.0 / m.rate for m in metrics), np.float64, len(metrics))
        deltas = np.fromiter((m.delta for m in metrics), np.bool_, len(metrics))
        members = [m.member for m in metrics if m.kind == SET]
        self._apply(slots, values, weights, deltas, members)

    def _ingest_split(self, data: bytes) -> None:
        # Halving keeps one bad line from sending a whole batch down the slow path.
        halves = split_near_middle(data) if len(data) > _EXACT_BYTES else None
        if halves is None:
            self.ingest_exact(data)
            return
        for half in halves:
            if not self._ingest_fast(half):
                self._ingest_split(half)

    def _ingest_fast(self, data: bytes) -> bool:
        # Splitting at the values gives the values and, joined back, the chunk with every
        # value cut out, whose lines are the keys.
        pieces = _VALUE.split(data)
        values = pieces[1::2]
        keys = b":|".join(pieces[0::2]).split(b"\n")
        kid_array = np.fromiter(map(self._kids.get, keys, repeat(-1)), np.int32, len(keys))
        unknown = np.flatnonzero(kid_array < 0).tolist()
        if unknown and not self._learn_keys(data, keys, kid_array, unknown):
            return False
        if not kid_array.all():
            kid_array = kid_array[kid_array != _EMPTY_LINE]
        # Known keys hold one value each, so equal counts mean one value on every line.
        if len(kid_array) != len(values):
            return False
        if not len(kid_array):
            return True
        slots = self._kid_slot[kid_array]
        kinds = self._kind[slots]
        members: list[bytes] = []
        set_rows = np.flatnonzero(kinds == SET).tolist()
        if set_rows:
            members = list(map(values.__getitem__, set_rows))
            if b"" in members:
                return False
            values = values.copy()
            for i in set_rows:
                values[i] = b"0"
        value_ids = self._value_ids(values)
        if value_ids is None:
            return False
        numbers = self._value_table[value_ids]
        if (self._kid_non_negative[kid_array] & (numbers < 0)).any():
            return False
        deltas = self._value_signed[value_ids] & (kinds == GAUGE)
        weights = self._kid_weight[kid_array]
        self._apply(slots, numbers, weights, deltas, members)
        return True

    def _learn_keys(
        self, data: bytes, keys: list[bytes], kid_array: IndexArray, unknown: list[int]
    ) -> bool:
        """Fill unknown key ids from the exact parser; False if a line needs the exact path."""
        lines = data.split(b"\n")
        for i in unknown:
            kid = self._kids.get(keys[i])
            if kid is None:
                # Only a line with one value is keyed: the count check in _ingest_fast needs
                # every known key to hold exactly one.
                if len(_VALUE.findall(lines[i])) != 1:
                    return False
                try:
                    metrics = parse_line(lines[i])
                except ParseError:
                    return False
                if len(metrics) != 1:
                    return False
                kid = self._add_kid(keys[i], self._slot(metrics[0].kind, metrics[0].series))
                self._kid_weight[kid] = 1.0 / metrics[0].rate
                self._kid_non_negative[kid] = metrics[0].non_negative
            kid_array[i] = kid
        return True

    def _value_ids(self, texts: list[bytes]) -> IndexArray | None:
        """Rows of the value table for every text; None if one is not a finite number (as
        parse_number reads it)."""
        cache = self._value_id
        ids = np.fromiter(map(cache.get, texts, repeat(-1)), np.int32, len(texts))
        missing = np.flatnonzero(ids < 0)
        if not len(missing):
            return ids
        if len(cache) + len(missing) > _VALUES_MAX:
            cache.clear()
            missing = np.arange(len(texts))
        misses = list(dict.fromkeys(map(texts.__getitem__, missing.tolist())))
        # Within these bytes float() reads exactly what NUMBER matches (no spaces, `_`, nan).
        if b"".join(misses).translate(None, _NUMBER_BYTES):
            return None
        try:
            new = np.fromiter(map(float, misses), np.float64, len(misses))
        except ValueError:
            return None
        if not np.isfinite(new).all():
            return None
        first = len(cache)
        end = first + len(misses)
        if end > len(self._value_table):
            size = max(end, 2 * len(self._value_table))
            self._value_table = np.resize(self._value_table, size)
            self._value_signed = np.resize(self._value_signed, size)
        rows = slice(first, end)
        self._value_table[rows] = new
        signed = map(bytes.startswith, misses, repeat(_SIGNS))
        self._value_signed[rows] = np.fromiter(signed, np.bool_, len(misses))
        cache.update(zip(misses, range(first, end), strict=True))
        missed = map(texts.__getitem__, missing.tolist())
        ids[missing] = np.fromiter(map(cache.__getitem__, missed), np.int32, len(missing))
        return ids

    # --- per-batch update ------------------------------------------------------------------

    def _apply(
        self,
        slots: IndexArray,
        values: FloatArray,
        weights: FloatArray,
        deltas: BoolArray,
        members: list[bytes],
    ) -> None:
        """Fold one batch, in line order, into the interval's state."""
        self._stats.add_received("statsd", len(slots))
        self._active[slots] = True
        kinds = self._kind[slots]
        rows = kinds == COUNTER
        if rows.any():
            # Overflow to inf is allowed here; flush leaves out what is not finite.
            with np.errstate(over="ignore", invalid="ignore"):
                np.add.at(self._counter, slots[rows], values[rows] * weights[rows])
        rows = kinds == TIMER
        if rows.any():
            self._timer_parts.append((slots[rows], values[rows], weights[rows]))
        rows = kinds == GAUGE
        if rows.any():
            self._apply_gauges(slots[rows], values[rows], deltas[rows])
        if members:
            set_slots = slots[kinds == SET].tolist()
            for slot, member in zip(set_slots, members, strict=True):
                self._sets.setdefault(slot, set()).add(member)

    def _apply_gauges(self, slots: IndexArray, values: FloatArray, deltas: BoolArray) -> None:
        # Only the last absolute value of a slot matters, plus the deltas after it, added one
        # at a time in order, so results do not depend on how lines were batched.
        unique, inverse = np.unique(slots, return_inverse=True)
        position = np.arange(len(slots))
        last_set = np.full(len(unique), -1)
        np.maximum.at(last_set, inverse[~deltas], position[~deltas])
        has_set = last_set >= 0
        self._gauge[unique[has_set]] = values[last_set[has_set]]
        after = deltas & (position > last_set[inverse])
        with np.errstate(over="ignore", invalid="ignore"):
            np.add.at(self._gauge, slots[after], values[after])

    # --- slots and keys --------------------------------------------------------------------

    def _slot(self, kind: int, series: Series) -> int:
        slot = self._slots.get((kind, series))
        if slot is not None:
            return slot
        slot = len(self._slot_keys)
        if slot == len(self._kind):
            self._grow_slots(2 * slot)
        self._slots[kind, series] = slot
        self._slot_keys.append((kind, series))
        self._outputs.append(output_names(kind, series, self._percentiles))
        self._kind[slot] = kind
        # A slot that gets no data before the next flush is dropped by it unseen.
        self._idle[slot] = self._idle_flushes
        self._counter[slot] = self._gauge[slot] = 0.0
        return slot

    def _grow_slots(self, size: int) -> None:
        for name in ("_kind", "_active", "_idle", "_counter", "_gauge"):
            old = getattr(self, name)
            new = np.zeros(size, old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _add_kid(self, key: bytes, slot: int) -> int:
        kid = len(self._kids)
        if kid == len(self._kid_slot):
            self._kid_slot = np.concatenate([self._kid_slot, np.zeros(kid, np.int32)])
            self._kid_weight = np.concatenate([self._kid_weight, np.ones(kid, np.float64)])
            self._kid_non_negative = np.concatenate(
                [self._kid_non_negative, np.zeros(kid, np.bool_)]
            )
        self._kids[key] = kid
        self._kid_slot[kid] = slot
        self._kid_weight[kid] = 1.0
        self._kid_non_negative[kid] = False
        return kid

    def _reset_kids(self) -> None:
        self._kids = {b"": _EMPTY_LINE}
        self._kid_slot[_EMPTY_LINE] = -1

    # --- flush -----------------------------------------------------------------------------

    def flush(self, now_ns: int) -> Flushed:
        """Everything of the interval as points at `now_ns`, and a sketch of each timer's values
        under its base name; then start a new interval."""
        n = len(self._slot_keys)
        active = self._active[:n]
        idle = np.where(active, 0, self._idle[:n] + 1)
        alive = idle <= self._idle_flushes
        kind = self._kind[:n]
        series: list[Series] = []
        parts: list[FloatArray] = []

        def emit(slots: list[int], columns: list[FloatArray], width: int) -> None:
            series.extend(s for slot in slots for s in self._outputs[slot][:width])
            parts.append(np.column_stack(columns).ravel() if columns else np.empty(0))

        timer_sketches = Sketches.empty()
        with np.errstate(over="ignore", invalid="ignore"):
            counters = np.flatnonzero(alive & (kind == COUNTER))
            counts = self._counter[counters]
            emit(counters.tolist(), [counts, counts / self._interval_s], 2)
            gauges = np.flatnonzero(alive & (kind == GAUGE))
            emit(gauges.tolist(), [self._gauge[gauges]], 1)
            sets = np.flatnonzero(alive & (kind == SET)).tolist()
            set_sizes = [float(len(self._sets.get(slot, ()))) for slot in sets]
            emit(sets, [np.array(set_sizes, np.float64)], 1)
            idle_timers = np.flatnonzero(alive & ~active & (kind == TIMER))
            emit(idle_timers.tolist(), [np.zeros(len(idle_timers))], 1)
            if self._timer_parts:
                parts_by_column = zip(*self._timer_parts, strict=True)
                slots, values, weights = (np.concatenate(c) for c in parts_by_column)
                timer_slots, table, valid = timer_stats(slots, values, weights, self._percentiles)
                timer_sketches = self._sketches(slots, values, weights, now_ns)
                for slot, row in zip(timer_slots.tolist(), valid.tolist(), strict=True):
                    series.extend(s for s, ok in zip(self._outputs[slot], row, strict=True) if ok)
                parts.append(table[valid])

        values_out = np.concatenate(parts)
        # Sums of values near float64's limit overflow; such a point is not worth storing.
        finite = np.flatnonzero(np.isfinite(values_out))
        if len(finite) < len(values_out):
            series = [series[i] for i in finite.tolist()]
            values_out = values_out[finite]
        samples = Samples(
            series,
            np.arange(len(series), dtype=np.int32),
            np.full(len(series), now_ns, np.int64),
            values_out,
        )
        self._next_interval(idle, alive)
        return Flushed(samples, timer_sketches)

    def _sketches(
        self, slots: IndexArray, values: FloatArray, weights: FloatArray, now_ns: int
    ) -> Sketches:
        """One sketch per timer slot of its values, each counted 1 / sample rate times."""
        label, keys, counts = build_sketches(slots.astype(np.int64), values, weights)
        first = np.r_[True, label[1:] != label[:-1]]  # rows come sorted by slot
        index = np.cumsum(first) - 1
        series = [self._slot_keys[slot][1] for slot in label[first].tolist()]
        ts = np.full(len(keys), now_ns, np.int64)
        return Sketches(series, index.astype(np.int32), ts, keys, counts)

    def _next_interval(self, idle: NDArray[np.int64], alive: BoolArray) -> None:
        n = len(idle)
        self._active[:n] = False
        self._idle[:n] = idle
        self._counter[:n] = 0.0
        self._timer_parts = []
        self._sets = {}
        if not alive.all():
            self._drop_slots(alive)
        if len(self._kids) > _KEYS_MAX:
            self._reset_kids()

    def _drop_slots(self, alive: BoolArray) -> None:
        keep = np.flatnonzero(alive)
        for name in ("_kind", "_idle", "_gauge"):
            column = getattr(self, name)
            column[: len(keep)] = column[keep]
        self._slot_keys = [self._slot_keys[i] for i in keep.tolist()]
        self._outputs = [self._outputs[i] for i in keep.tolist()]
        self._slots = {key: slot for slot, key in enumerate(self._slot_keys)}
        renumber = np.full(len(alive), -1, np.int32)
        renumber[keep] = np.arange(len(keep), dtype=np.int32)
        old_kids = self._kids
        old_slot, old_weight = self._kid_slot.copy(), self._kid_weight.copy()
        old_non_negative = self._kid_non_negative.copy()
        self._reset_kids()
        for key, kid in old_kids.items():
            slot = int(old_slot[kid])
            if kid != _EMPTY_LINE and renumber[slot] >= 0:
                new_kid = self._add_kid(key, int(renumber[slot]))
                self._kid_weight[new_kid] = old_weight[kid]
                self._kid_non_negative[new_kid] = old_non_negative[kid]
