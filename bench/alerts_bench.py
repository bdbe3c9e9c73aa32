"""`python -m bench.alerts_bench [--quick]`: the CPU that evaluating 500 alert rules over 10,000
series every 15 s costs a real `shipboard run`, against the same ingest without rules."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.core import median
from bench.procs import HOST, LOAD_CPU, SERVER_CPU, Server, free_port, http_get, http_ok, pinned
from bench.servers import SHIPBOARD

SERVICES, HOSTS = 50, 100  # x 2 metrics: 10,000 series
HOT_SERVICES = ("s00", "s01")  # their error ratio is 10%; every other service's 1%
STEP_S = 10  # a point per series every 10 s, as StatsD flushes
BACKFILL_S = 15 * 60  # the longest window
RULES = 500
INTERVAL_S = 15
WINDOWS = ("1m", "2m", "5m", "10m", "15m")
BODY_LINES = 2_500  # 5,000 points per body


def service(i: int) -> str:
    return f"s{i % SERVICES:02d}"


def host(i: int) -> str:
    return f"h{i % HOSTS:03d}"


def body(ts_s: int, lines: range) -> bytes:
    """One line per (service, host) in `lines`: both counters of that pair at `ts_s`."""
    out = []
    for n in lines:
        s, h = divmod(n, HOSTS)
        requests = 100 + h % 7
        errors = requests * (0.1 if service(s) in HOT_SERVICES else 0.01)
        out.append(
            f"http,service={service(s)},host={host(h)}"
            f" requests.count={requests},errors.count={errors:.2f} {ts_s}"
        )
    return "\n".join(out).encode()


def rules() -> list[dict[str, Any]]:
    """500 rules, a mix of what teams write: error ratios per service and for all services,
    sums, means and maxima grouped by service or host, windows 1 to 15 minutes."""
    errors, requests = "http.errors.count", "http.requests.count"
    out: list[dict[str, Any]] = []
    for i in range(RULES):
        kind, svc, hst = i % 10, service(i // 5), host(i // 5)
        rule: dict[str, Any] = {"window": WINDOWS[i // 10 % len(WINDOWS)], "for": "0s"}
        if kind in (0, 5):  # fires for the hot services, one alert per host
            rule |= {"name": f"ErrorRatio_{i:03d}_{svc}", "op": ">", "threshold": 0.05,
                     "query": {"metric": errors, "tags": {"service": svc}, "agg": "sum",
                               "group_by": ["service", "host"]},
                     "ratio_of": {"metric": requests}}  # fmt: skip
        elif kind in (1, 6):
            rule |= {"name": f"Errors_{i:03d}_{svc}", "op": ">", "threshold": 1e6,
                     "query": {"metric": errors, "tags": {"service": svc}, "agg": "sum",
                               "group_by": ["host"]}}  # fmt: skip
        elif kind in (2, 7):
            rule |= {"name": f"NoTraffic_{i:03d}_{hst}", "op": "<", "threshold": 1,
                     "query": {"metric": requests, "tags": {"host": hst}, "agg": "mean",
                               "group_by": ["service"]}}  # fmt: skip
        elif kind == 3:  # fires for the hot services
            rule |= {"name": f"ServiceErrorRatio_{i:03d}", "op": ">", "threshold": 0.05,
                     "query": {"metric": errors, "agg": "sum", "group_by": ["service"]},
                     "ratio_of": {"metric": requests}}  # fmt: skip
        elif kind == 4:
            query = {"metric": requests, "agg": "sum", "group_by": ["service"]}
            rule |= {"name": f"ServiceDown_{i:03d}", "op": "<", "threshold": 1, "query": query}
        elif kind == 8:
            rule |= {"name": f"ErrorBurst_{i:03d}_{svc}", "op": ">", "threshold": 1e6,
                     "query": {"metric": errors, "tags": {"service": svc}, "agg": "max",
                               "group_by": ["host"]}}  # fmt: skip
        else:
            rule |= {"name": f"HostErrors_{i:03d}_{hst}", "op": ">", "threshold": 1e6,
                     "query": {"metric": errors, "tags": {"host": hst}, "agg": "sum"}}  # fmt: skip
        out.append(rule)
    return out


def expected_firing(all_rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(rule, service, host) of every alert the data makes fire ("" where not grouped)."""
    firing = set()
    for rule in all_rules:
        query = rule["query"]
        if "ratio_of" not in rule:
            continue
        svc = query.get("tags", {}).get("service")
        if svc is not None and svc in HOT_SERVICES:
            firing |= {(rule["name"], svc, host(h)) for h in range(HOSTS)}
        elif svc is None:
            firing |= {(rule["name"], s, "") for s in HOT_SERVICES}
    return firing


class Writer:
    """Line protocol on the load core's side: the backfill, then a point per series every
    STEP_S while running (the same in both runs, so its cost cancels out)."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.points = 0

    def write(self, ts_s: int) -> None:
        pairs = SERVICES * HOSTS
        for lo in range(0, pairs, BODY_LINES):
            payload = body(ts_s, range(lo, min(lo + BODY_LINES, pairs)))
            self._conn.request("POST", "/api/v2/write?bucket=b&org=o&precision=s", payload)
            response = self._conn.getresponse()
            answer = response.read()
            if response.status != 204:
                raise RuntimeError(f"write answered {response.status}: {answer[:200]!r}")
        self.points += 2 * pairs

    def backfill(self) -> int:
        """Every step of the last BACKFILL_S; the timestamp the live writes go on from."""
        now_s = int(time.time()) // STEP_S * STEP_S
        for ts_s in range(now_s - BACKFILL_S, now_s + 1, STEP_S):
            self.write(ts_s)
        return now_s

    def start(self, last_s: int) -> None:
        self._next_s = last_s + STEP_S
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, self._next_s - time.time())):
            self.write(self._next_s)
            self._next_s += STEP_S

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self._conn.close()


@contextmanager
def shipboard(workdir: Path, with_rules: bool) -> Iterator[Server]:
    """`shipboard run` on the server core with the 500 rules, or with an empty rules folder."""
    rules_dir = workdir / "rules"
    rules_dir.mkdir(parents=True)
    if with_rules:
        (rules_dir / "bench.yaml").write_text(yaml.safe_dump(rules(), sort_keys=False))
    ports = {name: free_port() for name in ("http", "statsd", "graphite")}
    argv = [
        str(SHIPBOARD), "run", "--data-dir", str(workdir / "data"),
        "--http-port", str(ports["http"]), "--statsd-port", str(ports["statsd"]),
        "--graphite-port", str(ports["graphite"]), "--dash-port", "0", "--anonymous-read",
        "--no-agent", "--flush-interval", "10",
        "--rules-dir", str(rules_dir), "--rules-interval", str(INTERVAL_S),
    ]  # fmt: skip
    server = Server("shipboard", pinned(argv, SERVER_CPU), workdir, ports)
    server.start()
    try:
        server.wait_until(lambda: http_ok(f"http://{HOST}:{ports['http']}/healthz"), 60)
        yield server
    finally:
        server.stop()


def get_json(server: Server, path: str) -> Any:
    return json.loads(http_get(f"http://{HOST}:{server.ports['http']}{path}"))


def evaluations(server: Server) -> tuple[float, float]:
    """`shipboard_rule_evaluation_seconds`' count and sum: rules evaluated, seconds taken."""
    text = http_get(f"http://{HOST}:{server.ports['http']}/metrics").decode()
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "shipboard_rule_evaluation_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    count = sample.value
                elif sample.name.endswith("_sum"):
                    total = sample.value
    return count, total


def cpu_s(pid: int) -> float:
    """utime + stime of `pid` and of its waited-for children (/proc/PID/stat fields 14-17)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def wait_rounds(server: Server, rounds: int, timeout_s: float) -> tuple[float, float]:
    """Until `rounds` more rounds of every rule are done; the histogram's count and sum then."""
    start, _ = evaluations(server)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count, total = evaluations(server)
        if count >= start + rounds * RULES:
            return count, total
        time.sleep(0.25)
    raise RuntimeError(f"{rounds} rounds of {RULES} rules not done in {timeout_s:.0f} s")


def check_evaluated(server: Server) -> dict[str, int]:
    """Every rule has an evaluation without error, and exactly the expected alerts fire: the
    figure is of an engine at work, not an idle one."""
    listed = get_json(server, "/api/v1/rules")
    unevaluated = [r["name"] for r in listed["rules"] if not r["last_evaluation"] or r["error"]]
    if listed["errors"] or len(listed["rules"]) != RULES or unevaluated:
        raise RuntimeError(f"rules not all evaluated: {listed['errors']}, {unevaluated[:5]}")
    alerts = get_json(server, "/api/v1/alerts?state=firing")["alerts"]
    firing = {(a["rule"], a["labels"].get("service", ""), a["labels"].get("host", ""))
              for a in alerts}  # fmt: skip
    expected = expected_firing(rules())
    if firing != expected:
        raise RuntimeError(f"{len(firing)} alerts fire, {len(expected)} expected: "
                           f"{sorted(firing ^ expected)[:5]}")  # fmt: skip
    return {"rules": len(listed["rules"]), "firing": len(firing)}


@dataclass
class Window:
    """One measured stretch of a run: wall and CPU seconds, and for rules the evaluations."""

    wall_s: float
    cpu_s: float
    evaluated: float = 0.0
    evaluation_s: float = 0.0

    @property
    def cores(self) -> float:
        return self.cpu_s / self.wall_s


def measure(workdir: Path, with_rules: bool, reps: int, rounds: int) -> list[Window]:
    """`reps` windows of `rounds` evaluation rounds each (as long, in the baseline), the
    first round after start left out (the rule files' loading, the first alerts firing)."""
    windows = []
    with shipboard(workdir, with_rules) as server:
        writer = Writer(server.ports["http"])
        writer.start(writer.backfill())
        try:
            if with_rules:
                wait_rounds(server, 2, timeout_s=120)
                print(f"  evaluated: {check_evaluated(server)}", flush=True)
            for _ in range(reps):
                if with_rules:
                    count0, sum0 = wait_rounds(server, 1, timeout_s=60)
                    wall0, cpu0 = time.monotonic(), cpu_s(server.pid)
                    count1, sum1 = wait_rounds(server, rounds, timeout_s=rounds * 30)
                    wall1, cpu1 = time.monotonic(), cpu_s(server.pid)
                    window = Window(wall1 - wall0, cpu1 - cpu0, count1 - count0, sum1 - sum0)
                else:
                    wall0, cpu0 = time.monotonic(), cpu_s(server.pid)
                    deadline = wall0 + rounds * INTERVAL_S
                    while time.monotonic() < deadline:  # the same /metrics polls as with rules
                        evaluations(server)
                        time.sleep(0.25)
                    window = Window(time.monotonic() - wall0, cpu_s(server.pid) - cpu0)
                windows.append(window)
                print(f"  {'rules' if with_rules else 'baseline'}: {window}", flush=True)
            if with_rules:
                check_evaluated(server)
        finally:
            writer.stop()
    return windows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 rounds a window, 2 repetitions")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 2)")
    parser.add_argument("--rounds", type=int, help="rounds of 15 s a window (default 8, quick 2)")
    args = parser.parse_args(argv)
    reps = args.reps or (2 if args.quick else 3)
    rounds = args.rounds or (2 if args.quick else 8)
    if len(os.sched_getaffinity(0)) > 1:  # the harness and the writer stay off the server's core
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    command = shlex.join([".venv/bin/python", "-m", "bench.alerts_bench", *(argv or sys.argv[1:])])
    print(
        f"$ {command}\n{time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, "
        f"{RULES} rules, {2 * SERVICES * HOSTS:,} series, {reps} x {rounds} rounds",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="shipboard-alerts-bench-") as tmp:
        base = measure(Path(tmp) / "baseline", False, reps, rounds)
        with_rules = measure(Path(tmp) / "rules", True, reps, rounds)
    costs = [r.cores - b.cores for r, b in zip(with_rules, base, strict=True)]
    per_round = [w.evaluation_s / (w.evaluated / RULES) for w in with_rules]
    cost = median(costs)
    print(f"baseline (ingest only): {median([b.cores for b in base]):.3f} cores")
    print(f"with {RULES} rules: {median([w.cores for w in with_rules]):.3f} cores")
    print(f"alerting: {cost:.1%} of one core (repetitions: {', '.join(f'{c:.1%}' for c in costs)})")
    print(
        f"evaluation time per round (sum of the rules' shipboard_rule_evaluation_seconds): "
        f"{median(per_round):.2f} s, {median(per_round) / RULES * 1e3:.2f} ms per rule"
    )
    print(f"target < 10% of one core: {'MET' if cost < 0.10 else 'MISSED'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
