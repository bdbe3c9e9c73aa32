"""The URL holds the whole view: query -> view -> query is the identity."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from dashboards.spec import load_catalog
from dashboards.state import ViewState, zoom_range
from storage.records import NS_PER_S

SERVICES = load_catalog(None).dashboards["services"]
NOW_NS = 1_700_000_000 * NS_PER_S

names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=12)


@given(
    start=st.sampled_from(["-15m", "-1h", "-7d", "2024-05-01T12:00:00Z"]),
    end=st.sampled_from(["now", "2024-06-01T00:00:00Z"]),
    service=st.none() | names,
    environment=st.none() | names,
    kiosk=st.booleans(),
    playlist=st.lists(names, max_size=3),
)
def test_a_view_round_trips_through_its_url(
    start: str,
    end: str,
    service: str | None,
    environment: str | None,
    kiosk: bool,
    playlist: list[str],
) -> None:
    variables = {k: v for k, v in (("service", service), ("environment", environment)) if v}
    view = ViewState("services", start, end, variables, kiosk, tuple(playlist))
    url = urlsplit(view.href())
    assert url.path == "/d/services"
    again = ViewState.from_query(SERVICES, dict(parse_qsl(url.query)))
    assert again == view


def test_a_range_beyond_what_can_be_queried_falls_back() -> None:
    span, problem = ViewState("services", "-1d", "2200-01-01T00:00:00Z").time_range(NOW_NS)
    assert "between 1970 and 2116" in problem
    assert span.start == "-1h"


def test_unknown_and_bad_values_fall_back_to_defaults() -> None:
    view = ViewState.from_query(SERVICES, {"host": "x", "rotate": "soon", "refresh": "often"})
    assert view == ViewState("services")
    span, problem = ViewState("services", "-1h", "-2h").time_range(NOW_NS)
    assert "must be before" in problem
    assert (span.start_ns, span.end_ns) == (NOW_NS - 3600 * NS_PER_S, NOW_NS)


def test_a_playlist_moves_to_the_next_dashboard_and_wraps() -> None:
    view = ViewState("hosts", kiosk=True, playlist=("hosts", "services"), rotate_s=30)
    assert view.next_in_playlist() == "/d/services?kiosk=1&playlist=hosts%2Cservices&rotate=30s"
    last = ViewState("services", kiosk=True, playlist=("hosts", "services"))
    assert last.next_in_playlist() == "/d/hosts?kiosk=1&playlist=hosts%2Cservices"
    assert ViewState("hosts").next_in_playlist() is None


def test_a_drag_to_zoom_becomes_an_absolute_range() -> None:
    relayout = {"xaxis.range[0]": "2024-05-01 12:00:00.5", "xaxis.range[1]": "2024-05-01 12:30:00"}
    assert zoom_range(relayout) == ("2024-05-01T12:00:00Z", "2024-05-01T12:30:00Z")
    assert zoom_range({"xaxis.range[0]": 1714564800000, "xaxis.range[1]": 1714566600000}) == (
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:30:00Z",
    )
    assert zoom_range({"autosize": True}) is None
    assert zoom_range({"xaxis.range[0]": "junk", "xaxis.range[1]": "2024-05-01"}) is None


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=40), max_size=8))
def test_any_query_gives_a_view_and_a_range_never_an_error(query: dict[str, str]) -> None:
    view = ViewState.from_query(SERVICES, query)
    span, _problem = view.time_range(NOW_NS)
    assert 0 <= span.start_ns < span.end_ns < 2**62
    assert view.refresh_ms(SERVICES) >= 1000
    again = ViewState.from_query(SERVICES, dict(parse_qsl(urlsplit(view.href()).query)))
    assert again == view
