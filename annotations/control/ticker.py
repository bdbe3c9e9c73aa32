"""A duty done every few seconds for the life of an `async with` block (judging deploys,
stepping rollouts): a failed round is logged and the next one tried, and while the control DB
is away the duty waits for it, saying so once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, Self

from annotations.control.errors import UnavailableError
from storage.tasks import background

log = logging.getLogger(__name__)

STOP_S = 10.0
"""How long leaving the block waits for the round under way."""


class Lease(Protocol):
    """The right to do a duty, held by one node of those sharing the control DB (so an alert
    pages once, a step is announced once, whatever the number of API nodes); both calls may
    block."""

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


class Ticker:
    """`tick()` every `tick_s` while in `async with`, only while this node holds `lease` if one
    is given; `name` says whose in the log."""

    def __init__(
        self,
        name: str,
        tick: Callable[[], Awaitable[None]],
        tick_s: float,
        lease: Lease | None = None,
    ) -> None:
        self._name = name
        self._tick = tick
        self._tick_s = tick_s
        self._lease = lease
        self._stopping = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._loop: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._stopping.clear()
        self._loop = await self._stack.enter_async_context(background(self._run()))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping.set()
        if self._loop is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._loop), STOP_S)
        await self._stack.aclose()
        self._loop = None

    async def _run(self) -> None:
        away = False
        while not self._stopping.is_set():
            try:
                if self._lease is None or await asyncio.to_thread(self._lease.try_acquire):
                    await self._tick()
                if away:
                    log.info("%s: control DB reachable again", self._name)
                away = False
            except UnavailableError as error:
                if not away:
                    log.warning("%s: control DB away (%s); waiting for it", self._name, error)
                away = True
            except Exception:
                log.exception("%s failed; retrying in %g s", self._name, self._tick_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._tick_s)
