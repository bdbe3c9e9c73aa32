"""`shipboard run`: wires the store, the collector, the aggregator and the API into one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from importlib import resources

import orjson
import yaml
from aiohttp import web

from aggregator.routes import add_query_routes
from aggregator.scheduler import RollupScheduler
from annotations.app import ControlPlane, setup_control
from collector.graphite_server import start_graphite
from collector.host_agent import HostSampler
from collector.http_ingest import add_ingest_routes
from collector.service_metrics import ServiceMetrics
from collector.stats import IngestStats
from collector.statsd_aggregate import StatsdAggregator
from collector.statsd_server import start_statsd
from collector.store_writer import BatchingSink, StoreWriter
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S

log = logging.getLogger("shipboard")

ROLLUP_INTERVAL_S = 10.0
RETENTION_INTERVAL_S = 600.0


async def _every(interval_s: float, action: Callable[[], Awaitable[None]], name: str) -> None:
    """Run `action` every `interval_s` until cancelled; a failure is logged, never fatal."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await action()
        except Exception:
            log.exception("%s failed; retrying in %.0f s", name, interval_s)


def build_http_app(
    settings: Settings,
    store: EmbeddedStore,
    control: ControlPlane,
    writer: StoreWriter,
    stats: IngestStats,
    metrics: ServiceMetrics,
) -> web.Application:
    """The HTTP side: ingest, the query API, the control plane, /metrics and /healthz."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    setup_control(
        app, control, anonymous_read=settings.anonymous_read, ingest_token=settings.ingest_token
    )
    add_ingest_routes(app, writer, stats, settings.max_body_bytes)
    add_query_routes(app, store, settings.tiers(), settings.max_points)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.render(),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    openapi = orjson.dumps(
        yaml.safe_load(resources.files("shipboard").joinpath("openapi.yaml").read_text())
    )

    async def openapi_document(request: web.Request) -> web.Response:
        return web.Response(body=openapi, content_type="application/json")

    app.router.add_get("/api/v1/openapi.json", openapi_document)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    return app


async def serve(settings: Settings, ready: Callable[[dict[str, str]], None] | None = None) -> None:
    """Run every part until SIGINT or SIGTERM, then stop them in order, flushing what is held."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tiers = settings.tiers()
    store = await asyncio.to_thread(
        EmbeddedStore, settings.data_dir / "metrics", tiers, max_series=settings.max_series
    )
    control = await asyncio.to_thread(ControlPlane.open, settings.control_db, settings.data_dir)
    admin_token = await asyncio.to_thread(control.ensure_admin_token)
    stats = IngestStats()
    metrics = ServiceMetrics(stats, store.series_count)
    scheduler = RollupScheduler(
        store, tiers, grace_ns=int(2 * settings.flush_interval_s * NS_PER_S)
    )
    writer = StoreWriter(store, stats, metrics, scheduler.note_write)
    sink = BatchingSink(writer, stats)
    statsd = StatsdAggregator(
        stats,
        flush_interval_s=settings.flush_interval_s,
        percentiles=settings.percentiles,
        idle_flushes=settings.idle_flushes,
    )
    tasks: list[asyncio.Task[None]] = []
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)

    async def flush_statsd() -> None:
        started = time.perf_counter()
        sink.add(statsd.flush(time.time_ns()), "statsd")
        metrics.flush_seconds.observe(time.perf_counter() - started)

    async def roll_up() -> None:
        started = time.perf_counter()
        await asyncio.to_thread(scheduler.run_once, time.time_ns())
        metrics.rollup_seconds.observe(time.perf_counter() - started)

    async def apply_retention() -> None:
        await asyncio.to_thread(store.apply_retention, time.time_ns())

    listeners: dict[str, str] = {}
    runner = web.AppRunner(build_http_app(settings, store, control, writer, stats, metrics))
    statsd_server = None
    graphite_server = None
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        listeners["http"] = f"http://{settings.http_host}:{settings.http_port}"
        if settings.statsd_port:
            statsd_server = await start_statsd(
                settings.ingest_host, settings.statsd_port, statsd, stats
            )
            listeners["statsd"] = f"udp+tcp {settings.ingest_host}:{statsd_server.udp_port}"
        if settings.graphite_port:
            graphite_server = await start_graphite(
                settings.ingest_host,
                settings.graphite_port,
                lambda samples: sink.add(samples, "graphite"),
                stats,
            )
            listeners["graphite"] = f"tcp {settings.ingest_host}:{settings.graphite_port}"
        tasks.append(asyncio.create_task(sink.run()))
        tasks.append(asyncio.create_task(_every(settings.flush_interval_s, flush_statsd, "flush")))
        tasks.append(asyncio.create_task(_every(ROLLUP_INTERVAL_S, roll_up, "rollup")))
        tasks.append(
            asyncio.create_task(_every(RETENTION_INTERVAL_S, apply_retention, "retention"))
        )
        if settings.agent:
            sampler = await asyncio.to_thread(HostSampler)

            async def sample_host() -> None:
                sink.add(await asyncio.to_thread(sampler.sample), "agent")

            tasks.append(
                asyncio.create_task(_every(settings.agent_interval_s, sample_host, "host agent"))
            )
            listeners["agent"] = (
                f"sampling host {sampler.host} every {settings.agent_interval_s:g} s"
            )
        if admin_token is not None:
            listeners["admin token"] = f"{admin_token}  (shown once: keep it, it manages tokens)"
        if ready is not None:
            ready(listeners)
        await stopping.wait()
    finally:
        if statsd_server is not None:
            await statsd_server.close()
        if graphite_server is not None:
            graphite_server.close()
            await graphite_server.wait_closed()
        sink.add(statsd.flush(time.time_ns()), "statsd")
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.cleanup()
        await asyncio.to_thread(store.close)
        await asyncio.to_thread(control.close)


def _print_banner(settings: Settings, listeners: dict[str, str]) -> None:
    lines = [f"Shipboard is running, data in {settings.data_dir.resolve()}"]
    lines += [f"  {name:<9} {where}" for name, where in listeners.items()]
    http = listeners["http"]
    lines.append(f"Query the API:  curl '{http}/api/v1/query?metric=cpu.user&from=-15m'")
    lines.append(f"Own health:     {http}/metrics")
    print("\n".join(lines), flush=True)


def run_server(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def ready(listeners: dict[str, str]) -> None:
        _print_banner(settings, listeners)

    try:
        if settings.uvloop:
            import uvloop

            uvloop.run(serve(settings, ready))
        else:
            asyncio.run(serve(settings, ready))
    except OSError as error:
        log.error("cannot start: %s", error)
        return 1
    return 0
