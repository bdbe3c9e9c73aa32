"""`python -m bench.run [names...] [--quick]`: every benchmark against its peer and Shipboard."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import answers, fleet, ingest, queries
from bench.core import Options, median
from bench.ingest import Measured
from bench.procs import LOAD_CPU, Server
from bench.servers import running


@dataclass(frozen=True)
class Target:
    """What Shipboard must reach: a ratio to the peer, or an absolute bound."""

    higher_is_better: bool
    ratio: float | None = None
    absolute: float | None = None

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        if self.ratio is not None:
            return f"Shipboard {sign} {self.ratio:g}x peer"
        return f"Shipboard {sign.replace('=', '')} {self.absolute:g}"

    def met(self, peer: float | None, ours: float) -> bool | None:
        if self.ratio is not None:
            if not peer:
                return None
            ratio = ours / peer
            return ratio >= self.ratio if self.higher_is_better else ratio <= self.ratio
        assert self.absolute is not None
        return ours > self.absolute if self.higher_is_better else ours < self.absolute


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    peer: str
    measure: Callable[[Server, Options], Measured]
    targets: dict[str, Target]
    prepare: Callable[[Server, Options], dict[str, Any]] | None = None
    repeat: bool = True  # False: one measurement that already aggregates many samples
    fresh_server: bool = False  # True: every repetition on a server started for it alone
    shipboard_args: Callable[[Options], list[str]] | None = None
    # The peer's details and Shipboard's, compared: do their answers agree?
    compare: Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, Any]] | None = None


HIGHER, LOWER = True, False
BENCHMARKS = [
    Benchmark("statsd_multi", "StatsD UDP, ~39 metrics per 1,400 B packet: metrics/s at <0.5% loss",
              "etsy-statsd", ingest.statsd_capacity, {"metrics_per_s": Target(HIGHER, 2.0)}),
    Benchmark("statsd_cpu", "StatsD UDP, 1 metric per packet at 100k packets/s: CPU us per metric",
              "etsy-statsd", ingest.statsd_cpu, {"cpu_us_per_metric": Target(LOWER, 0.6)}),
    Benchmark("graphite", "Graphite plaintext TCP, 4 connections: lines/s",
              "carbon-cache", ingest.graphite_lines, {"lines_per_s": Target(HIGHER, 2.0)}),
    Benchmark("influx_write", "Line protocol, 2 connections, 5,000-line bodies, durable: points/s",
              "influxd", ingest.influx_write, {"points_per_s": Target(HIGHER, 1.0)}),
    Benchmark("remote_write", "Remote write, 2 connections, 2,000-sample bodies: samples/s",
              "victoria-metrics", ingest.remote_write, {"samples_per_s": Target(HIGHER, 0.5)}),
    Benchmark("query", "Query latency over 7 d of 10 s data (median of 20): ms",
              "influxd", queries.query_latency,
              {name: Target(LOWER, 0.5) for name in queries.QUERIES},
              prepare=queries.load_week, repeat=False),
    Benchmark("memory", "Resident memory holding 100,000 series: MiB",
              "influxd", queries.memory, {"rss_mib": Target(LOWER, absolute=1024.0)},
              prepare=queries.load_series, repeat=False),
    Benchmark("influx_write_vm", "Line protocol as influx_write, against VictoriaMetrics: points/s",
              "victoria-metrics", ingest.influx_write_counted,
              {"points_per_s": Target(HIGHER, 1.0)}),
    Benchmark("query_vm", "The query benchmark's queries against VictoriaMetrics (MetricsQL): ms",
              "victoria-metrics", answers.checked_query_latency,
              {name: Target(LOWER, 1.0) for name in queries.QUERIES},
              prepare=queries.load_week_alike, repeat=False, compare=answers.agreement),
    Benchmark("million_series", "A fleet, every line its own series (1,000,000; --series): "
              "series/s, points/s, MiB, lookup ms", "victoria-metrics", fleet.million_series,
              {"series_per_s": Target(HIGHER, 1.0), "points_per_s": Target(HIGHER, 1.0),
               "rss_mib": Target(LOWER, 1.0), "lookup_ms": Target(LOWER, 1.0)},
              fresh_server=True, shipboard_args=fleet.shipboard_args),
]  # fmt: skip
BY_NAME = {bench.name: bench for bench in BENCHMARKS}


@dataclass
class Outcome:
    """One benchmark on one server: median figures, every repetition, and the commands run."""

    server: str
    figures: dict[str, float] = field(default_factory=dict)
    reps: list[dict[str, float]] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    error: str | None = None


def measure(bench: Benchmark, server_name: str, options: Options, workdir: Path) -> Outcome:
    outcome = Outcome(server_name)
    options.commands = []
    rounds = options.reps if bench.repeat else 1
    homes = [workdir / f"rep-{n + 1}" for n in range(rounds)] if bench.fresh_server else [workdir]
    wanted = bench.shipboard_args
    args = wanted(options) if wanted is not None and server_name == "shipboard" else []
    try:
        for home in homes:
            with running(server_name, home, args) as server:
                options.note(server.argv)
                if bench.prepare is not None:
                    outcome.details.append({"prepare": bench.prepare(server, options)})
                for _ in range(rounds // len(homes)):
                    options.round_no += 1
                    one = bench.measure(server, options)
                    outcome.reps.append(one.figures)
                    outcome.details.append(one.details)
        outcome.figures = {
            key: median([rep[key] for rep in outcome.reps]) for key in outcome.reps[0]
        }
    except Exception as error:  # one failing server must not hide the other's figures
        outcome.error = f"{type(error).__name__}: {error}"
        traceback.print_exc(file=sys.stderr)
    outcome.commands = list(options.commands)
    return outcome


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def report(bench: Benchmark, outcomes: dict[str, Outcome], out: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    print(f"\n== {bench.name}: {bench.title}", file=out)
    peer, ours = outcomes.get("peer"), outcomes.get("shipboard")
    for key, target in bench.targets.items():
        peer_value = peer.figures.get(key) if peer else None
        our_value = ours.figures.get(key) if ours else None
        ratio = our_value / peer_value if peer_value and our_value is not None else None
        met = target.met(peer_value, our_value) if our_value is not None else None
        verdict = {True: "MET", False: "MISSED", None: "-"}[met]
        line = f"  {key:<24} {bench.peer} {_fmt(peer_value):>12}   shipboard {_fmt(our_value):>12}"
        print(f"{line}   ratio {_fmt(ratio):>6}   target {target.describe()}: {verdict}", file=out)
        rows.append({"benchmark": bench.name, "figure": key, "peer": bench.peer,
                     "peer_value": peer_value, "shipboard_value": our_value, "ratio": ratio,
                     "target": target.describe(), "met": met})  # fmt: skip
    if bench.compare is not None and peer and ours and not (peer.error or ours.error):
        verdicts = bench.compare(peer.details, ours.details)
        print(f"  answers, {bench.peer} then shipboard: {json.dumps(verdicts)}", file=out)
        rows.append({"benchmark": bench.name, "answers": verdicts})
    for role, outcome in outcomes.items():
        label = outcome.server
        if outcome.error:
            print(f"  {label}: ERROR {outcome.error}", file=out)
        reps = ", ".join(_fmt(v) for rep in outcome.reps for v in rep.values())
        print(f"  {label} repetitions: [{reps}]", file=out)
        print(f"  {label} details: {json.dumps(outcome.details, default=str)[:600]}", file=out)
        for line in _short(outcome.commands):
            print(f"    $ {line}", file=out)
        rows.append({"benchmark": bench.name, "role": role, **outcome.__dict__})
    return rows


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    """The figures as a Markdown table, ready for bench/RESULTS.md."""
    lines = [
        "| benchmark | figure | peer | peer value | Shipboard | ratio | target | met |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        if "figure" in row:
            met = {True: "yes", False: "no", None: "-"}[row["met"]]
            lines.append(
                f"| {row['benchmark']} | {row['figure']} | {row['peer']} "
                f"| {_fmt(row['peer_value'])} | {_fmt(row['shipboard_value'])} "
                f"| {_fmt(row['ratio'])} | {row['target']} | {met} |"
            )
    return lines


def _short(commands: list[str], keep: int = 4) -> list[str]:
    """The server command and the first load commands (rate searches run dozens)."""
    if len(commands) <= keep:
        return commands
    return [*commands[:keep], f"... and {len(commands) - keep} more like these"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default all): {', '.join(BY_NAME)}")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="short runs to check the harness")
    parser.add_argument("--reps", type=int, help="repetitions (default 5, quick 3)")
    parser.add_argument("--only", choices=("peer", "shipboard"), help="run one side only")
    parser.add_argument("--json", type=Path, help="also write every figure and detail here")
    parser.add_argument("--series", type=int, help="million_series: series in the fleet (default "
                        f"{fleet.SERIES_FULL:,}, quick {fleet.SERIES_QUICK:,})")  # fmt: skip
    args = parser.parse_args(argv)
    if unknown := set(args.names) - set(BY_NAME):
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    if args.series is not None and (args.series <= 0 or args.series % fleet.BODY_LINES):
        parser.error(f"--series must be a positive multiple of {fleet.BODY_LINES:,}")

    options = Options(quick=args.quick, reps=args.reps or (3 if args.quick else 5),
                      series=args.series)  # fmt: skip
    # The harness itself (polls, queries) stays off the servers' core.
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    command = shlex.join([".venv/bin/python", "-m", "bench.run", *(argv or sys.argv[1:])])
    print(f"$ {command}\n{time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, "
          f"servers on core 0 (taskset), load on core 1, {options.reps} repetitions")  # fmt: skip
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shipboard-bench-") as tmp:
        for name in args.names or list(BY_NAME):
            bench = BY_NAME[name]
            options.began_s = int(time.time())
            roles = {"peer": bench.peer, "shipboard": "shipboard"}
            outcomes = {
                role: measure(bench, server, options, Path(tmp) / f"{name}-{role}")
                for role, server in roles.items()
                if args.only in (None, role)
            }
            rows += report(bench, outcomes, sys.stdout)
            sys.stdout.flush()
    print("\n" + "\n".join(summary_table(rows)))
    if args.json:
        args.json.write_text(json.dumps({"command": command, "rows": rows}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
