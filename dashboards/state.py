"""What a dashboard shows, as it appears in the URL: range, variables, kiosk and playlist.

The URL is the one source of truth: every control navigates to a new URL, and a page is drawn
from its URL alone, so a copied link shows someone else exactly the same thing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from dashboards.data import ALL, TimeRange
from dashboards.spec import Dashboard
from storage.records import NS_PER_MS, NS_PER_S
from storage.timeparse import parse_duration_ns, parse_time

PRESETS = (
    ("-15m", "Last 15 minutes"),
    ("-1h", "Last hour"),
    ("-6h", "Last 6 hours"),
    ("-24h", "Last 24 hours"),
    ("-7d", "Last 7 days"),
    ("-30d", "Last 30 days"),
)
DEFAULT_FROM = "-1h"
DEFAULT_ROTATE_S = 60
LATEST_NS = 2**62  # what the query engine accepts


@dataclass(frozen=True, slots=True)
class ViewState:
    """One dashboard view; `href()` and `from_query()` are each other's inverse."""

    slug: str
    start: str = DEFAULT_FROM
    end: str = "now"
    variables: dict[str, str] = field(default_factory=dict)
    kiosk: bool = False
    playlist: tuple[str, ...] = ()
    rotate_s: int = DEFAULT_ROTATE_S
    refresh: str = ""

    @classmethod
    def from_query(cls, dashboard: Dashboard, query: Mapping[str, str]) -> ViewState:
        """The view a URL's query asks for; unknown keys are ignored, bad values fall back."""
        names = {v.name for v in dashboard.variables}
        variables = {k: v for k, v in query.items() if k in names and v and v != ALL}
        playlist = tuple(p for p in query.get("playlist", "").split(",") if p)
        rotate_s = DEFAULT_ROTATE_S
        with contextlib.suppress(ValueError):
            rotate_s = max(5, parse_duration_ns(query.get("rotate", "60s")) // NS_PER_S)
        refresh = query.get("refresh", "")
        try:
            parse_duration_ns(refresh or "10s")
        except ValueError:
            refresh = ""
        return cls(
            slug=dashboard.slug,
            start=query.get("from", DEFAULT_FROM) or DEFAULT_FROM,
            end=query.get("to", "now") or "now",
            variables=variables,
            kiosk=query.get("kiosk", "") in ("1", "true", "yes"),
            playlist=playlist,
            rotate_s=rotate_s,
            refresh=refresh,
        )

    def query(self) -> dict[str, str]:
        """The URL query of this view, defaults left out."""
        params: dict[str, str] = {}
        if self.start != DEFAULT_FROM:
            params["from"] = self.start
        if self.end != "now":
            params["to"] = self.end
        params.update(sorted(self.variables.items()))
        if self.kiosk:
            params["kiosk"] = "1"
        if self.playlist:
            params["playlist"] = ",".join(self.playlist)
            if self.rotate_s != DEFAULT_ROTATE_S:
                params["rotate"] = f"{self.rotate_s}s"
        if self.refresh:
            params["refresh"] = self.refresh
        return params

    def href(self, slug: str | None = None) -> str:
        query = urlencode(self.query())
        return f"/d/{slug or self.slug}" + (f"?{query}" if query else "")

    def time_range(self, now_ns: int) -> tuple[TimeRange, str]:
        """The range resolved at `now_ns`, and what was wrong with it ("" if nothing): a bad
        range shows the default range with a message rather than an error page."""
        try:
            start_ns, end_ns = parse_time(self.start, now_ns), parse_time(self.end, now_ns)
            if start_ns >= end_ns:
                raise ValueError(f"from ({self.start}) must be before to ({self.end})")
            if start_ns < 0 or end_ns >= LATEST_NS:
                raise ValueError("the range must lie between 1970 and 2116")
        except ValueError as error:
            start_ns = parse_time(DEFAULT_FROM, now_ns)
            return TimeRange(DEFAULT_FROM, "now", start_ns, now_ns), str(error)
        return TimeRange(self.start, self.end, start_ns, end_ns), ""

    def refresh_ms(self, dashboard: Dashboard) -> int:
        """Auto-refresh period: `?refresh=` if set, else the dashboard's (kiosk default 10 s)."""
        if self.refresh:
            return max(1000, parse_duration_ns(self.refresh) // NS_PER_MS)
        return dashboard.refresh_ms

    def next_in_playlist(self) -> str | None:
        """Where a wall screen goes after `rotate_s`: the next dashboard, same settings."""
        if len(self.playlist) < 2:
            return None
        position = self.playlist.index(self.slug) if self.slug in self.playlist else -1
        return self.href(self.playlist[(position + 1) % len(self.playlist)])


def iso_ms(ms: float) -> str:
    """Epoch milliseconds as ISO 8601 UTC to the second (drag-to-zoom ranges in the URL)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def zoom_range(relayout: Mapping[str, object]) -> tuple[str, str] | None:
    """The x range a drag-to-zoom selected, from plotly's relayoutData, as ISO times."""
    low, high = relayout.get("xaxis.range[0]"), relayout.get("xaxis.range[1]")
    if low is None or high is None:
        return None
    bounds = []
    for value in (low, high):
        if isinstance(value, int | float):
            bounds.append(iso_ms(value))
        elif isinstance(value, str):
            # plotly reports date axes as "2024-05-01 12:00:00.123" in UTC
            try:
                moment = datetime.fromisoformat(value.replace(" ", "T")).replace(tzinfo=UTC)
            except ValueError:
                return None
            bounds.append(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
        else:
            return None
    if bounds[0] >= bounds[1]:
        return None
    return bounds[0], bounds[1]
