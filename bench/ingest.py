"""Ingest benchmarks: StatsD capacity and CPU per metric, Graphite lines/s, line-protocol points/s
(also checked against what the server counted), Prometheus remote-write samples/s.

Each function is one repetition against a running server and returns its figures plus details.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.core import Options, run_load, settled
from bench.procs import Server
from bench.servers import metrics_url, received, remote_write_url, write_url

MAX_LOSS = 0.005  # "accepted" means fewer than 0.5% of the metrics sent were lost
STATSD_NAMES = 3000


@dataclass
class Measured:
    """One repetition: named figures (medians are taken over repetitions) and what explains them."""

    figures: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Round:
    sent: int
    accepted: int
    elapsed_s: float

    @property
    def loss(self) -> float:
        return 1.0 - self.accepted / self.sent if self.sent else 1.0

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.elapsed_s


def _statsd_round(server: Server, options: Options, rate: float, seconds: float, single: bool):
    before = settled(lambda: received(server, "statsd"))
    args = ["statsd", "--port", str(server.ports["statsd"]), "--names", str(STATSD_NAMES)]
    args += ["--rate", f"{rate:.0f}", "--seconds", str(seconds)]
    if single:
        args.append("--single")
    report = run_load(options, args)
    after = settled(lambda: received(server, "statsd"))
    return _Round(report["sent_metrics"], after - before, report["elapsed_s"])


def statsd_capacity(server: Server, options: Options) -> Measured:
    """Highest rate of multi-metric packets the server takes with < 0.5% loss, in metrics/s.

    A flat-out probe gives the rate the server drains when overloaded; a bisection around it
    finds the highest offered rate still accepted with < 0.5% loss."""
    seconds = options.seconds(2.0, 0.7)
    probe = _statsd_round(server, options, 0, seconds, single=False)
    details: dict[str, Any] = {"probe_sent_per_s": probe.sent / probe.elapsed_s,
                               "probe_loss": probe.loss}  # fmt: skip
    if probe.loss < MAX_LOSS:
        details["limited_by"] = "sender"
        return Measured({"metrics_per_s": probe.accepted_per_s}, details)
    low, high = 0.5 * probe.accepted_per_s, min(1.5 * probe.accepted_per_s, probe.sent / seconds)
    best = 0.0
    rounds = []
    for _ in range(3 if options.quick else 6):
        rate = (low + high) / 2 if best else low
        trial = _statsd_round(server, options, rate, seconds, single=False)
        rounds.append((round(rate), round(trial.loss, 4)))
        if trial.loss < MAX_LOSS:
            best = max(best, trial.accepted_per_s)
            low = rate
        elif best:
            high = rate
        else:  # even the lower bound lost too much: search lower
            low, high = low / 2, low
    details["rounds"] = rounds
    return Measured({"metrics_per_s": best}, details)


def statsd_cpu(server: Server, options: Options) -> Measured:
    """Server CPU time per metric at 100k single-metric packets/s, in microseconds."""
    seconds = options.seconds(4.0, 1.5)
    cpu_before = server.cpu_s()
    trial = _statsd_round(server, options, 100_000, seconds, single=True)
    cpu_s = server.cpu_s() - cpu_before
    return Measured(
        {"cpu_us_per_metric": cpu_s / max(trial.accepted, 1) * 1e6},
        {"sent_per_s": trial.sent / trial.elapsed_s, "loss": round(trial.loss, 4), "cpu_s": cpu_s},
    )


def graphite_lines(server: Server, options: Options) -> Measured:
    """Plaintext lines/s over 4 connections, timed until the server has read the last line."""
    conns, cycles = 4, (20 if options.quick else 80)
    before = received(server, "graphite")
    report = run_load(options, ["graphite", "--port", str(server.ports["graphite"]),
                                "--conns", str(conns), "--cycles", str(cycles)])  # fmt: skip
    # carbon records its self-metrics once a second: poll at that pace.
    interval_s = 1.2 if server.name == "carbon-cache" else 0.25
    accepted = settled(lambda: received(server, "graphite"), interval_s, timeout_s=60) - before
    details = {"sent": report["lines"], "accepted": accepted, "elapsed_s": report["elapsed_s"]}
    if report["failures"]:
        details["failures"] = report["failures"]
    return Measured({"lines_per_s": accepted / report["elapsed_s"]}, details)


def influx_write(server: Server, options: Options) -> Measured:
    """Points/s of line protocol acknowledged durable: 2 connections, bodies of 5,000 lines."""
    return _influx_write(server, options, counted=False)


def influx_write_counted(server: Server, options: Options) -> Measured:
    """`influx_write` timed until the server's own count holds every point acknowledged (what
    VictoriaMetrics' 204 does not promise), after checking that it holds exactly those."""
    return _influx_write(server, options, counted=True)


def _influx_write(server: Server, options: Options, counted: bool) -> Measured:
    seconds = options.seconds(5.0, 1.5)
    # Within raw retention (2 d), and a span of its own per repetition: no overwrites.
    start_s = int(time.time()) - 2 * 86_400 + 3600 + options.round_no * 4000
    args = ["influx", "--url", write_url(server), "--hosts", "10000", "--lines", "5000",
            "--conns", "2", "--seconds", str(seconds), "--start", str(start_s)]  # fmt: skip
    report = run_load(options, [*args, "--metrics-url", metrics_url(server)] if counted else args)
    details = {k: report[k] for k in ("points", "bodies", "errors", "elapsed_s")}
    if report["errors"]:
        details["first_errors"] = report["first_errors"]
    if not counted:
        return Measured({"points_per_s": report["points"] / report["elapsed_s"]}, details)
    details |= {k: report[k] for k in ("counted", "counted_s")}
    details["acked_per_s"] = report["points"] / report["elapsed_s"]  # by the 204s alone
    if report["counted"] != report["points"]:
        raise RuntimeError(f"{server.name} acknowledged {report['points']} points but counted "
                           f"{report['counted']}")  # fmt: skip
    return Measured({"points_per_s": report["counted"] / report["counted_s"]}, details)


def remote_write(server: Server, options: Options) -> Measured:
    """Samples/s of Prometheus remote write acknowledged: 2 connections, 2,000-sample bodies."""
    seconds = options.seconds(5.0, 1.5)
    # Within Shipboard's raw retention (2 d), and a span of its own per repetition.
    start_ms = (int(time.time()) - 2 * 86_400 + 3600 + options.round_no * 20_000) * 1000
    report = run_load(options, ["remote_write", "--url", remote_write_url(server),
                                "--series", "10000", "--samples", "2000", "--conns", "2",
                                "--seconds", str(seconds),
                                "--start-ms", str(start_ms)])  # fmt: skip
    details = {k: report[k] for k in ("points", "bodies", "errors", "elapsed_s")}
    if report["errors"]:
        details["first_errors"] = report["first_errors"]
    return Measured({"samples_per_s": report["points"] / report["elapsed_s"]}, details)
