"""A metric over a range in a few numbers, for the chat bot's `!graph METRIC RANGE`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aggregator.query import QueryRequest, run_query
from storage.base import StoreReader
from storage.records import Tier
from storage.timeparse import parse_duration_ns

GRAPH_POINTS = 30


@dataclass(frozen=True, slots=True)
class GraphSummary:
    """A metric over a range, as the bot reports it (values oldest first, gaps left out)."""

    metric: str
    start_ns: int
    end_ns: int
    values: tuple[float, ...]
    other_series: int = 0


def graph_summary(
    store: StoreReader, tiers: Sequence[Tier], clock: Callable[[], int] = time.time_ns
) -> Callable[[str, str], GraphSummary]:
    """The bot's graph reader: the mean of `metric` over `range_text` (`1h`, `7d`) back from
    now, in at most `GRAPH_POINTS` buckets; ValueError says what is wrong with the range."""

    def graph(metric: str, range_text: str) -> GraphSummary:
        now_ns = clock()
        start_ns = now_ns - parse_duration_ns(range_text)
        if start_ns < 0:
            raise ValueError(f"{range_text!r} reaches back before 1970")
        request = QueryRequest(metric, (), start_ns, now_ns, None, "mean", (), GRAPH_POINTS, now_ns)
        result = run_query(store, tiers, request)
        first = result.series[0] if result.series else None
        values = () if first is None else tuple(float(v) for v in first.values)
        name = metric if first is None else first.metric
        return GraphSummary(name, start_ns, now_ns, values, max(0, len(result.series) - 1))

    return graph
