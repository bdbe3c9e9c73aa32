"""Known metrics and annotations written through the real store and the real control DB."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, finish_deploy, start_deploy
from annotations.control.notes import add_annotation, update_annotation
from annotations.control.tokens import create_token
from annotations.flags.store import create_flag, patch_flag
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Samples, Series, Sketches
from storage.sketches import build

STEP_S = 10
HOSTS = {"web-1": 25.0, "web-2": 60.0}
"""cpu.user of each host: a constant, so every bucket's mean is known."""
SERVICES = {"web": 120.0, "api": 40.0}
"""http.requests.rate of each service."""
LATENCY_MS = np.array([80.0] * 95 + [200.0] * 5)
"""The http.latency values of each flush of each service: p90 80 ms, p99 200 ms."""
SCRIPT = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'

HOST_METRICS = {
    "cpu.user": lambda host: HOSTS[host],
    "cpu.system": lambda host: HOSTS[host] / 5,
    "mem.percent": lambda host: 50.0,
    "load.1m": lambda host: 1.5,
    "disk.write_bytes_per_s": lambda host: 2e6,
    "net.recv_bytes_per_s": lambda host: 3e6,
    "net.sent_bytes_per_s": lambda host: 1e6,
}


@dataclass(frozen=True, slots=True)
class Seeded:
    now_ns: int
    deploy_ok_ns: int
    deploy_failed_ns: int
    flag_ns: int
    note_ns: int
    alert_ns: int  # HighErrorRate on web: fired, resolved 7 minutes later
    alert_resolved_ns: int
    firing_ns: int  # SlowCheckout on web: still firing
    viewer_token: str


def metric_points(start_ns: int, end_ns: int, step_s: int = STEP_S) -> Samples:
    """Every host and service metric every `step_s` (10 s) from `start_ns` (inclusive) to
    `end_ns`."""
    first = -(-start_ns // (step_s * NS_PER_S)) * step_s * NS_PER_S
    times = np.arange(first, end_ns, step_s * NS_PER_S, dtype=np.int64)
    series: list[Series] = []
    values: list[float] = []
    for host in HOSTS:
        for metric, value in HOST_METRICS.items():
            extra = {"interface": "eth0"} if metric.startswith("net.") else {}
            series.append(Series.of(metric, {"host": host, **extra}))
            values.append(value(host))
        series.append(Series.of("disk.used_percent", {"host": host, "path": "/"}))
        values.append(70.0)
    for service, rate in SERVICES.items():
        tags = {"service": service, "environment": "prod"}
        for metric, level in (("http.requests.rate", rate), ("http.errors.rate", rate / 100)):
            series.append(Series.of(metric, tags))
            values.append(level)
    n = len(times)
    return Samples(
        tuple(series),
        np.repeat(np.arange(len(series), dtype=np.int32), n),
        np.tile(times, len(series)),
        np.repeat(np.asarray(values, np.float64), n),
    )


def latency_sketches(start_ns: int, end_ns: int, step_s: int = STEP_S) -> Sketches:
    """A sketch of LATENCY_MS under `http.latency` for each service every `step_s`, as the
    StatsD flush writes a timer's sketch under its base name."""
    step_ns = step_s * NS_PER_S
    times = np.arange(-(-start_ns // step_ns) * step_ns, end_ns, step_ns, dtype=np.int64)
    series = tuple(
        Series.of("http.latency", {"service": service, "environment": "prod"})
        for service in SERVICES
    )
    sketch = np.repeat(np.arange(len(series) * len(times)), len(LATENCY_MS))
    values = np.tile(LATENCY_MS, len(series) * len(times))
    label, keys, counts = build(sketch, values, np.ones(len(values)))
    index, at = np.divmod(label, len(times))
    return Sketches(series, index.astype(np.int32), times[at], keys, counts)


def seed_alerts(db: ControlDB, now_ns: int) -> tuple[int, int, int]:
    """Two alerts as the engine records them: one fired 40 minutes ago and resolved 7 minutes
    later, one firing since 8 minutes ago (its team label holds markup). Their times."""
    minute = 60 * NS_PER_S
    fired_ns, resolved_ns, firing_ns = (
        now_ns - 40 * minute,
        now_ns - 33 * minute,
        now_ns - 8 * minute,
    )
    alerts = (
        (
            "HighErrorRate",
            fired_ns,
            resolved_ns,
            "web errors at 3.1%",
            0.031,
            0.02,
            "severity",
            "page",
        ),
        (
            "SlowCheckout",
            firing_ns,
            None,
            "checkout p99 at 2.4 s",
            2400.0,
            1500.0,
            "team",
            "<i>shop</i>",
        ),
    )
    for rule, start_ns, end_ns, summary, value, threshold, label, label_value in alerts:
        extra = {"rule": rule, "state": "firing", "value": value, "op": ">", "threshold": threshold}
        annotation_id = add_annotation(
            db,
            "alert",
            start_ns=start_ns,
            title=rule,
            body=summary,
            who="shipboard",
            tags={"alertname": rule, "service": "web", label: label_value},
            extra=extra,
        )
        if end_ns is not None:
            update_annotation(db, annotation_id, end_ns=end_ns, extra=extra | {"state": "resolved"})
    return fired_ns, resolved_ns, firing_ns


def seed(store: EmbeddedStore, db: ControlDB, now_ns: int) -> Seeded:
    """Two hours of metrics, two finished deploys (one failed), a flag change, a note and two
    alerts (one resolved, one firing)."""
    start_ns = now_ns - 2 * 3600 * NS_PER_S
    store.write(metric_points(start_ns, now_ns), latency_sketches(start_ns, now_ns))
    minute = 60 * NS_PER_S
    ok_ns, failed_ns = now_ns - 50 * minute, now_ns - 30 * minute
    ok = start_deploy(
        db,
        DeployStart(
            "web",
            "prod",
            "1.2.3",
            description="Faster search " + SCRIPT,
            url="https://git.example.com/web/compare/1.2.2...1.2.3",
            watch=("error rate", "p99 latency"),
            risk="low: cache only",
            rollback="shipboard deploy rollback web",
        ),
        who="alice",
        start_ns=ok_ns,
    )
    finish_deploy(db, str(ok), status="succeeded", end_ns=ok_ns + 3 * minute)
    failed = start_deploy(
        db,
        DeployStart("api", "prod", "7.0.0", description="New pricing", url="javascript:alert(1)"),
        who="bob",
        start_ns=failed_ns,
    )
    finish_deploy(db, str(failed), status="failed", end_ns=failed_ns + 2 * minute)
    flag_ns = now_ns - 20 * minute
    doc = {"key": "new-search", "environments": {"prod": {"enabled": True, "percentage": 10}}}
    create_flag(db, doc, who="carol", now_ns=flag_ns - minute)
    patch = {"environments": {"prod": {"percentage": 25}}}
    patch_flag(db, "new-search", patch, who="carol", now_ns=flag_ns)
    note_ns = now_ns - 10 * minute
    add_annotation(db, "note", start_ns=note_ns, title="load test started", who="dave")
    alert_ns, alert_resolved_ns, firing_ns = seed_alerts(db, now_ns)
    _, token = create_token(db, "wall", "viewer")
    return Seeded(
        now_ns, ok_ns, failed_ns, flag_ns, note_ns, alert_ns, alert_resolved_ns, firing_ns, token
    )
