"""`python -m bench.overload [http] [statsd] [--quick]`: Shipboard offered more than it can take.

http: a flood of new series over line protocol against `--max-series` (1,000,000 new series
in 60 s against 100,000; `--quick`: 200,000 in 20 s against 20,000), with 100 existing series
queried every 20 ms meanwhile. Exactly the limit must be kept, the rest refused with a clear
400 and counted on `/metrics`, resident memory stay bounded, and the queries keep answering
(p99 under 250 ms).

statsd: multi-metric UDP packets (3,000 names) at 100k metrics/s for 1 s, flat out for 3 s and
at twice what that drained for 3 s to find the collector's capacity (the most it took), then
twice the capacity for 10 s, then half of it for 5 s. The
collector must keep serving (`/healthz` and a query timed every 50 ms), count what the kernel
dropped on `/metrics` (`shipboard_dropped_total{protocol="statsd",reason="overload"}`, in
datagrams) and, at half the rate, lose nothing again.

Shipboard runs pinned to core 0 with the benchmarks' usual flags, the load generators and the
probes on core 1. Every sender is bounded in count and time; the servers are stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.core import Options
from bench.overload_flood import EXISTING_HOSTS, P99_GOAL_MS, send_flood, series_flood
from bench.overload_statsd import statsd_overload
from bench.procs import LOAD_CPU
from bench.servers import FLUSH_INTERVAL_S


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def print_flood(result: dict[str, Any], out: Any) -> None:
    plan, sent = result["plan"], result["sent"]
    busy, idle = result["queries_during_flood"], result["queries_idle"]
    exact = result["accepted_new_series"] == result["expected_new_series"]
    p99 = busy["p99_ms"]
    lines = [
        f"\n== http: {plan['new_series']:,} new series in {plan['seconds']:.0f} s against "
        f"--max-series {plan['max_series']:,} ({EXISTING_HOSTS} existing series)",
        f"  bodies sent {sent['bodies']:,} of {plan['lines']:,} lines in {sent['elapsed_s']:.1f} s"
        f" over {plan['conns']} connections: {sent['answered_204']} x 204, "
        f"{sent['answered_400']} x 400 (series limit), {sent['errors']} other",
        f"  new series accepted {result['accepted_new_series']:,} "
        f"(expected {result['expected_new_series']:,}: {'exact' if exact else 'NOT EXACT'}); "
        f"shipboard_series {result['series_on_metrics']:,}",
        f"  points refused: answered {result['refused_points_answered']:,}, counted on /metrics "
        f"{result['refused_points_on_metrics']:,}; received on /metrics "
        f"{result['received_on_metrics']:,}",
        f"  refusal: {sent['first_refusal'][:200]}",
        f"  body answer time p50 {_ms(sent['body_p50_ms'])}, p99 {_ms(sent['body_p99_ms'])}",
        f"  RSS MiB before {result['rss_mib']['before']}, peak {result['rss_mib']['peak']}, "
        f"after {result['rss_mib']['after']}; every 10 s of the flood "
        f"{result['rss_mib']['every_10_s']}",
        f"  query of an existing series, idle: p50 {_ms(idle['p50_ms'])} p99 {_ms(idle['p99_ms'])}"
        f" ({idle['requests']} requests)",
        f"  ... during the flood: p50 {_ms(busy['p50_ms'])} p99 {_ms(p99)} max "
        f"{_ms(busy['max_ms'])} ({busy['requests']} requests, {busy['errors']} errors): "
        + ("MET" if p99 is not None and p99 < P99_GOAL_MS and not busy["errors"] else "MISSED")
        + f" (goal p99 < {P99_GOAL_MS:.0f} ms)",
    ]
    if sent["first_errors"]:
        lines.append(f"  first errors: {sent['first_errors']}")
    print("\n".join(lines), file=out)


def print_statsd(result: dict[str, Any], out: Any) -> None:
    lines = [
        f"\n== statsd: UDP, {result['metrics_per_packet']} metrics per packet; "
        f"capacity {result['capacity_per_s']:,} metrics/s (the most taken flat out or at twice "
        "that)"
    ]
    for name in ("warm_up", "flat_out", "calibrate", "overload_2x", "half_rate_after"):
        phase = result[name]
        probes = phase["probes"]
        lines.append(
            f"  {name:<16} offered {phase['offered_per_s']:>10,}/s "
            f"sent {phase['sent_metrics']:>10,} received {phase['received_metrics']:>10,} "
            f"lost {phase['lost_metrics']:>9,} ({phase['loss']:.2%}); "
            f"dropped on /metrics {phase['dropped_datagrams_on_metrics']:,} datagrams "
            f"(~{phase['dropped_metrics_estimated']:,} metrics); "
            f"drained within {phase['drained_within_s']} s; "
            f"probes p50 {_ms(probes['p50_ms'])} p99 {_ms(probes['p99_ms'])} "
            f"max {_ms(probes['max_ms'])}, {probes['errors']} errors"
        )
    over = result["overload_2x"]
    lines.append(
        f"  overload: offered {over['offered_per_s'] / result['capacity_per_s']:.2f}x the capacity,"
        f" {over['offered_per_s'] / max(over['taken_per_s'], 1):.2f}x what it took meanwhile "
        f"({over['taken_per_s']:,}/s)"
    )
    lines.append(
        f"  flushes stored while overloaded: {result['flushes_stored_while_overloaded']} in "
        f"{result['overload_seconds']} s (one per {FLUSH_INTERVAL_S} s flush)"
    )
    lines.append(f"  statsd drops on /metrics: {result['dropped_reasons']}")
    print("\n".join(lines), file=out)


SCENARIOS: dict[str, tuple[Callable[[Options, Path], dict[str, Any]], Callable[..., None]]] = {
    "http": (series_flood, print_flood),
    "statsd": (statsd_overload, print_statsd),
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["flood"]:
        return _flood_main(args_list[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.overload", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="http, statsd (default both)")
    parser.add_argument("--quick", action="store_true", help="smaller and shorter")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(args_list)
    if unknown := set(args.names) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    options = Options(quick=args.quick, reps=1)
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    command = shlex.join([".venv/bin/python", "-m", "bench.overload", *args_list])
    print(f"$ {command}\n{time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}, server on core 0, load on core 1")  # fmt: skip
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="shipboard-overload-") as tmp:
        for name in args.names or list(SCENARIOS):
            measure, show = SCENARIOS[name]
            options.commands = []
            results[name] = measure(options, Path(tmp) / name)
            results[name]["commands"] = list(options.commands)
            show(results[name], sys.stdout)
            for line in options.commands[:3]:
                print(f"    $ {line}")
            sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps({"command": command, **results}, indent=2, default=str))
    return 0


def _flood_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overload flood")
    parser.add_argument("--url", required=True)
    parser.add_argument("--series", type=int, required=True)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--conns", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    print(json.dumps(send_flood(args.url, args.series, args.lines, args.conns, args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
