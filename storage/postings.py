"""The inverted index: per metric, each tag pair (key, value) to the ids of the series that have it.

A tag-filtered match takes the ids of its rarest pair and checks the few series they name,
instead of every series of the metric. It lives in memory beside the series index and is built
from the same definitions (the series log, then the WAL), so after a crash it is rebuilt with
them and is exactly as durable as the series it indexes.

A pair that one series has (a host name, a container id: most pairs of a large fleet) holds its
id itself, the same int object as the series index's, rather than a list of one: such a pair
costs only its entry in the dict of its key's values.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.records import Series

_Ids = int | list[int]


class Postings:
    """Series ids by (metric, tag key, tag value). Not thread-safe: the series index locks."""

    def __init__(self) -> None:
        self._by_metric: dict[str, dict[str, dict[str, _Ids]]] = {}

    def add(self, sid: int, series: Series) -> None:
        if not series.tags:
            return
        keys = self._by_metric.get(series.metric)
        if keys is None:
            keys = self._by_metric[series.metric] = {}
        for key, value in series.tags:
            values = keys.get(key)
            if values is None:
                values = keys[key] = {}
            held = values.setdefault(value, sid)
            if held is sid:  # the pair's first series (an id is never added twice)
                continue
            if isinstance(held, int):
                values[value] = [held, sid]
            else:
                held.append(sid)

    def remove(self, forgotten: Sequence[tuple[int, Series]]) -> None:
        """Take out series `add` put in: each pair's ids filtered once, however many of them
        go (retention forgets a fleet's series by the million)."""
        gone: dict[tuple[str, str, str], set[int]] = {}
        for sid, series in forgotten:
            for key, value in series.tags:
                gone.setdefault((series.metric, key, value), set()).add(sid)
        for (metric, key, value), sids in gone.items():
            keys = self._by_metric[metric]
            values = keys[key]
            held = values[value]
            left = [i for i in held if i not in sids] if isinstance(held, list) else []
            if len(left) > 1:
                values[value] = left
            elif left:
                values[value] = left[0]
            else:
                del values[value]
                if not values:
                    del keys[key]
                    if not keys:
                        del self._by_metric[metric]

    def rarest(self, metric: str, tags: Sequence[tuple[str, str]]) -> list[int]:
        """The ids holding the pair of `tags` (at least one) that the fewest series of
        `metric` have: every series with all of `tags` is among them."""
        keys = self._by_metric.get(metric, {})
        smallest: list[int] | None = None
        for key, value in tags:
            held = keys.get(key, {}).get(value)
            if held is None:
                return []
            if isinstance(held, int):
                return [held]
            if smallest is None or len(held) < len(smallest):
                smallest = held
        assert smallest is not None, "no tags to look up"
        return list(smallest)

    def keys(self, metric: str) -> list[str]:
        """The tag keys the series of `metric` have, sorted."""
        return sorted(self._by_metric.get(metric, {}))

    def values(self, metric: str, key: str) -> list[str]:
        """The values tag `key` takes among the series of `metric`, sorted."""
        return sorted(self._by_metric.get(metric, {}).get(key, {}))
