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
import http.client
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core import PYTHON, Options, run_load, settled
from bench.payloads import statsd_packets
from bench.procs import (
    HOST,
    LOAD_CPU,
    SERVER_CPU,
    Server,
    free_port,
    http_get,
    http_ok,
    http_post,
    pinned,
)
from bench.servers import FLUSH_INTERVAL_S, SHIPBOARD, received

_MAX_SECONDS = 150.0  # no sender or probe runs longer than this, whatever it is asked
EXISTING_HOSTS = 100
QUERY_EVERY_S = 0.02
PROBE_EVERY_S = 0.05
P99_GOAL_MS = 250.0
STATSD_NAMES = 3000


@dataclass(frozen=True)
class FloodPlan:
    new_series: int
    max_series: int
    seconds: float
    lines: int = 5000  # lines (series) per body, as a Telegraf batch
    conns: int = 2

    @classmethod
    def of(cls, options: Options) -> FloodPlan:
        if options.quick:
            return cls(new_series=200_000, max_series=20_000, seconds=20.0)
        return cls(new_series=1_000_000, max_series=100_000, seconds=60.0)


# --- the server -----------------------------------------------------------------------------


@contextmanager
def shipboard(workdir: Path, *extra: str) -> Iterator[Server]:
    """`shipboard run` with the benchmarks' flags (as `bench.servers.shipboard`) plus `extra`,
    stopped by PID however the block ends."""
    workdir.mkdir(parents=True)
    ports = {name: free_port() for name in ("http", "statsd", "graphite")}
    argv = [
        str(SHIPBOARD), "run", "--data-dir", str(workdir / "data"),
        "--http-port", str(ports["http"]), "--statsd-port", str(ports["statsd"]),
        "--graphite-port", str(ports["graphite"]), "--dash-port", "0", "--anonymous-read",
        "--no-agent", "--flush-interval", str(FLUSH_INTERVAL_S), *extra,
    ]  # fmt: skip
    server = Server("shipboard", pinned(argv, SERVER_CPU), workdir, ports)
    try:
        server.start()
        server.wait_until(lambda: http_ok(f"http://{HOST}:{ports['http']}/healthz"), timeout_s=60)
        yield server
    finally:
        server.stop()


def base_url(server: Server) -> str:
    return f"http://{HOST}:{server.ports['http']}"


def metric_values(server: Server, name: str) -> dict[str, float]:
    """Every sample of `name` on `/metrics`, by its label text (`protocol="influx",...`)."""
    text = http_get(f"{base_url(server)}/metrics").decode()
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})?\s+(\S+)$", re.M)
    return {labels: float(value) for labels, value in pattern.findall(text)}


def counted(server: Server, name: str, labels: str = "") -> int:
    return int(metric_values(server, name).get(labels, 0.0))


# --- probes that run beside the load, in this process ---------------------------------------


@dataclass
class Timings:
    """Latencies of requests made every `every_s` while the load runs, and what went wrong."""

    ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.ms)
        return {
            "requests": len(ordered),
            "p50_ms": _quantile(ordered, 0.50),
            "p99_ms": _quantile(ordered, 0.99),
            "max_ms": ordered[-1] if ordered else None,
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
        }


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Probe:
    """GETs `paths` in turn over one keep-alive connection every `every_s`, in a thread, until
    stopped (at most `_MAX_SECONDS`); a request that fails is an error and a new connection."""

    def __init__(self, server: Server, paths: Sequence[str], every_s: float) -> None:
        self._port = server.ports["http"]
        self._paths = paths
        self._every_s = every_s
        self._stop = threading.Event()
        self.timings = Timings()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(_MAX_SECONDS)

    def _run(self) -> None:
        conn = http.client.HTTPConnection(HOST, self._port, timeout=30)
        deadline = time.monotonic() + _MAX_SECONDS
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            path = self._paths[i % len(self._paths)]
            i += 1
            started = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                elapsed_ms = (time.perf_counter() - started) * 1000
                if response.status == 200:
                    self.timings.ms.append(elapsed_ms)
                else:
                    self.timings.errors.append(f"{response.status} {body[:120]!r}")
            except (OSError, http.client.HTTPException) as error:
                self.timings.errors.append(repr(error))
                conn.close()
                conn = http.client.HTTPConnection(HOST, self._port, timeout=30)
            self._stop.wait(self._every_s)
        conn.close()


class RssPeak:
    """The server's resident memory, sampled every `every_s` in a thread: peak and last."""

    def __init__(self, server: Server, every_s: float = 0.25) -> None:
        self._server = server
        self._every_s = every_s
        self._stop = threading.Event()
        self.peak = self.last = server.rss_bytes()
        self.every_10_s: list[int] = []  # the samples 10 s apart, to see it level off
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(_MAX_SECONDS)

    def _run(self) -> None:
        started = time.monotonic()
        deadline = started + _MAX_SECONDS
        while not self._stop.wait(self._every_s) and time.monotonic() < deadline:
            self.last = self._server.rss_bytes()
            self.peak = max(self.peak, self.last)
            if time.monotonic() - started >= 10 * (len(self.every_10_s) + 1):
                self.every_10_s.append(self.last)


def _mib(size: int) -> float:
    return round(size / 2**20, 1)


# --- the series flood -----------------------------------------------------------------------

_REFUSED = re.compile(rb"(\d+) points of new series dropped")


def flood_body(index: int, lines: int, ts_s: int) -> bytes:
    """Body `index`: `lines` series never seen before, one point each."""
    first = index * lines
    return "".join(
        f"flood,host=n{i:07d} v={i % 100} {ts_s}\n" for i in range(first, first + lines)
    ).encode()


def send_flood(url: str, series: int, lines: int, conns: int, seconds: float) -> dict[str, Any]:
    """POST `series` new series in bodies of `lines`, spread evenly over `seconds` (body k is not
    sent before k * seconds / bodies), over `conns` keep-alive connections; stops after
    `_MAX_SECONDS` whatever is left. Counts what was acknowledged and refused, by the answers."""
    parsed = urllib.parse.urlsplit(url)
    target = f"{parsed.path}?{parsed.query}"
    bodies = -(-series // lines)
    ts_s = int(time.time()) - 600
    lock = threading.Lock()
    state = {"next": 0, "acked": 0, "refused": 0, "answered_204": 0, "answered_400": 0}
    body_ms: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    deadline = start + min(2 * seconds, _MAX_SECONDS)

    def take() -> int | None:
        with lock:
            index = state["next"]
            if index >= bodies or time.perf_counter() >= deadline:
                return None
            state["next"] = index + 1
        due = start + index * seconds / bodies
        time.sleep(max(0.0, due - time.perf_counter()))
        return index

    def one_connection() -> None:
        conn = http.client.HTTPConnection(HOST, parsed.port, timeout=60)
        try:
            while (index := take()) is not None:
                body = flood_body(index, min(lines, series - index * lines), ts_s)
                sent = body.count(b"\n")
                began = time.perf_counter()
                conn.request("POST", target, body, {"Content-Type": "text/plain"})
                response = conn.getresponse()
                reply = response.read()
                elapsed_ms = (time.perf_counter() - began) * 1000
                refused = _REFUSED.search(reply)
                with lock:
                    body_ms.append(elapsed_ms)
                    if response.status == 204:
                        state["answered_204"] += 1
                        state["acked"] += sent
                    elif response.status == 400 and refused is not None:
                        state["answered_400"] += 1
                        state["refused"] += int(refused[1])
                        state["acked"] += sent - int(refused[1])
                    else:
                        errors.append(f"{response.status} {reply[:200]!r}")
        except (OSError, http.client.HTTPException) as error:
            with lock:
                errors.append(repr(error))
        finally:
            conn.close()

    threads = [threading.Thread(target=one_connection, daemon=True) for _ in range(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_MAX_SECONDS + 10)
    ordered = sorted(body_ms)
    return {
        **state,
        "bodies": state["next"],
        "errors": len(errors),
        "first_errors": errors[:3],
        "elapsed_s": time.perf_counter() - start,
        "body_p50_ms": _quantile(ordered, 0.5),
        "body_p99_ms": _quantile(ordered, 0.99),
    }


def _seed_existing(server: Server) -> None:
    """100 series with a point every 10 s over the last hour: the series that are queried."""
    now_s = int(time.time())
    body = "".join(
        f"existing,host=h{host:03d} v={(host + t) % 50} {t}\n"
        for host in range(EXISTING_HOSTS)
        for t in range(now_s - 3600, now_s, 10)
    ).encode()
    status = http_post(f"{base_url(server)}/write?db=bench&precision=s", body)
    if status != 204:
        raise RuntimeError(f"seeding the existing series answered {status}")


def _existing_queries() -> list[str]:
    return [
        f"/api/v1/query?metric=existing.v&tags=host:h{host:03d}&from=-15m"
        for host in range(EXISTING_HOSTS)
    ]


def _first_refusal(server: Server) -> str:
    """The answer a client gets for a new series once the limit is reached."""
    request = http.client.HTTPConnection(HOST, server.ports["http"], timeout=30)
    try:
        request.request("POST", "/write?db=bench", b"flood,host=one-more v=1\n")
        response = request.getresponse()
        return f"{response.status} {response.read().decode()}"
    finally:
        request.close()


def series_flood(options: Options, workdir: Path) -> dict[str, Any]:
    plan = FloodPlan.of(options)
    with shipboard(workdir, "--max-series", str(plan.max_series)) as server:
        options.note(server.argv)
        _seed_existing(server)
        with Probe(server, _existing_queries(), QUERY_EVERY_S) as idle:
            time.sleep(options.seconds(5.0, 2.0))
        rss_before = server.rss_bytes()
        url = f"{base_url(server)}/api/v2/write?bucket=bench&org=bench&precision=s"
        argv = pinned([PYTHON, "-m", "bench.overload", "flood", "--url", url,
                       "--series", str(plan.new_series), "--lines", str(plan.lines),
                       "--conns", str(plan.conns), "--seconds", str(plan.seconds)],
                      LOAD_CPU)  # fmt: skip
        options.note(argv)
        with RssPeak(server) as rss, Probe(server, _existing_queries(), QUERY_EVERY_S) as busy:
            done = subprocess.run(argv, capture_output=True, timeout=_MAX_SECONDS + 30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"flood sender failed ({done.returncode}): {done.stderr.decode()}")
        sent: dict[str, Any] = json.loads(done.stdout)
        refused_counted = settled(
            lambda: counted(
                server, "shipboard_dropped_total", 'protocol="influx",reason="series_limit"'
            )
        )
        sent["first_refusal"] = _first_refusal(server)
        listed = json.loads(http_get(f"{base_url(server)}/api/v1/series?metric=flood.v"))
        return {
            "plan": plan.__dict__,
            "sent": sent,
            "accepted_new_series": len(listed["series"]),
            "expected_new_series": plan.max_series - EXISTING_HOSTS,
            "series_on_metrics": counted(server, "shipboard_series"),
            "refused_points_answered": sent["refused"],
            "refused_points_on_metrics": refused_counted,
            "received_on_metrics": counted(server, "shipboard_received_total", 'protocol="influx"'),
            "rss_mib": {
                "before": _mib(rss_before),
                "peak": _mib(rss.peak),
                "after": _mib(server.rss_bytes()),
                "every_10_s": [_mib(size) for size in rss.every_10_s],
            },
            "queries_idle": idle.timings.summary(),
            "queries_during_flood": busy.timings.summary(),
        }


# --- StatsD beyond capacity -----------------------------------------------------------------


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


# --- the report -----------------------------------------------------------------------------


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
