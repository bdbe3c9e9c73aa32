"""The dashboards link at the time of an event, for chat lines and Alertmanager payloads."""

from __future__ import annotations

from urllib.parse import urlencode

from storage.records import NS_PER_S

# A link shows the half hour around the event, so the graphs show what came before and after.
LINK_MARGIN_NS = 30 * 60 * NS_PER_S
LINK_PAGE = "/d/services"


def dashboard_link(public_url: str, start_ns: int, end_ns: int | None = None) -> str:
    """The dashboards at the time of an event ("" without a public URL)."""
    if not public_url:
        return ""
    start_s = (start_ns - LINK_MARGIN_NS) // NS_PER_S
    end_s = ((end_ns if end_ns is not None else start_ns) + LINK_MARGIN_NS) // NS_PER_S
    query = urlencode({"from": str(start_s), "to": str(end_s)})
    return f"{public_url.rstrip('/')}{LINK_PAGE}?{query}"
