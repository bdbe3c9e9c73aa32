"""An aiohttp app served on a TCP address for the life of an `async with` block."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def http_site(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """Serve `app` on host:port until the block ends (then its cleanup_ctx runs); yields the
    site's URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield site.name
    finally:
        await runner.cleanup()
