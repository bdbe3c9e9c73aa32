"""`shipboard run`: starts the parts of a role (collector, API, aggregator, dashboards)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

import orjson
import yaml
from aiohttp import web

from aggregator.promql.routes import add_prometheus_routes
from aggregator.routes import add_query_routes
from aggregator.scheduler import RollupScheduler
from aggregator.summary import graph_summary
from annotations.alerts.engine import AlertEngine
from annotations.alerts.instances import load_instances
from annotations.alerts.routes import RulesView, no_rules
from annotations.app import ControlCollector, ControlPlane, add_auth, setup_control
from annotations.chat.announce import Announcer
from annotations.chat.errors import TargetError
from annotations.control.outbox import Outbox
from collector.graphite_server import graphite_listener
from collector.host_agent import HostSampler
from collector.http_ingest import add_ingest_routes
from collector.scraper import PROTOCOL, Scraper
from collector.service_metrics import ServiceMetrics
from collector.stats import IngestStats
from collector.statsd_aggregate import StatsdAggregator
from collector.statsd_server import statsd_listener
from collector.store_writer import BatchingSink, StoreWriter
from shipboard.http_site import http_site
from shipboard.judges import judging
from shipboard.node_lock import NodeLock
from shipboard.settings import Settings
from shipboard.stores import open_reader, rolls_up_itself, running_store, watch_store
from storage.base import Store
from storage.records import NS_PER_S
from storage.tasks import background

if TYPE_CHECKING:
    from dashboards.config import DashboardsConfig

log = logging.getLogger("shipboard")

ROLLUP_INTERVAL_S = 10.0
ROLLUP_BUDGET_S = 1.0  # a backfill is caught up in passes of at most this much work
RETENTION_INTERVAL_S = 600.0
GC_FULL_EVERY = 1000  # younger collections per full one (Python's default is 10)


async def _every(
    interval_s: float, action: Callable[[], Awaitable[None]], name: str, *, at_once: bool = False
) -> None:
    """Run `action` every `interval_s` (first right away if `at_once`) until cancelled; a
    failure is logged, never fatal."""
    if not at_once:
        await asyncio.sleep(interval_s)
    while True:
        try:
            await action()
        except Exception:
            log.exception("%s failed; retrying in %.0f s", name, interval_s)
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def _flushing(interval_s: float, flush: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """`flush` every `interval_s` for the life of the block, and once more at its end."""
    try:
        async with background(_every(interval_s, flush, "flush")):
            yield
    finally:
        await flush()


PARTS = ("collector", "api", "aggregator", "dashboards")


def parts_of(role: str) -> frozenset[str]:
    """The parts a role runs: `all` runs every one."""
    return frozenset(PARTS) if role == "all" else frozenset({role})


def build_http_app(
    settings: Settings,
    store: Store,
    control: ControlPlane,
    writer: StoreWriter | None,
    stats: IngestStats,
    metrics: ServiceMetrics,
    parts: frozenset[str] = frozenset(PARTS),
    outbox: Outbox | None = None,
    rules_view: RulesView = no_rules,
) -> web.Application:
    """The HTTP side of `parts`: ingest (collector), the query API and the control plane (api),
    whose deploys, flag changes and notes are announced through `outbox` and whose
    /api/v1/rules lists `rules_view`'s rules; every role serves /metrics and /healthz, for
    health checks."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    if "api" in parts:
        setup_control(
            app,
            control,
            anonymous_read=settings.anonymous_read,
            ingest_token=settings.ingest_token,
            outbox=outbox,
            rules_view=rules_view,
        )
        metrics.registry.register(ControlCollector(app))
        add_query_routes(app, store, settings.tiers(), settings.max_points)
        add_prometheus_routes(app, store)
        openapi = orjson.dumps(
            yaml.safe_load(resources.files("shipboard").joinpath("openapi.yaml").read_text())
        )

        async def openapi_document(request: web.Request) -> web.Response:
            return web.Response(body=openapi, content_type="application/json")

        app.router.add_get("/api/v1/openapi.json", openapi_document)
    else:  # the ingest token is still checked, by the same middleware
        add_auth(
            app, control, anonymous_read=settings.anonymous_read, ingest_token=settings.ingest_token
        )
    if writer is not None:
        add_ingest_routes(app, writer, stats, settings.max_body_bytes)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": settings.role})

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.render(),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    return app


@dataclass
class _Node:
    """What the parts of one `shipboard run` share, and the stack that stops them in reverse."""

    settings: Settings
    store: Store
    stats: IngestStats
    metrics: ServiceMetrics
    stack: contextlib.AsyncExitStack
    listeners: dict[str, str] = field(default_factory=dict)

    async def every(
        self,
        interval_s: float,
        action: Callable[[], Awaitable[None]],
        name: str,
        *,
        at_once: bool = False,
    ) -> None:
        """Run `action` every `interval_s` until the node stops (in reverse start order)."""
        await self.stack.enter_async_context(
            background(_every(interval_s, action, name, at_once=at_once))
        )


async def _start_collector(node: _Node, writer: StoreWriter) -> None:
    """StatsD and Graphite listeners, the batching sink, StatsD flushes, the host agent."""
    settings, stats, metrics = node.settings, node.stats, node.metrics
    sink = BatchingSink(writer, stats)
    statsd = StatsdAggregator(
        stats,
        flush_interval_s=settings.flush_interval_s,
        percentiles=settings.percentiles,
        idle_flushes=settings.idle_flushes,
    )
    # The sink stops last: the final StatsD flush lands in it.
    await node.stack.enter_async_context(sink)

    async def flush_statsd() -> None:
        started = time.perf_counter()
        flushed = statsd.flush(time.time_ns())
        sink.add(flushed.samples, "statsd", flushed.sketches)
        metrics.flush_seconds.observe(time.perf_counter() - started)

    await node.stack.enter_async_context(_flushing(settings.flush_interval_s, flush_statsd))
    if settings.statsd_port:
        statsd_server = await node.stack.enter_async_context(
            statsd_listener(settings.ingest_host, settings.statsd_port, statsd, stats)
        )
        node.listeners["statsd"] = f"udp+tcp {settings.ingest_host}:{statsd_server.udp_port}"
    if settings.graphite_port:
        await node.stack.enter_async_context(
            graphite_listener(
                settings.ingest_host,
                settings.graphite_port,
                lambda samples: sink.add(samples, "graphite"),
                stats,
            )
        )
        node.listeners["graphite"] = f"tcp {settings.ingest_host}:{settings.graphite_port}"
    scraper = Scraper(settings.scrape_path(), lambda samples: sink.add(samples, PROTOCOL), stats)
    await node.stack.enter_async_context(scraper)
    node.listeners["scrape"] = f"{len(scraper.targets)} targets of {settings.scrape_path()}"
    if settings.agent:
        sampler = await asyncio.to_thread(HostSampler)

        async def sample_host() -> None:
            sink.add(await asyncio.to_thread(sampler.sample), "agent")

        await node.every(settings.agent_interval_s, sample_host, "host agent")
        node.listeners["agent"] = (
            f"sampling host {sampler.host} every {settings.agent_interval_s:g} s"
        )


async def _start_aggregator(node: _Node, scheduler: RollupScheduler) -> None:
    """Rollups and retention, run only while this node holds the aggregator lock."""
    settings, store = node.settings, node.store
    lock = NodeLock("aggregator", settings.control_db, settings.data_dir)
    node.stack.push_async_callback(asyncio.to_thread, lock.release)

    async def roll_up() -> None:
        if await asyncio.to_thread(lock.try_acquire):
            started = time.perf_counter()
            now_ns = time.time_ns()
            await asyncio.to_thread(scheduler.catch_up, now_ns, ROLLUP_BUDGET_S)
            node.metrics.rollup_seconds.observe(time.perf_counter() - started)
            for tier, lag_ns in scheduler.lag_ns(now_ns).items():
                node.metrics.gauges[f"rollup_lag_{tier}_seconds"] = lag_ns / NS_PER_S
                dirty = await asyncio.to_thread(store.dirty, tier)
                node.metrics.gauges[f"rollup_dirty_{tier}_buckets"] = len(dirty.for_readers())

    async def apply_retention() -> None:
        if await asyncio.to_thread(lock.try_acquire):
            await asyncio.to_thread(store.apply_retention, time.time_ns())

    await node.every(ROLLUP_INTERVAL_S, roll_up, "rollup")
    # At once too: points older than the raw retention are refused from the start.
    await node.every(RETENTION_INTERVAL_S, apply_retention, "retention", at_once=True)
    node.listeners["aggregator"] = "rollups and retention, while holding the aggregator lock"


def dashboards_config(settings: Settings) -> DashboardsConfig:
    """The plain values the dashboards take from the settings."""
    from dashboards.config import DashboardsConfig  # Dash and Flask load in that process only

    return DashboardsConfig(
        data_dir=settings.data_dir,
        control_db=settings.control_db,
        tiers=settings.tiers(),
        max_points=settings.max_points,
        host=settings.http_host,
        port=settings.dash_port,
        anonymous_read=settings.anonymous_read,
        public_url=settings.public_url,
    )


def run_dashboards(settings: Settings) -> None:
    """The dashboards process: the configured store, read-only, under the Dash app (blocking)."""
    from dashboards.serve import serve_dashboards

    serve_dashboards(dashboards_config(settings), open_reader(settings))


@contextlib.asynccontextmanager
async def _dashboards_process(settings: Settings) -> AsyncIterator[str]:
    """The dashboards in a process of their own (Dash is synchronous and holds the GIL) for
    the life of the block; yields their link."""
    from dashboards.serve import open_link

    process = multiprocessing.get_context("spawn").Process(
        target=run_dashboards, args=(settings,), name="shipboard-dashboards", daemon=True
    )
    process.start()

    def stop() -> None:
        process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()

    try:
        yield await asyncio.to_thread(open_link, dashboards_config(settings))
    finally:
        await asyncio.to_thread(stop)


async def serve(settings: Settings, ready: Callable[[dict[str, str]], None] | None = None) -> None:
    """Run the parts of `settings.role` until SIGINT or SIGTERM, then stop them in reverse
    order, flushing what is held."""
    parts = parts_of(settings.role)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tiers = settings.tiers()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(running_store(settings))
        control = await asyncio.to_thread(ControlPlane.open, settings.control_db, settings.data_dir)
        stack.push_async_callback(asyncio.to_thread, control.close)
        stats = IngestStats()
        node = _Node(settings, store, stats, ServiceMetrics(stats, store.series_count), stack)
        watch_store(node.metrics.registry, store)
        announcer = engine = None
        if "api" in parts:  # where annotations are made: their outbox, before the first request
            announcer = Announcer.build(
                control.db,
                settings.notify,
                allowlist=settings.webhook_allowlist,
                public_url=settings.public_url,
                graph=graph_summary(store, tiers),
                alerts=lambda: load_instances(control.db).values(),  # the bot's `!alerts`
                max_tries=settings.notify_max_tries,
                retry_s=settings.notify_retry_s,
                timeout_s=settings.notify_timeout_s,
            )
            node.metrics.registry.register(announcer.notifier.collector())
            # One node evaluates the rules (an alert pages once), whatever the number of API nodes.
            alerts_lease = NodeLock("alerts", settings.control_db, settings.data_dir)
            stack.push_async_callback(asyncio.to_thread, alerts_lease.release)
            engine = AlertEngine(
                control.db,
                store,
                tiers,
                settings.rule_dirs(),
                settings.rules_interval_s,
                announcer.outbox,
                lease=alerts_lease,
                groupings=announcer.groupings,
                public_url=settings.public_url,
            )
            node.metrics.registry.register(engine.collector())
        scheduler = RollupScheduler(
            store, tiers, grace_ns=int(2 * settings.flush_interval_s * NS_PER_S)
        )
        # Entered before, so closed after, the parts that write through it.
        writer = await stack.enter_async_context(StoreWriter(store, stats, node.metrics))
        app = build_http_app(
            settings,
            store,
            control,
            writer if "collector" in parts else None,
            stats,
            node.metrics,
            parts,
            None if announcer is None else announcer.outbox,
            no_rules if engine is None else engine.rules_view,
        )
        await stack.enter_async_context(http_site(app, settings.http_host, settings.http_port))
        node.listeners["http"] = f"http://{settings.http_host}:{settings.http_port}"
        if announcer is not None and settings.notify:
            # One node's bot in a channel, whatever the number of API nodes on one control DB.
            chat_lease = NodeLock("chat", settings.control_db, settings.data_dir)
            stack.push_async_callback(asyncio.to_thread, chat_lease.release)
            await stack.enter_async_context(announcer.delivering(chat_lease))
            node.listeners["notify"] = ", ".join(t.name for t in announcer.notifier.targets)
        if engine is not None:  # stops before the notifier that delivers what it queues
            await stack.enter_async_context(engine)
            assert announcer is not None
            await stack.enter_async_context(
                judging(settings, control.db, store, tiers, announcer.outbox)
            )
            node.listeners["verdicts"] = "deploys judged while holding the verdicts lock"
            node.listeners["rollouts"] = "flag rollouts stepped while holding the rollouts lock"
            rules, errors = engine.rules_view()
            dirs = ", ".join(str(d) for d in settings.rule_dirs())
            node.listeners["alerts"] = (
                f"{len(rules)} rules from {dirs} ({len(errors)} errors),"
                " evaluated while holding the alerts lock"
            )
        if "collector" in parts:
            await _start_collector(node, writer)
        if "aggregator" in parts and rolls_up_itself(settings):
            node.listeners["aggregator"] = "none needed: VictoriaMetrics computes rollups when read"
        elif "aggregator" in parts:
            await _start_aggregator(node, scheduler)
        if "dashboards" in parts and settings.dash_port:
            node.listeners["dashboards"] = await stack.enter_async_context(
                _dashboards_process(settings)
            )
        if "api" in parts:
            admin_token = await asyncio.to_thread(control.ensure_admin_token)
            if admin_token is not None:
                node.listeners["admin token"] = (
                    f"{admin_token}  (shown once: keep it, it manages tokens)"
                )
        if ready is not None:
            ready(node.listeners)
        await stopping.wait()


def _print_banner(settings: Settings, listeners: dict[str, str]) -> None:
    lines = [f"Shipboard is running ({settings.role}), data in {settings.data_dir.resolve()}"]
    lines += [f"  {name:<11} {where}" for name, where in listeners.items()]
    http = listeners["http"]
    if "dashboards" in listeners:
        lines.append(f"Open the dashboards: {listeners['dashboards']}")
    auth = "" if settings.anonymous_read else '-H "Authorization: Bearer $SHIPBOARD_TOKEN" '
    lines.append(f"Query the API:  curl {auth}'{http}/api/v1/query?metric=cpu.user&from=-15m'")
    lines.append(f"Own health:     {http}/metrics")
    print("\n".join(lines), flush=True)


def run_server(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # A store of a million series is millions of long-lived objects; Python's default full
    # collections walk them all every few hundred thousand allocations (up to a second each,
    # every thread paused, in bench/overload.py). Collect the oldest generation far less often.
    gc.set_threshold(700, 10, GC_FULL_EVERY)

    def ready(listeners: dict[str, str]) -> None:
        _print_banner(settings, listeners)

    try:
        if settings.uvloop:
            import uvloop

            uvloop.run(serve(settings, ready))
        else:
            asyncio.run(serve(settings, ready))
    except (OSError, TargetError) as error:
        log.error("cannot start: %s", error)
        return 1
    return 0
