"""The announcement queue's reader: what the writers of annotations queued is delivered.

The writer of a deploy, flag change or note appends its announcement to the notifier's
`outbox` (`annotations.control.outbox`) in the transaction that records it, once per target, so
it survives a restart and never slows or fails the API call; the notifier only reads the queue
(and deletes what is delivered or dropped).

One worker per target delivers its rows oldest first; a failed try is retried with a doubling
backoff, and after `max_tries` the row is dropped and counted. A row is claimed by moving its
`next_ns` past the try's timeout first, so that nodes sharing a PostgreSQL DB never deliver
the same row twice.

While the control DB is away (UnavailableError) the workers wait and look again every
DB_RETRY_S; a try already delivered keeps retrying its settle until the DB takes it, so it is
not delivered again (unless the DB stays away longer than the claim's lease and another node
claims the row first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Protocol, Self

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from annotations.chat.messages import render_announcement
from annotations.control.db import ControlDB, Row
from annotations.control.errors import UnavailableError
from annotations.control.outbox import Announcement, Outbox
from storage.backoff import Backoff
from storage.records import NS_PER_S
from storage.tasks import cancelled

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
# Rows are looked for at least this often, for rows queued by another node.
POLL_S = 5.0
MAX_ERROR_TEXT = 500
DB_RETRY_S = 1.0
"""How often a worker looks again while the control DB is away."""
ALERTS_ONLY = ("alertmanager",)
"""Kinds of target that receive alerts only: the outbox never queues annotations for them."""


class Target(Protocol):
    """Somewhere announcements go. `name` keys its queue and never holds a secret. Whoever
    made a target keeps it open (its own `async with`) while the notifier delivers to it."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    async def deliver(self, announcement: Announcement) -> None:
        """Deliver once, or raise (DeliveryError or any other error: the try failed)."""


def head(db: ControlDB, target: str) -> Row | None:
    """The oldest queued row of `target`: rows go out in order, one at a time."""
    return db.query_one(
        "SELECT id, payload, next_ns, tries FROM announcements WHERE target = ?"
        " ORDER BY id LIMIT 1",
        (target,),
    )


def claim(db: ControlDB, row_id: int, seen_next_ns: int, lease_ns: int) -> bool:
    """Take the row for one try, unless another worker took it since it was read."""
    return bool(
        db.execute(
            "UPDATE announcements SET next_ns = ? WHERE id = ? AND next_ns = ?",
            (lease_ns, row_id, seen_next_ns),
        )
    )


def settle(db: ControlDB, row_id: int, *, retry_ns: int | None, tries: int, error: str) -> None:
    """Delete a delivered or dropped row (`retry_ns` None), or schedule its next try."""
    if retry_ns is None:
        db.execute("DELETE FROM announcements WHERE id = ?", (row_id,))
    else:
        db.execute(
            "UPDATE announcements SET next_ns = ?, tries = ?, last_error = ? WHERE id = ?",
            (retry_ns, tries, error[:MAX_ERROR_TEXT], row_id),
        )


def drop_unconfigured(db: ControlDB, targets: Sequence[str]) -> int:
    """Delete rows queued for targets no longer configured; how many."""
    if not targets:
        return db.execute("DELETE FROM announcements")
    marks = ", ".join("?" for _ in targets)
    return db.execute(f"DELETE FROM announcements WHERE target NOT IN ({marks})", tuple(targets))


class Notifier:
    """Delivers the announcements queued through its `outbox` (by this node or, sharing the
    control DB, another) to every target, while in `async with`: one worker per target. The
    outbox queues annotations for every target but the ALERTS_ONLY kinds, whose rows
    `annotations.alerts.dispatch` queues."""

    def __init__(
        self,
        db: ControlDB,
        targets: Sequence[Target],
        *,
        public_url: str = "",
        max_tries: int = 8,
        retry_s: float = 2.0,
        timeout_s: float = 10.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.db = db
        self.targets = tuple(targets)
        self.max_tries = max_tries
        self.retry_s = retry_s
        # A row's tries are counted in the DB, so only the waits are taken from here.
        self._backoff = Backoff(min(retry_s, MAX_BACKOFF_S), MAX_BACKOFF_S)
        self.timeout_s = timeout_s
        self.clock = clock
        self.delivered: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()
        self.dropped: Counter[tuple[str, str]] = Counter()
        self._wakes = {target.name: asyncio.Event() for target in self.targets}
        self.chat_open = asyncio.Event()
        """Set while this node keeps the chat connections: only then are chat rows claimed."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self.outbox = Outbox(
            [target.name for target in self.targets if target.kind not in ALERTS_ONLY],
            partial(render_announcement, public_url=public_url),
            clock=clock,
            on_append=self._wake_all,
        )
        """What the writers of annotations append to (in their transaction) to announce them."""

    def _wake_all(self) -> None:
        """Rows were queued (called from the writer's thread): look at once, not at the poll."""
        if self._loop is not None:
            for wake in self._wakes.values():
                self._loop.call_soon_threadsafe(wake.set)

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._delivering = asyncio.create_task(self._deliver())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await cancelled(self._delivering)

    async def _deliver(self) -> None:
        names = [target.name for target in self.targets]
        try:
            gone = await self.db.run(drop_unconfigured, self.db, names)
        except UnavailableError as error:
            gone = 0
            log.warning("announcements of targets no longer configured stay queued: %s", error)
        if gone:
            log.warning("dropped %d announcements queued for targets no longer configured", gone)
            self.dropped["unconfigured", "unconfigured"] += gone
        async with asyncio.TaskGroup() as group:
            for target in self.targets:
                group.create_task(self._work(target))

    async def _work(self, target: Target) -> None:
        away: UnavailableError | None = None
        while True:
            try:
                await self._next(target)
            except UnavailableError as error:
                if away is None:
                    log.warning(
                        "announcements to %s wait for the control DB: %s", target.name, error
                    )
                away = error
                await asyncio.sleep(DB_RETRY_S)
                continue
            if away is not None:
                log.info("announcements to %s resume", target.name)
                away = None

    async def _next(self, target: Target) -> None:
        """Wait for the head row of `target` to be due, then claim it and try it once."""
        wake = self._wakes[target.name]
        if target.kind == "irc":
            await self.chat_open.wait()  # another node's bot may be the one connected
        wake.clear()
        row = await self.db.run(head, self.db, target.name)
        now_ns = self.clock()
        if row is None or int(row["next_ns"]) > now_ns:
            due_s = POLL_S if row is None else (int(row["next_ns"]) - now_ns) / NS_PER_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(POLL_S, due_s))
            return
        lease_ns = now_ns + int((self.timeout_s + POLL_S) * NS_PER_S)
        row_id, seen_ns = int(row["id"]), int(row["next_ns"])
        if await self.db.run(claim, self.db, row_id, seen_ns, lease_ns):
            await self._try(target, row_id, int(row["tries"]) + 1, row["payload"])

    async def _try(self, target: Target, row_id: int, tries: int, payload: str) -> None:
        try:
            announcement = Announcement.from_json(orjson.loads(payload))
            await asyncio.wait_for(target.deliver(announcement), self.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            if tries >= self.max_tries:
                log.warning(
                    "announcement to %s dropped after %d tries: %s", target.name, tries, reason
                )
                await self._settle(row_id, retry_ns=None, tries=tries, error="")
                self.dropped[target.kind, "tries"] += 1
                return
            self.retried[target.kind] += 1
            retry_ns = self.clock() + int(self._backoff.wait_s(tries) * NS_PER_S)
            log.info("announcement to %s failed (try %d): %s", target.name, tries, reason)
            await self._settle(row_id, retry_ns=retry_ns, tries=tries, error=reason)
            return
        await self._settle(row_id, retry_ns=None, tries=tries, error="")
        self.delivered[target.kind] += 1

    async def _settle(self, row_id: int, *, retry_ns: int | None, tries: int, error: str) -> None:
        """Record a try's outcome, waiting for the control DB if it is away: a delivered row
        that stayed queued would be delivered again once its claim runs out."""
        while True:
            try:
                await self.db.run(
                    settle, self.db, row_id, retry_ns=retry_ns, tries=tries, error=error
                )
                return
            except UnavailableError:
                await asyncio.sleep(DB_RETRY_S)

    def collector(self) -> Collector:
        """A Prometheus collector of the counts, for the service's /metrics registry."""
        return _NotifierCollector(self)


class _NotifierCollector(Collector):
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        notifier = self._notifier
        delivered = CounterMetricFamily(
            "shipboard_announcements_delivered", "Announcements delivered.", labels=["target"]
        )
        retried = CounterMetricFamily(
            "shipboard_announcements_retried",
            "Tries to deliver an announcement that failed and were retried.",
            labels=["target"],
        )
        dropped = CounterMetricFamily(
            "shipboard_announcements_dropped",
            "Announcements given up on, by target kind and reason.",
            labels=["target", "reason"],
        )
        for kind in sorted({target.kind for target in notifier.targets}):
            delivered.add_metric([kind], notifier.delivered[kind])
            retried.add_metric([kind], notifier.retried[kind])
            dropped.add_metric([kind, "tries"], notifier.dropped[kind, "tries"])
        for (kind, reason), count in sorted(notifier.dropped.items()):
            if reason != "tries":
                dropped.add_metric([kind, reason], count)
        chat = GaugeMetricFamily(
            "shipboard_chat_connected",
            "1 while this node keeps the chat connections (one node of those sharing a DB).",
        )
        chat.add_metric([], 1.0 if notifier.chat_open.is_set() else 0.0)
        yield delivered
        yield retried
        yield dropped
        yield chat
