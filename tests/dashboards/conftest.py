"""Dashboards fixtures: a seeded data dir, the dashboards served in a process of their own, and
Debian's Chromium driven by Playwright."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from annotations.control.db import ControlDB
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from tests.dashboards.chromium import ChromiumMissingError, launch_chromium
from tests.dashboards.seed import Seeded, seed
from tests.dashboards.serving import DashServer, start_dashboards

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


# Our own fixtures, not pytest-playwright's: that plugin keeps one Playwright for the whole
# session, and a live sync Playwright marks its event loop as running on the main thread, so
# blockbuster (tests/conftest.py) would take every later async test's plain code for code on an
# event loop. Playwright and its browser live as long as this package's tests.
@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, for this package's tests."""
    with sync_playwright() as playwright:
        try:
            browser = launch_chromium(playwright)
        except ChromiumMissingError as missing:
            pytest.fail(str(missing))
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A page of its own browser context (no cookies or cache of another test's), 1600x1000."""
    context = chromium.new_context(viewport={"width": 1600, "height": 1000})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@dataclass
class World:
    """A data dir with known metrics and annotations; its store stays open for writing."""

    data_dir: Path
    store: EmbeddedStore
    control: ControlDB
    seeded: Seeded


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("dash-data")
    settings = Settings(data_dir=data_dir)
    with EmbeddedStore(data_dir / "metrics", settings.tiers()) as store:
        control = ControlDB.open("", data_dir)
        try:
            yield World(data_dir, store, control, seed(store, control, time.time_ns()))
        finally:
            control.close()


@pytest.fixture(scope="module")
def open_server(world: World) -> Iterator[DashServer]:
    """The dashboards with anonymous read on."""
    server = start_dashboards(world.data_dir, SHIPBOARD_ANONYMOUS_READ="true")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def closed_server(world: World) -> Iterator[DashServer]:
    """The dashboards with anonymous read off (the default)."""
    server = start_dashboards(world.data_dir)
    yield server
    server.stop()


@pytest.fixture
def page_errors(page: Page) -> list[str]:
    """Errors the page raised or logged; a test asserts there are none."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    return errors
