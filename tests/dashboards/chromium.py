"""Debian's Chromium for the browser tests and the dashboards benchmark: headless, with no
network of its own (which this machine refuses anyway)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


class ChromiumMissingError(RuntimeError):
    """/usr/bin/chromium is not installed."""


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless, through `playwright` (not Playwright's own download)."""
    if not Path(CHROMIUM).exists():
        raise ChromiumMissingError(
            "Chromium is missing: apt-get install chromium chromium-driver (scripts/test)"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
