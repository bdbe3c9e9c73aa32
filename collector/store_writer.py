"""The path from listeners to the store: durable writes off the event loop, and a batching sink.

HTTP writes wait for `StoreWriter.write` (acknowledged once durable). StatsD flushes, Graphite
chunks and host samples carry no acknowledgement, so they go through `BatchingSink`, which gathers
them and writes every `interval_s`: fewer, larger writes, one fsync each.

Writes run on threads of their own (`WRITE_THREADS`), not on the default executor that the
query API reads through: writers waiting for the store's lock or for an fsync never take the
threads queries need, however many clients write at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Self

from collector.service_metrics import ServiceMetrics
from collector.stats import IngestStats
from storage.base import Store, WriteResult
from storage.records import Samples, Sketches
from storage.tasks import cancelled

log = logging.getLogger(__name__)

WRITE_THREADS = 4  # concurrent writes share one fsync (group commit); more wait their turn


class StoreWriter:
    """Writes batches to the store on its own threads, timing them and counting refused series.

    Used as `async with StoreWriter(...) as writer:`; the threads start with the first write,
    and leaving the block waits for the writes under way and stops them."""

    def __init__(
        self,
        store: Store,
        stats: IngestStats,
        metrics: ServiceMetrics,
    ) -> None:
        self._store = store
        self._stats = stats
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="store-write")

    async def write(
        self, samples: Samples, protocol: str, sketches: Sketches | None = None
    ) -> WriteResult:
        """Store `samples` (and `sketches`) durably; count what the series limit refused under
        `protocol`."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        write = functools.partial(self._store.write, samples, sketches)
        result = await loop.run_in_executor(self._executor, write)
        self._metrics.store_write_seconds.observe(time.perf_counter() - started)
        if result.refused_points:
            self._stats.add_dropped(protocol, "series_limit", result.refused_points)
        if result.too_old:
            self._stats.add_dropped(protocol, "too_old", result.too_old)
        return result

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._executor.shutdown)


class BatchingSink:
    """Gathers batches that need no acknowledgement and writes them every `interval_s`.

    Failed writes are retried with the next round (kept, never silently lost) up to `max_pending`
    points, past which the oldest batches are dropped and counted: a store that is down must not
    make the collector run out of memory.

    It writes while in `async with`; leaving the block writes what is still pending."""

    def __init__(
        self,
        writer: StoreWriter,
        stats: IngestStats,
        *,
        interval_s: float = 0.5,
        max_pending: int = 5_000_000,
    ) -> None:
        self._writer = writer
        self._stats = stats
        self._interval_s = interval_s
        self._max_pending = max_pending
        self._pending: list[tuple[str, Samples, Sketches]] = []
        self._pending_points = 0  # points and sketch rows

    def add(self, samples: Samples, protocol: str, sketches: Sketches | None = None) -> None:
        sketches = Sketches.empty() if sketches is None else sketches
        if not len(samples) and not len(sketches):
            return
        self._pending.append((protocol, samples, sketches))
        self._pending_points += len(samples) + len(sketches)
        while self._pending_points > self._max_pending and len(self._pending) > 1:
            old_protocol, old, old_sketches = self._pending.pop(0)
            self._pending_points -= len(old) + len(old_sketches)
            self._stats.add_dropped(old_protocol, "store_backlog", len(old))

    async def __aenter__(self) -> Self:
        self._writing = asyncio.create_task(self._write_every_interval())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await cancelled(self._writing)
        await self.write_pending()

    async def _write_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.write_pending()

    async def write_pending(self) -> None:
        if not self._pending:
            return
        batches, self._pending, self._pending_points = self._pending, [], 0
        by_protocol: dict[str, list[tuple[Samples, Sketches]]] = {}
        for protocol, samples, sketches in batches:
            by_protocol.setdefault(protocol, []).append((samples, sketches))
        for protocol, group in by_protocol.items():
            merged = Samples.concat([samples for samples, _ in group])
            merged_sketches = Sketches.concat([sketches for _, sketches in group])
            try:
                await self._writer.write(merged, protocol, merged_sketches)
            except Exception:
                log.exception("store write of %d %s points failed; retrying", len(merged), protocol)
                self.add(merged, protocol, merged_sketches)
