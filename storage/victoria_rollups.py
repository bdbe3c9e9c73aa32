"""Rollup rows and merged sketches computed by VictoriaMetrics itself, at read time.

A bucket [b, b + w) of a tier is VictoriaMetrics' `*_over_time(selector[w])` evaluated at
b + w - 1 ms: its windows are (t - w, t], so that one holds exactly the milliseconds of the
bucket. `query_range` with `step=w` gives every bucket of a range in one request (cut into
requests of at most `MAX_STEPS` buckets, under its points-per-series limit), `nocache=1` so
that a backfilled point is in the very next answer, `keep_metric_names` so that many metrics
can be asked at once.

    rollups   aggr_over_time(("min_over_time", ..., "last_over_time"), sel[w])
    sketches  sum_over_time of each bucket key and of the sum, min_over_time of the min,
              max_over_time of the max, per (series, scale): exact, as bucket counts add
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import orjson

from storage.records import NS_PER_MS, FloatArray, IntArray, Rollups, Series, Sketches
from storage.series_index import sort_key
from storage.victoria_codec import KEY_LABEL, sketch_rows

MAX_STEPS = 10_000
_ROLLUPS = ("min", "max", "sum", "count", "last")
_AGGR = "(" + ",".join(f'"{name}_over_time"' for name in _ROLLUPS) + ")"

QueryRange = Callable[[str, int, int, int], bytes]
"""Runs a query_range for (query, first evaluation ms, last evaluation ms, step ms)."""


def rollup_query(selector: str, width_ns: int) -> str:
    return f"aggr_over_time({_AGGR}, {selector}[{width_ns // NS_PER_MS}ms]) keep_metric_names"


def sketch_query(selector: str, width_ns: int) -> str:
    """`selector` names the `~sketch:` series and ends in `}`: each key's function is added."""
    window = f"[{width_ns // NS_PER_MS}ms]"
    inner = selector[:-1] + ("," if selector != "{}" else "")
    parts = [
        f'sum_over_time({inner}{KEY_LABEL}!~"min|max"}}{window})',
        f'min_over_time({inner}{KEY_LABEL}="min"}}{window})',
        f'max_over_time({inner}{KEY_LABEL}="max"}}{window})',
    ]
    return " or ".join(f"{part} keep_metric_names" for part in parts)


def buckets(start_ns: int, end_ns: int, width_ns: int) -> list[tuple[int, int]]:
    """The first and last bucket start of [start, end), cut into runs of `MAX_STEPS`."""
    first = -(-start_ns // width_ns) * width_ns
    last = (end_ns - 1) // width_ns * width_ns
    runs = []
    while first <= last:
        stop = min(last, first + (MAX_STEPS - 1) * width_ns)
        runs.append((first, stop))
        first = stop + width_ns
    return runs


def evaluate(run: QueryRange, query: str, start_ns: int, end_ns: int, width_ns: int) -> list[bytes]:
    """The answers of `query` at the end of every bucket of [start, end)."""
    width_ms = width_ns // NS_PER_MS
    return [
        run(query, (lo + width_ns) // NS_PER_MS - 1, (hi + width_ns) // NS_PER_MS - 1, width_ms)
        for lo, hi in buckets(start_ns, end_ns, width_ns)
    ]


def _results(
    bodies: Sequence[bytes], width_ns: int
) -> list[tuple[dict[str, str], IntArray, FloatArray]]:
    """Each result series of `bodies`: its labels, bucket starts and values."""
    found = []
    for body in bodies:
        for item in orjson.loads(body)["data"]["result"]:
            pairs = item["values"]
            if not pairs:
                continue
            at = np.asarray([p[0] for p in pairs], np.float64)
            ends = np.round(at * 1000).astype(np.int64) + 1  # the ms just after the bucket
            values = np.asarray([float(p[1]) for p in pairs], np.float64)
            found.append((item["metric"], ends * NS_PER_MS - width_ns, values))
    return found


def decode_rollups(
    bodies: Sequence[bytes], width_ns: int, wanted: Sequence[Series] | None
) -> Rollups:
    """Rollup rows of every (series, bucket) with points, sorted by (index, bucket)."""
    keep = set(wanted) if wanted is not None else None
    columns: dict[Series, dict[str, tuple[IntArray, FloatArray]]] = {}
    for labels, bucket_ns, values in _results(bodies, width_ns):
        labels = dict(labels)
        rollup = labels.pop("rollup").removesuffix("_over_time")
        series = Series.of(labels.pop("__name__", ""), labels.items())
        if keep is None or series in keep:
            columns.setdefault(series, {})[rollup] = (bucket_ns, values)
    order = list(wanted) if wanted is not None else sorted(columns, key=sort_key)
    parts = []
    for i, series in enumerate(order):
        found = columns.get(series)
        if found is None or "count" not in found:
            continue
        bucket_ns = found["count"][0]
        rows = [_aligned(bucket_ns, *found.get(name, (bucket_ns[:0], bucket_ns[:0] * 0.0)))
                for name in _ROLLUPS]  # fmt: skip
        index = np.full(len(bucket_ns), i, np.int32)
        parts.append(Rollups(order, index, bucket_ns, *rows))
    if not parts:
        empty = Rollups.empty()
        return Rollups(tuple(order), empty.index, empty.bucket_ns, *(empty.min,) * 5)
    return Rollups.concat(parts)  # every part has the series of `order`: so has the result


def decode_sketches(
    bodies: Sequence[bytes], width_ns: int, wanted: Sequence[Series] | None
) -> Sketches:
    """The merged sketch of every (series, scale, bucket), one per (series, bucket) once the
    caller merged scales (`storage.sketches.merge_by`)."""
    return sketch_rows(_results(bodies, width_ns), wanted)


def _aligned(bucket_ns: IntArray, found_ns: IntArray, found: FloatArray) -> FloatArray:
    """`found` at each of `bucket_ns` (NaN where it has none)."""
    out = np.full(len(bucket_ns), np.nan)
    at = np.searchsorted(bucket_ns, found_ns)
    ok = (at < len(bucket_ns)) & (bucket_ns[np.minimum(at, len(bucket_ns) - 1)] == found_ns)
    out[at[ok]] = found[ok]
    return out
