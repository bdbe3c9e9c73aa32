"""Background tasks that live as long as an `async with` block (the shape of aiohttp's
`cleanup_ctx`): started on entry, cancelled and awaited on exit.

    async with background(poll_forever()):
        ...  # polling until the block ends
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine


async def cancelled(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has stopped; a failure of its own is raised here."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def background(coroutine: Coroutine[None, None, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run `coroutine` as a task for the life of the block."""
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        await cancelled(task)
