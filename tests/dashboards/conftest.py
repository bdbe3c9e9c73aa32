"""Dashboards fixtures: a seeded data dir, the dashboards served by `serve_dashboards` in a
process of their own, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserType, Playwright, sync_playwright

from annotations.control.db import ControlDB
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from tests.dashboards.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.dashboards.seed import Seeded, seed
from tests.dashboards.serving import DashServer, start_dashboards

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def base_url() -> None:
    """No base URL (replaces pytest-base-url's fixture, which warns on this pytest)."""
    return None


# pytest-playwright keeps one Playwright for the whole session, and a live sync Playwright marks
# its event loop as running on the main thread: blockbuster (tests/conftest.py) would then take
# every later async test's plain code for code on an event loop. So Playwright and its browser
# live as long as this package's tests.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    chosen: BrowserType = getattr(playwright, browser_name)
    return chosen


@pytest.fixture(scope="package")
def browser(
    browser_type: BrowserType, browser_type_launch_args: dict[str, Any]
) -> Iterator[Browser]:
    launched = browser_type.launch(**browser_type_launch_args)
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install chromium chromium-driver (scripts/test)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    # Not pytest-playwright's: that one asks for its session-long Playwright (for --device).
    return {"viewport": {"width": 1600, "height": 1000}}


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
    store = EmbeddedStore(data_dir / "metrics", settings.tiers())
    control = ControlDB.open("", data_dir)
    try:
        yield World(data_dir, store, control, seed(store, control, time.time_ns()))
    finally:
        control.close()
        store.close()


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
def page_errors(page: Any) -> list[str]:
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
