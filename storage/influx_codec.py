"""InfluxDB wire formats: series as line protocol, InfluxQL quoting, `/query` answers as columns.

A series `metric{k=v}` is measurement `metric`, tags `k=v` and one float field `value`. Line
protocol cannot carry an empty tag key or value, so such tags are left out; a series with a
newline in its name or tags cannot be written at all and is refused. InfluxDB 1.x keeps
backslashes literally, so only the characters the format reserves are escaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from storage.records import FloatArray, IndexArray, IntArray, Rollups, Samples, Series
from storage.series_index import sort_key

ROLLUP_FIELDS = ("min", "max", "sum", "count", "last")
MIN_TS, MAX_TS = -(2**63) + 2, 2**63 - 2  # InfluxDB's representable time range
_MAX_FILTER_SERIES = 500  # above this a read filters by measurement only, then exactly here

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_TAG = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_UNESCAPE = re.compile(r"\\([,= ])")


def writable(series: Series) -> bool:
    """Whether line protocol can carry `series` (no newline, a non-empty name)."""
    return bool(series.metric) and "\n" not in str(series)


def line_prefix(series: Series, measurement: str) -> str:
    """`measurement,k=v,...` escaped for line protocol, empty tags left out."""
    parts = [measurement.translate(_MEASUREMENT)]
    parts += [f"{key_text(k)}={key_text(v)}" for k, v in series.tags if k and v]
    return ",".join(parts)


def key_text(text: str) -> str:
    """A tag key or value, or a field key, escaped for line protocol."""
    return text.translate(_TAG)


def encode_samples(samples: Samples, prefixes: Sequence[str]) -> bytes:
    """Line protocol of `samples`; `prefixes[i]` is the line prefix of `samples.series[i]`."""
    lines = [
        f"{prefixes[i]} value={v!r} {t}"
        for i, t, v in zip(
            samples.index.tolist(), samples.ts_ns.tolist(), samples.values.tolist(), strict=True
        )
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def encode_rollups(rollups: Rollups, prefixes: Sequence[str]) -> list[str]:
    """Line protocol rows of `rollups`, one line per row with fields min, max, sum, count, last."""
    columns = (rollups.min, rollups.max, rollups.sum, rollups.count, rollups.last)
    rows = zip(
        rollups.index.tolist(),
        rollups.bucket_ns.tolist(),
        *(c.tolist() for c in columns),
        strict=True,
    )
    return [
        f"{prefixes[i]} min={lo!r},max={hi!r},sum={total!r},count={n!r},last={last!r} {t}"
        for i, t, lo, hi, total, n, last in rows
    ]


def ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: str) -> str:
    """An InfluxQL string literal, single-quoted."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def regex_literal(pattern: str) -> str:
    """An InfluxQL regex literal `/pattern/`."""
    return "/" + pattern.replace("/", "\\/") + "/"


def series_filter(series: Iterable[Series]) -> str:
    """A WHERE condition selecting at least the given series' tag sets (callers filter exactly
    afterwards: a condition on some tags also matches series with more)."""
    terms = []
    for s in series:
        tags = [f"{ident(k)}={literal(v)}" for k, v in s.tags if k and v]
        if not tags:
            return ""  # a series without tags: every tag set may be it
        terms.append("(" + " AND ".join(tags) + ")")
    return " OR ".join(sorted(set(terms)))


def select_query(
    prefix: str,
    series: tuple[Series, ...] | None,
    start_ns: int,
    end_ns: int,
    fields: Sequence[str],
    every: str,
) -> str | None:
    """InfluxQL for `fields` of `series` (measurement `prefix` + metric; None: of every
    measurement matching the regex `every`) with start_ns <= time < end_ns, grouped by every
    tag; None if nothing can match."""
    start_ns, end_ns = max(start_ns, MIN_TS), min(end_ns, MAX_TS)
    if end_ns <= start_ns or series == ():
        return None
    condition = ""
    if series is None:
        sources = regex_literal(every)
    else:
        sources = ",".join(ident(prefix + m) for m in sorted({s.metric for s in series}))
        condition = series_filter(series) if len(series) <= _MAX_FILTER_SERIES else ""
    select = ",".join(ident(f) for f in fields)
    query = f"SELECT {select} FROM {sources} WHERE time >= {start_ns} AND time < {end_ns}"
    return query + (f" AND ({condition})" if condition else "") + " GROUP BY *"


def pick(
    found: Sequence[ResultSeries], prefix: str, series: tuple[Series, ...] | None
) -> tuple[tuple[Series, ...], list[tuple[int, ResultSeries]]]:
    """The series of a read (`series`, or every one `found`, sorted) and each answer of one of
    them with its position there, in that order (`prefix`: what measurements add to metrics)."""
    results = [(Series.of(r.name.removeprefix(prefix), r.tags), r) for r in found]
    if series is None:
        results.sort(key=lambda item: sort_key(item[0]))
        series = tuple(s for s, _ in results)
        positions = list(range(len(results)))
    else:
        where: dict[Series, int] = {}
        for i, s in enumerate(series):
            where.setdefault(s, i)
        positions = [where.get(s, -1) for s, _ in results]
    picked = [(p, r) for p, (_, r) in zip(positions, results, strict=True) if p >= 0]
    picked.sort(key=lambda item: item[0])
    return series, picked


def stack(
    picked: Sequence[tuple[int, ResultSeries]], fields: Sequence[str]
) -> tuple[IndexArray, IntArray, list[FloatArray]]:
    """The answers `picked` (as `pick` gives them) as columns: positions, times, `fields`."""
    index = np.concatenate(
        [np.full(len(r.ts_ns), p, np.int32) for p, r in picked] or [np.empty(0, np.int32)]
    )
    ts = np.concatenate([r.ts_ns for _, r in picked] or [np.empty(0, np.int64)])
    columns = [
        np.concatenate([r.columns[f] for _, r in picked] or [np.empty(0, np.float64)])
        for f in fields
    ]
    return index, ts, columns


def parse_series_key(key: str) -> Series:
    """A series of `SHOW SERIES` (`measurement,k=v,...`, escaped) back as a Series."""
    parts = _split(key, ",")
    tags = []
    for part in parts[1:]:
        k, v = [*_split(part, "=", 1), ""][:2]
        tags.append((_UNESCAPE.sub(r"\1", k), _UNESCAPE.sub(r"\1", v)))
    return Series.of(_UNESCAPE.sub(r"\1", parts[0]), tags)


def _split(text: str, separator: str, limit: int = -1) -> list[str]:
    """Split on separators not preceded by a backslash."""
    return re.split(r"(?<!\\)" + re.escape(separator), text, maxsplit=max(limit, 0))


def show_values(body: bytes) -> list[str]:
    """The first column of every row of a `SHOW ...` answer (series keys, measurement names)."""
    try:
        return _show_values(body)
    except (KeyError, TypeError, IndexError, AttributeError) as error:
        raise ValueError(f"not an InfluxDB answer: {error!r}") from error


def _show_values(body: bytes) -> list[str]:
    names: list[str] = []
    for line in body.splitlines():
        if line.strip():
            for result in _results(orjson.loads(line)):
                for s in result.get("series", ()):
                    names += [str(row[0]) for row in s.get("values") or []]
    return names


def _results(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, dict):
        raise ValueError(f"not an InfluxDB answer: {str(answer)[:100]}")
    if "error" in answer:
        raise ValueError(answer["error"])
    results: list[dict[str, Any]] = answer.get("results", [])
    for result in results:
        if "error" in result:
            raise ValueError(result["error"])
    return results


@dataclass(frozen=True, slots=True)
class ResultSeries:
    """One series of a `/query` answer: its measurement, tags, numeric columns and the string
    columns asked for (`texts`)."""

    name: str
    tags: tuple[tuple[str, str], ...]
    ts_ns: IntArray
    columns: dict[str, FloatArray]
    texts: dict[str, list[str]] = field(default_factory=dict)


def parse_query(body: bytes, texts: Collection[str] = ()) -> list[ResultSeries]:
    """The series of a `/query?epoch=ns` answer, chunked (JSON lines) or not; the columns
    named in `texts` are strings (a missing value is ""), the others float64 (NaN).

    Chunks of one series (marked partial) are joined; empty tag values (`GROUP BY *` across
    measurements reports every tag key) are dropped. Raises ValueError on an error answer or
    on anything that is not an answer."""
    try:
        return _parse_query(body, texts)
    except (KeyError, TypeError, IndexError, AttributeError, OverflowError) as error:
        raise ValueError(f"not an InfluxDB answer: {error!r}") from error


def _parse_query(body: bytes, texts: Collection[str]) -> list[ResultSeries]:
    pieces: dict[
        tuple[str, tuple[tuple[str, str], ...]], list[tuple[list[str], list[list[object]]]]
    ]
    pieces = {}
    for line in body.splitlines():
        if not line.strip():
            continue
        for result in _results(orjson.loads(line)):
            for s in result.get("series", ()):
                tags = tuple(sorted((k, v) for k, v in (s.get("tags") or {}).items() if v))
                key = (s.get("name", ""), tags)
                pieces.setdefault(key, []).append((s["columns"], s.get("values") or []))
    found = []
    for (name, tags), parts in pieces.items():
        columns = parts[0][0]
        rows = [row for _, values in parts for row in values]
        ts = np.fromiter((row[0] for row in rows), np.int64, len(rows))
        fields = {
            column: np.fromiter(
                (math.nan if row[i] is None else row[i] for row in rows),
                np.float64,
                len(rows),
            )
            for i, column in enumerate(columns)
            if i and column not in texts
        }
        strings = {
            column: ["" if row[i] is None else str(row[i]) for row in rows]
            for i, column in enumerate(columns)
            if i and column in texts
        }
        found.append(ResultSeries(name, tags, ts, fields, strings))
    return found
