"""Shipboard's batches as VictoriaMetrics' JSON lines (`/api/v1/import`, `/api/v1/export`) and
back, and the selectors that pick series.

One line per series: `{"metric": {"__name__": <metric>, <tag>: <value>, ...}, "values": [...],
"timestamps": [<ms>, ...]}`. VictoriaMetrics keeps milliseconds, so a time is cut to its
millisecond; JSON has no NaN or infinity, so such points are left out (and counted).

A latency sketch (`storage.sketches`) is one series per bucket key, under `~sketch:<metric>`
with two labels of its own, `sb_key` (the bucket key, or `sum`/`min`/`max` for the header) and
`sb_scale` (the sketch's scale). Keeping the scale in the labels lets VictoriaMetrics itself sum
the counts of one key over a rollup bucket (`sum_over_time`) without mixing scales; sketches of
different scales are merged by Shipboard, downscaling as `storage.sketches` says.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence

import numpy as np
import orjson

from storage.records import NS_PER_MS, FloatArray, IndexArray, IntArray, Samples, Series, Sketches
from storage.series_index import sort_key
from storage.sketches import MAX_KEY, MIN_KEY, SCALE_KEY, SUM_KEY

SKETCH_PREFIX = "~sketch:"
KEY_LABEL = "sb_key"
SCALE_LABEL = "sb_scale"
_HEADER_NAMES = {SUM_KEY: "sum", MIN_KEY: "min", MAX_KEY: "max"}
_HEADER_KEYS = {name: key for key, name in _HEADER_NAMES.items()}
_JSON = orjson.OPT_SERIALIZE_NUMPY
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def writable(series: Series) -> bool:
    """Whether VictoriaMetrics can keep `series` as it is: a name that is not the store's own
    (`~...`), no empty tag value (Prometheus' model drops such a label), no `__name__` tag."""
    return (
        bool(series.metric)
        and not series.metric.startswith("~")
        and all(value and key != "__name__" for key, value in series.tags)
    )


def encode_samples(samples: Samples) -> tuple[bytes, int]:
    """JSON lines of the batch's finite points, and how many were not finite (left out)."""
    finite = np.isfinite(samples.values)
    kept = samples.take(finite) if not finite.all() else samples
    lines = [
        _line(_labels(samples.series[i], samples.series[i].metric), ts, values)
        for i, ts, values in _per_series(kept.index, kept.ts_ns, kept.values)
    ]
    return b"".join(lines), int(np.count_nonzero(~finite))


def encode_sketches(sketches: Sketches) -> bytes:
    """JSON lines of the sketches' rows, one series per (series, scale, key)."""
    starts = np.flatnonzero(sketches.keys == SCALE_KEY)
    lengths = np.diff(np.append(starts, len(sketches.keys)))
    scale = np.repeat(sketches.values[starts], lengths).astype(np.int64)
    rows = (sketches.keys != SCALE_KEY) & np.isfinite(sketches.values)
    index, ts, keys = sketches.index[rows], sketches.ts_ns[rows], sketches.keys[rows]
    values, scale = sketches.values[rows], scale[rows]
    order = np.lexsort((ts, keys, scale, index))
    index, ts, keys, values, scale = (
        index[order],
        ts[order],
        keys[order],
        values[order],
        scale[order],
    )
    change = (
        np.flatnonzero((np.diff(index) != 0) | (np.diff(scale) != 0) | (np.diff(keys) != 0)) + 1
    )
    bounds = np.concatenate([[0], change, [len(index)]]).tolist()
    out = []
    for lo, hi in itertools.pairwise(bounds):
        if lo == hi:
            continue
        series = sketches.series[int(index[lo])]
        labels = _labels(series, SKETCH_PREFIX + series.metric)
        labels[KEY_LABEL] = key_text(int(keys[lo]))
        labels[SCALE_LABEL] = str(int(scale[lo]))
        out.append(_line(labels, ts[lo:hi], values[lo:hi]))
    return b"".join(out)


def key_text(key: int) -> str:
    return _HEADER_NAMES.get(key, str(key))


def parse_key(text: str) -> int:
    return _HEADER_KEYS.get(text) or int(text)


def decode_samples(body: bytes, wanted: Iterable[Series] | None) -> Samples:
    """Export lines as a batch sorted by (index, ts), one point per millisecond (the last one
    VictoriaMetrics returns), of `wanted` series only (None: all but the store's own)."""
    keep = set(wanted) if wanted is not None else None
    series: list[Series] = []
    parts: list[tuple[IntArray, FloatArray]] = []
    for line in body.splitlines():
        if not line:
            continue
        item = orjson.loads(line)
        found = _series(item["metric"])
        if found.metric.startswith("~") or (keep is not None and found not in keep):
            continue
        series.append(found)
        parts.append((_ns(item["timestamps"]), np.asarray(item["values"], np.float64)))
    return _samples(series, parts, wanted)


def decode_sketches(body: bytes, wanted: Iterable[Series] | None) -> Sketches:
    """Export lines of `~sketch:` series as Sketches (`sketch_rows`)."""
    lines = (orjson.loads(line) for line in body.splitlines() if line)
    found = (
        (i["metric"], _ns(i["timestamps"]), np.asarray(i["values"], np.float64)) for i in lines
    )
    return sketch_rows(found, wanted)


def sketch_rows(
    found: Iterable[tuple[dict[str, str], IntArray, FloatArray]], wanted: Iterable[Series] | None
) -> Sketches:
    """The (labels, times, values) of `~sketch:` series as Sketches of `wanted` series (None:
    all): each (series, ts, scale) a sketch, sorted by (index, ts, scale, key). Sketches of two
    scales at one time are merged by the caller (`storage.sketches.merge_by`)."""
    keep = set(wanted) if wanted is not None else None
    positions: dict[Series, int] = {}
    index: list[IndexArray] = []
    ts: list[IntArray] = []
    keys: list[IntArray] = []
    values: list[FloatArray] = []
    scales: list[IntArray] = []
    for labels, times, counts in found:
        labels = dict(labels)
        key, scale = parse_key(labels.pop(KEY_LABEL)), int(labels.pop(SCALE_LABEL))
        labels["__name__"] = labels.get("__name__", "").removeprefix(SKETCH_PREFIX)
        series = _series(labels)
        if keep is not None and series not in keep:
            continue
        n = len(times)
        index.append(np.full(n, positions.setdefault(series, len(positions)), np.int32))
        ts.append(times)
        keys.append(np.full(n, key, np.int64))
        values.append(counts)
        scales.append(np.full(n, scale, np.int64))
    return _assemble(tuple(positions), index, ts, keys, values, scales)


def _assemble(
    series: Sequence[Series],
    index: Sequence[IndexArray],
    ts: Sequence[IntArray],
    keys: Sequence[IntArray],
    values: Sequence[FloatArray],
    scales: Sequence[IntArray],
) -> Sketches:
    """Rows of (series, ts, scale, key), in parts, as Sketches sorted by (index, ts, scale,
    key), a scale header row added to each sketch."""
    if not index:
        return Sketches.empty()
    i, t, k, v, s = (np.concatenate(part) for part in (index, ts, keys, values, scales))
    order = np.lexsort((k, s, t, i))
    i, t, k, v, s = i[order], t[order], k[order], v[order], s[order]
    first = np.ones(len(t), np.bool_)
    first[1:] = (np.diff(i) != 0) | (np.diff(t) != 0) | (np.diff(s) != 0)
    heads = np.flatnonzero(first)
    at = np.arange(len(t)) + np.cumsum(first)  # where each row lands, after its header
    head_at = at[heads] - 1
    rows = len(t) + len(heads)
    out_index = np.empty(rows, np.int32)
    out_ts = np.empty(rows, np.int64)
    out_keys = np.empty(rows, np.int64)
    out_values = np.empty(rows, np.float64)
    for target, source, head in (
        (out_index, i, i[heads]),
        (out_ts, t, t[heads]),
        (out_keys, k, np.full(len(heads), SCALE_KEY)),
        (out_values, v, s[heads].astype(np.float64)),
    ):
        target[at] = source
        target[head_at] = head
    return Sketches(series, out_index, out_ts, out_keys, out_values)


def selector(metric: str, series: Sequence[Series] = (), prefix: str = "") -> str:
    """A series selector for `prefix + metric`, narrowed to one series' exact tags when given
    one (VictoriaMetrics also matches series with more labels: readers filter exactly)."""
    matchers = [f"__name__={quote(prefix + metric)}"]
    if len(series) == 1:
        matchers += [f"{_label_name(k)}={quote(v)}" for k, v in series[0].tags]
    return "{" + ",".join(matchers) + "}"


def presence_query(selectors: Sequence[str], window_ms: int) -> str:
    """A query whose instant answer at t is each series of `selectors` with a point in
    (t - window_ms, t], under its own name."""
    counts = (f"count_over_time({s}[{window_ms}ms]) keep_metric_names" for s in selectors)
    return " or ".join(counts)


def decode_present(body: bytes, wanted: Iterable[Series] | None) -> set[Series]:
    """The series of a `presence_query` answer that are `wanted` (None: all but the store's
    own)."""
    keep = set(wanted) if wanted is not None else None
    found = (_series(item["metric"]) for item in orjson.loads(body)["data"]["result"])
    return {s for s in found if not s.metric.startswith("~") and (keep is None or s in keep)}


def quote(text: str) -> str:
    """A PromQL/MetricsQL string literal."""
    return orjson.dumps(text).decode()


def matchable(series: Series) -> bool:
    """Whether every tag of `series` is a label name a selector can spell."""
    return all(_LABEL_NAME.fullmatch(key) for key, _ in series.tags)


def _label_name(key: str) -> str:
    if not _LABEL_NAME.fullmatch(key):
        raise ValueError(f"tag {key!r} cannot be matched in a selector")
    return key


def _labels(series: Series, name: str) -> dict[str, str]:
    labels = {"__name__": name}
    labels.update(series.tags)
    return labels


def _series(labels: dict[str, str]) -> Series:
    tags = [(k, v) for k, v in labels.items() if k != "__name__"]
    return Series.of(labels.get("__name__", ""), tags)


def _line(labels: dict[str, str], ts_ns: IntArray, values: FloatArray) -> bytes:
    body = {"metric": labels, "values": values, "timestamps": ts_ns // NS_PER_MS}
    return orjson.dumps(body, option=_JSON) + b"\n"


def _ns(timestamps: list[int]) -> IntArray:
    return np.asarray(timestamps, np.int64) * NS_PER_MS


def _per_series(
    index: IndexArray, ts: IntArray, values: FloatArray
) -> Iterable[tuple[int, IntArray, FloatArray]]:
    order = np.argsort(index, kind="stable")
    index, ts, values = index[order], ts[order], values[order]
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(index)) + 1, [len(index)]]).tolist()
    for lo, hi in itertools.pairwise(bounds):
        if lo < hi:
            yield int(index[lo]), ts[lo:hi], values[lo:hi]


def _samples(
    series: list[Series], parts: list[tuple[IntArray, FloatArray]], wanted: Iterable[Series] | None
) -> Samples:
    order = list(wanted) if wanted is not None else sorted(set(series), key=sort_key)
    positions = {s: i for i, s in enumerate(order)}
    if not parts:
        return _empty(order)
    index = np.concatenate(
        [np.full(len(ts), positions[s], np.int32) for s, (ts, _) in zip(series, parts, strict=True)]
    )
    ts = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    # Sorted by (index, ts), stable: of two points at one millisecond the later one returned
    # is the last of its run, and wins.
    order_rows = np.lexsort((ts, index))
    index, ts, values = index[order_rows], ts[order_rows], values[order_rows]
    last = np.ones(len(ts), np.bool_)
    last[:-1] = (np.diff(index) != 0) | (np.diff(ts) != 0)
    return Samples(tuple(order), index[last], ts[last], values[last])


def _empty(order: list[Series]) -> Samples:
    empty = Samples.empty()
    return Samples(tuple(order), empty.index, empty.ts_ns, empty.values)
