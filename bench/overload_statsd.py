"""The overload benchmark's StatsD phases: UDP beyond the collector's capacity, then within it."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.core import Options, run_load, settled
from bench.overload_server import PROBE_EVERY_S, Probe, base_url, counted, metric_values, shipboard
from bench.payloads import statsd_packets
from bench.procs import Server, http_get
from bench.servers import FLUSH_INTERVAL_S, received

STATSD_NAMES = 3000


def _statsd_phase(server: Server, options: Options, rate: float, seconds: float,
                  probe_paths: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    """Send at `rate` metrics/s (0: flat out) for `seconds`, timing `probe_paths` meanwhile;
    what was sent, what the server took in and what it counted as dropped by the kernel."""
    before = settled(lambda: received(server, "statsd"))
    dropped_before = _overload_drops(server)
    args = ["statsd", "--port", str(server.ports["statsd"]), "--names", str(STATSD_NAMES),
            "--rate", f"{rate:.0f}", "--seconds", str(seconds)]  # fmt: skip
    with Probe(server, probe_paths, PROBE_EVERY_S) as probe:
        report = run_load(options, args)
        sender_done = time.monotonic()
        after = settled(lambda: received(server, "statsd"))
        drained_s = time.monotonic() - sender_done
    sent = int(report["sent_metrics"])
    taken = after - before
    return {
        "offered_per_s": round(sent / report["elapsed_s"]),
        "sent_metrics": sent,
        "sent_packets": report["sent_packets"],
        "received_metrics": taken,
        "taken_per_s": round(taken / report["elapsed_s"]),
        "lost_metrics": sent - taken,
        "loss": round(1 - taken / sent, 4) if sent else None,
        "dropped_datagrams_on_metrics": _overload_drops(server) - dropped_before,
        "drained_within_s": round(drained_s, 2),
        "probes": probe.timings.summary(),
    }


def _overload_drops(server: Server) -> int:
    return counted(server, "shipboard_dropped_total", 'protocol="statsd",reason="overload"')


def statsd_overload(options: Options, workdir: Path) -> dict[str, Any]:
    packets, metrics = statsd_packets(STATSD_NAMES)
    per_packet = metrics / len(packets)
    with shipboard(workdir) as server:
        options.note(server.argv)
        probe_paths = ["/healthz", "/api/v1/query?metric=shipbench.s00.ep00000.requests.count"
                       "&from=-1m"]  # fmt: skip
        # Every name once at a gentle rate first: the flat-out probe then measures the steady
        # state, not the first sight of 3,000 names.
        warm_up = _statsd_phase(server, options, 100_000, 1.0, probe_paths)
        flat_out = _statsd_phase(server, options, 0, options.seconds(3.0, 1.5), probe_paths)
        # Flat out, the sender's kernel work slows the receiver's reads too: it takes more when
        # offered less. What it takes at twice the flat-out figure is the better estimate.
        calibrate = _statsd_phase(
            server, options, 2 * flat_out["taken_per_s"], options.seconds(3.0, 1.5), probe_paths
        )
        capacity = max(flat_out["taken_per_s"], calibrate["taken_per_s"])
        over_start = time.time()
        over = _statsd_phase(server, options, 2 * capacity, options.seconds(10.0, 4.0), probe_paths)
        over_end = time.time()
        calm = _statsd_phase(server, options, capacity / 2, options.seconds(5.0, 2.0), probe_paths)
        # Flushes kept landing while overloaded: one point a flush interval of a busy counter.
        query = urllib.parse.urlencode({
            "metric": "shipbench.s00.ep00000.requests.count", "from": f"{over_start:.3f}",
            "to": f"{over_end:.3f}", "step": f"{FLUSH_INTERVAL_S}s", "agg": "count",
        })  # fmt: skip
        answer = json.loads(http_get(f"{base_url(server)}/api/v1/query?{query}"))
        flushes = sum(1 for s in answer["series"] for _, v in s["points"] if v)
        for phase in (warm_up, flat_out, calibrate, over, calm):
            phase["dropped_metrics_estimated"] = round(
                phase["dropped_datagrams_on_metrics"] * per_packet
            )
        return {
            "metrics_per_packet": round(per_packet, 1),
            "capacity_per_s": capacity,
            "warm_up": warm_up,
            "flat_out": flat_out,
            "calibrate": calibrate,
            "overload_2x": over,
            "half_rate_after": calm,
            "flushes_stored_while_overloaded": flushes,
            "overload_seconds": round(over_end - over_start, 1),
            "dropped_reasons": {
                labels: value
                for labels, value in metric_values(server, "shipboard_dropped_total").items()
                if 'protocol="statsd"' in labels
            },
        }
