"""`shipboard relay`: the StatsD relay in front of several collectors, with its own /metrics."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from aiohttp import web
from prometheus_client import generate_latest

from collector.relay import Relay, parse_address
from shipboard.http_site import http_site
from shipboard.settings import Settings

log = logging.getLogger("shipboard.relay")


def _address(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_setting_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add `relay` to the `shipboard` command."""
    relay = commands.add_parser(
        "relay", help="Route StatsD to several collectors by metric name (consistent hashing)."
    )
    relay.add_argument(
        "--listen", type=_address, default="127.0.0.1:8125", help="UDP and TCP address to serve."
    )
    relay.add_argument(
        "--node",
        dest="nodes",
        type=_address,
        action="append",
        required=True,
        help="A collector's StatsD host:port; repeat for each.",
    )
    relay.add_argument(
        "--http", type=_address, default=None, help="host:port for /healthz and /metrics."
    )
    relay.add_argument(
        "--check-interval", type=float, default=2.0, help="Seconds between health checks."
    )
    add_setting_flags(relay)
    relay.set_defaults(func=run_relay)


def _http_app(relay: Relay) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        live = [node for node, up in relay.router.up.items() if up]
        return web.json_response({"status": "ok" if live else "no live node", "live": live})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(relay.registry), content_type="text/plain", charset="utf-8"
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve_relay(args: argparse.Namespace) -> None:
    """Relay until SIGINT or SIGTERM."""
    host, port = parse_address(args.listen)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    relay = Relay(args.nodes, host, port, check_interval_s=args.check_interval)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(relay)
        lines = [
            f"Shipboard relay on udp {host}:{relay.udp_port} tcp {host}:{relay.tcp_port}",
            *(f"  node {node} {'up' if up else 'DOWN'}" for node, up in relay.router.up.items()),
        ]
        if args.http:
            http_host, http_port = parse_address(args.http)
            url = await stack.enter_async_context(http_site(_http_app(relay), http_host, http_port))
            lines.append(f"  http {url}/metrics")
        print("\n".join(lines), flush=True)
        await stopping.wait()
    print(
        f"relayed {sum(relay.stats.relayed.values())} lines, "
        f"dropped {sum(relay.stats.dropped.values())}",
        flush=True,
    )


def run_relay(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve_relay(args))
    except OSError as error:
        log.error("cannot start: %s", error)
        return 1
    return 0
