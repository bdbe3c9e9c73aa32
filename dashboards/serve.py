"""Serve the dashboards under waitress (a production WSGI server), in a process of their own."""

from __future__ import annotations

import logging

import waitress

from dashboards.app import create_app
from dashboards.auth import load_key, sign_in_link
from shipboard.settings import Settings
from storage.base import StoreReader

log = logging.getLogger("shipboard.dashboards")

THREADS = 8  # page loads and panel refreshes of several screens at once; figure work holds the GIL


def dashboards_url(settings: Settings) -> str:
    """Where the dashboards are: the public URL if set, else this host's dash port."""
    return settings.public_url or f"http://{settings.http_host}:{settings.dash_port}"


def open_link(settings: Settings) -> str:
    """The URL to print at start: it opens the dashboards directly, signing in as a viewer
    when anonymous read is off (the link is valid for a day)."""
    base = dashboards_url(settings)
    if settings.anonymous_read:
        return base + "/"
    return sign_in_link(base, load_key(settings.data_dir))


def serve_dashboards(settings: Settings, store: StoreReader) -> None:
    """Run the dashboards over `store` on `settings.dash_port` until the process is stopped
    (blocking)."""
    app = create_app(settings, store=store)
    log.info("dashboards on %s", dashboards_url(settings))
    waitress.serve(
        app.server,
        host=settings.http_host,
        port=settings.dash_port,
        threads=THREADS,
        ident="shipboard",
        clear_untrusted_proxy_headers=True,
    )
