"""Dashboards fixtures: a seeded data dir, the dashboards served by `serve_dashboards` in a
process of their own, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserType, Playwright, sync_playwright

from annotations.control.db import ControlDB
from bench.launch import CHROMIUM, CHROMIUM_ARGS
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from tests.dashboards.seed import Seeded, seed
from tests.running import free_port

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


@dataclass
class DashServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_dashboards(data_dir: Path, **env: str) -> DashServer:
    """`run_dashboards(Settings())` in a new process, on a free port, ready to answer."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SHIPBOARD_")}
    environment |= {"SHIPBOARD_DATA_DIR": str(data_dir), "SHIPBOARD_DASH_PORT": str(port), **env}
    log = data_dir / f"dash-{port}.log"
    code = (
        "from shipboard.server import run_dashboards\n"
        "from shipboard.settings import Settings\n"
        "run_dashboards(Settings())\n"
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, env=environment
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the dashboards exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/signin", timeout=1):
                return DashServer(url, process, log)
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"the dashboards did not answer in 30 s:\n{log.read_text()}")


def stop_dashboards(server: DashServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)


@pytest.fixture(scope="module")
def open_server(world: World) -> Iterator[DashServer]:
    """The dashboards with anonymous read on."""
    server = start_dashboards(world.data_dir, SHIPBOARD_ANONYMOUS_READ="true")
    yield server
    stop_dashboards(server)


@pytest.fixture(scope="module")
def closed_server(world: World) -> Iterator[DashServer]:
    """The dashboards with anonymous read off (the default)."""
    server = start_dashboards(world.data_dir)
    yield server
    stop_dashboards(server)


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
