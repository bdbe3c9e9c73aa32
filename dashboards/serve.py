"""Serve the dashboards under waitress (a production WSGI server), in a process of their own."""

from __future__ import annotations

import logging

import waitress

from dashboards.app import create_app
from dashboards.auth import load_key, sign_in_link
from dashboards.config import DashboardsConfig
from storage.base import StoreReader

log = logging.getLogger("shipboard.dashboards")

THREADS = 8  # page loads and panel refreshes of several screens at once; figure work holds the GIL


def open_link(config: DashboardsConfig) -> str:
    """The URL to print at start: it opens the dashboards directly, signing in as a viewer
    when anonymous read is off (the link is valid for a day)."""
    if config.anonymous_read:
        return config.url + "/"
    return sign_in_link(config.url, load_key(config.data_dir))


def serve_dashboards(config: DashboardsConfig, store: StoreReader) -> None:
    """Run the dashboards over `store` on `config.port` until the process is stopped
    (blocking)."""
    app = create_app(config, store=store)
    log.info("dashboards on %s", config.url)
    waitress.serve(
        app.server,
        host=config.host,
        port=config.port,
        threads=THREADS,
        ident="shipboard",
        clear_untrusted_proxy_headers=True,
    )
