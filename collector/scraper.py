"""Scraping (pull): every target of `scrape.yaml` on its own schedule, the file reloaded when it
changes.

Each target has a task of its own, so one that is down or slow (up to its `scrape_timeout`)
never delays the others; its first scrape is spread over the interval by a hash of its URL, as
Prometheus spreads them. A file that no longer parses is logged and the targets it had keep
being scraped until it is fixed.

As Prometheus, a series that a target's page no longer holds, every series of a target that
failed, and those of a target taken out of the file get a stale marker at that scrape
(`storage.stale_markers`): PromQL stops taking their last point at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Self

import aiohttp

from collector.scrape import ACCEPT, Scraped, ScrapeError, health, parse_page
from collector.scrape_config import ScrapeConfigError, Target, load_scrape_config
from collector.stats import IngestStats
from storage.records import Samples, Series
from storage.stale_markers import as_markers
from storage.tasks import background, cancelled

log = logging.getLogger(__name__)

PROTOCOL = "scrape"
RELOAD_S = 1.0
MAX_PAGE_BYTES = 64 << 20

Write = Callable[[Samples], None]


class Scraper:
    """Scrapes the targets of the file at `path` while in `async with`, handing each scrape's
    points to `write`; what it received and refused is counted in `stats`."""

    def __init__(
        self, path: Path, write: Write, stats: IngestStats, *, reload_s: float = RELOAD_S
    ) -> None:
        self._path = path
        self._write = write
        self._stats = stats
        self._reload_s = reload_s
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read
        self._tasks: dict[Target, asyncio.Task[None]] = {}
        self._down: set[Target] = set()  # targets whose failure was logged
        self._series: dict[Target, frozenset[Series]] = {}  # of each target's last scrape
        self._stack = contextlib.AsyncExitStack()

    @property
    def targets(self) -> list[Target]:
        return list(self._tasks)

    async def __aenter__(self) -> Self:
        timeout = aiohttp.ClientTimeout(total=None)
        self._session = await self._stack.enter_async_context(
            aiohttp.ClientSession(timeout=timeout, headers={"Accept": ACCEPT})
        )
        await self.reload()
        await self._stack.enter_async_context(background(self._watch()))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks.values():
            await cancelled(task)
        self._tasks.clear()
        await self._stack.aclose()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._reload_s)
            await self.reload()

    async def reload(self) -> None:
        """Read the file again if it changed, and start and stop targets to match it."""
        try:
            stat = self._path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            seen = None
        if seen == self._seen:
            return
        self._seen = seen
        try:
            targets = await asyncio.to_thread(load_scrape_config, self._path)
        except (ScrapeConfigError, OSError) as error:
            log.error("%s: %s; the targets it had are kept", self._path, error)
            return
        for gone in self._tasks.keys() - set(targets):
            await cancelled(self._tasks.pop(gone))
            if len(markers := self._gone(gone, frozenset(), time.time_ns())):
                self._write(markers)
        for target in targets:
            if target not in self._tasks:
                self._tasks[target] = asyncio.create_task(self._scrape_every(target))
        log.info("scraping %d targets from %s", len(self._tasks), self._path)

    async def _scrape_every(self, target: Target) -> None:
        spread = zlib.crc32(target.url.encode()) % 1000 / 1000 * target.interval_s
        await asyncio.sleep(spread)
        while True:
            started = time.monotonic()
            await self.scrape(target)
            await asyncio.sleep(max(0.0, target.interval_s - (time.monotonic() - started)))

    async def scrape(self, target: Target) -> None:
        """One scrape of `target`: its points and its `up`, written."""
        scrape_ns = time.time_ns()
        started = time.perf_counter()
        try:
            scraped = await self._fetch(target, scrape_ns)
        except ScrapeError as error:
            self._failed(target, error.reason, str(error))
            scraped = Scraped(Samples.empty(), 0)
        else:
            if target in self._down:
                log.info("%s is up again", target.url)
                self._down.discard(target)
        up = target not in self._down
        seconds = time.perf_counter() - started
        gone = self._gone(target, frozenset(scraped.samples.series), scrape_ns)
        batch = Samples.concat(
            [scraped.samples, gone, health(target, scrape_ns, up, seconds, scraped.count)]
        )
        self._stats.add_received(PROTOCOL, len(scraped.samples))
        self._write(batch)

    def _gone(self, target: Target, now: frozenset[Series], scrape_ns: int) -> Samples:
        """Stale markers at `scrape_ns` of the target's series its last scrape had and this one
        (`now`) has not."""
        gone = sorted(self._series.pop(target, frozenset()) - now, key=str)
        if now:
            self._series[target] = now
        return as_markers(Samples.from_points((series, scrape_ns, 0.0) for series in gone))

    async def _fetch(self, target: Target, scrape_ns: int) -> Scraped:
        headers = {} if target.bearer is None else {"Authorization": f"Bearer {target.bearer}"}
        timeout = aiohttp.ClientTimeout(total=target.timeout_s)
        try:
            async with self._session.get(target.url, headers=headers, timeout=timeout) as reply:
                if reply.status != 200:
                    raise ScrapeError("http_status", f"{target.url}: HTTP {reply.status}")
                body = await reply.content.read(MAX_PAGE_BYTES + 1)
                if len(body) > MAX_PAGE_BYTES:
                    raise ScrapeError("too_large", f"{target.url}: over {MAX_PAGE_BYTES} bytes")
                content_type = reply.headers.get("Content-Type", "text/plain")
        except TimeoutError:
            message = f"{target.url}: no answer in {target.timeout_s:g} s"
            raise ScrapeError("timeout", message) from None
        except aiohttp.ClientError as error:
            raise ScrapeError("connect", f"{target.url}: {error}") from None
        text = body.decode("utf-8", errors="replace")
        return await asyncio.to_thread(parse_page, text, content_type, target, scrape_ns)

    def _failed(self, target: Target, reason: str, message: str) -> None:
        self._stats.add_dropped(PROTOCOL, reason)
        if target not in self._down:
            log.warning("scrape failed: %s", message)
            self._down.add(target)
