"""The control DB outage scenario, shared by its end-to-end test and its benchmark: API load on
a `shipboard run` whose PostgreSQL (a server of its own) is stopped and started again, a webhook
receiver for the announcements, and what was answered, recorded and announced meanwhile."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.postgres import OwnPostgres
from tests.receiver import Receiver
from tests.running import RunningShipboard

HOST = "127.0.0.1"
HTTP_TIMEOUT_S = 5.0
MAX_REQUESTS = 20_000


@dataclass(frozen=True, slots=True)
class Answer:
    """One request: when it was sent (monotonic s), what, its status and how long it took."""

    sent_s: float
    kind: str
    status: int
    took_s: float
    error: str = ""


class ApiLoad:
    """Deploy POSTs (resent on 503 with the same key), deploy-list GETs and line-protocol
    writes in turn, `rate` a second, from one thread, until stopped (at most MAX_REQUESTS)."""

    def __init__(self, url: str, token: str, rate: float) -> None:
        self._port = int(url.rsplit(":", 1)[1])
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._interval_s = 1.0 / rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-load", daemon=True)
        self.answers: list[Answer] = []
        self.recorded: list[str] = []
        """Keys whose deploy was answered 201, in order."""
        self.pending_key = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop once the deploy being sent is answered 201 (or after 15 s)."""
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        number = 0
        stopped_at: float | None = None
        kinds = ("post", "get", "write")
        for n in range(MAX_REQUESTS):
            if self._stop.is_set():
                stopped_at = stopped_at or time.monotonic()
                if not self.pending_key or time.monotonic() - stopped_at > 15:
                    return
            kind = "post" if self._stop.is_set() else kinds[n % len(kinds)]
            if kind == "post" and not self.pending_key:
                number += 1
                self.pending_key = f"outage-{number}"
            answer = self._send(kind)
            self.answers.append(answer)
            if kind == "post" and answer.status == 201:
                self.recorded.append(self.pending_key)
                self.pending_key = ""
            time.sleep(max(0.0, self._interval_s - answer.took_s))

    def _send(self, kind: str) -> Answer:
        if kind == "post":
            version = self.pending_key.removeprefix("outage-")
            body = json.dumps({"service": "web", "environment": "prod", "version": f"v{version}",
                               "idempotency_key": self.pending_key}).encode()  # fmt: skip
            method, path = "POST", "/api/v1/deploys"
        elif kind == "get":
            method, path, body = "GET", "/api/v1/deploys?from=-1h", b""
        else:
            method, path = "POST", "/write?db=app&precision=s"
            body = f"outage,host=a value=1 {int(time.time())}".encode()
        sent = time.monotonic()
        connection = http.client.HTTPConnection(HOST, self._port, timeout=HTTP_TIMEOUT_S)
        try:
            connection.request(method, path, body=body or None, headers=self._headers)
            response = connection.getresponse()
            data = response.read()
            error = ""
            if response.status >= 400:
                error = str(json.loads(data).get("error", ""))
            return Answer(sent, kind, response.status, time.monotonic() - sent, error)
        except (OSError, http.client.HTTPException, ValueError) as failure:
            return Answer(sent, kind, 0, time.monotonic() - sent, f"{type(failure).__name__}")
        finally:
            connection.close()


@dataclass
class OutageRun:
    """What one run saw: the outage's bounds (monotonic s), every answer, what was recorded."""

    stopped_s: float
    started_s: float
    answers: list[Answer]
    recorded_keys: list[str]
    deploy_versions: list[str] = field(default_factory=list)
    announcements: list[str] = field(default_factory=list)
    audit_refused_posts: int = 0
    audit_posts: int = 0

    def phase(self, answer: Answer) -> str:
        if answer.sent_s < self.stopped_s:
            return "before"
        return "during" if answer.sent_s < self.started_s else "after"

    def figures(self) -> dict[str, Any]:
        during = [a for a in self.answers if self.phase(a) == "during"]
        after = [a for a in self.answers if self.phase(a) == "after"]
        took_ms = sorted(a.took_s * 1000 for a in during if a.kind != "write")
        before_ms = [a.took_s * 1000 for a in self.answers if self.phase(a) == "before"]
        first_ok = next((a.sent_s for a in after if a.kind != "write" and a.status < 300), None)
        last_503 = max((a.sent_s for a in after if a.status == 503), default=None)
        by_phase = Counter((self.phase(a), a.kind, a.status) for a in self.answers)
        versions = Counter(self.deploy_versions)
        announced = Counter(t.split(" to prod")[0].rsplit(" ", 1)[-1] for t in self.announcements)
        return {
            "answers": {f"{p} {k} {s}": n for (p, k, s), n in sorted(by_phase.items())},
            "outage_s": round(self.started_s - self.stopped_s, 2),
            "before_api_ms_p50": round(statistics.median(before_ms), 1) if before_ms else None,
            "during_api_ms_p50": round(statistics.median(took_ms), 1) if took_ms else None,
            "during_api_ms_p99": round(took_ms[int(len(took_ms) * 0.99)], 1) if took_ms else None,
            "during_api_ms_max": round(took_ms[-1], 1) if took_ms else None,
            "during_errors": sorted({a.error for a in during if a.error}),
            "restart_to_first_2xx_s": self._since_restart(first_ok),
            "restart_to_last_503_s": self._since_restart(last_503),
            "keys_answered_201": len(self.recorded_keys),
            "deploys_recorded": len(self.deploy_versions),
            "deploys_recorded_twice": sum(1 for n in versions.values() if n > 1),
            "announcements": len(self.announcements),
            "announced_twice": sum(1 for n in announced.values() if n > 1),
            "deploy_posts_answered_503": by_phase_total(by_phase, "post", 503),
            "audit_refused_deploy_posts": self.audit_refused_posts,
            "deploy_posts_sent": sum(1 for a in self.answers if a.kind == "post"),
            "audit_deploy_posts": self.audit_posts,
        }  # fmt: skip

    def _since_restart(self, at_s: float | None) -> float | None:
        return None if at_s is None else round(at_s - self.started_s, 2)


def by_phase_total(counts: Counter[tuple[str, str, int]], kind: str, status: int) -> int:
    return sum(n for (_, k, s), n in counts.items() if k == kind and s == status)


@contextmanager
def shipboard_on(pg_url: str, receiver: Receiver, workdir: Path) -> Iterator[RunningShipboard]:
    node = RunningShipboard(
        workdir / "data",
        ["--control-db", pg_url, "--no-agent", "--notify", receiver.url(),
         "--webhook-allowlist", HOST, "--notify-retry", "0.5"],
    )  # fmt: skip
    node.start()
    try:
        yield node
    finally:
        node.stop()


def run_outage(
    pg: OwnPostgres,
    node: RunningShipboard,
    receiver: Receiver,
    *,
    before_s: float,
    outage_s: float,
    after_s: float,
    rate: float,
) -> OutageRun:
    """Load, stop PostgreSQL, start it again, load on; then read back what was recorded."""
    load = ApiLoad(node.url, node.token, rate)
    load.start()
    time.sleep(before_s)
    stopped_s = time.monotonic()
    pg.stop("immediate")
    time.sleep(max(0.0, outage_s - (time.monotonic() - stopped_s)))
    pg.start()
    started_s = time.monotonic()
    time.sleep(after_s)
    load.stop()
    run = OutageRun(stopped_s, started_s, load.answers, load.recorded)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        run.deploy_versions = [
            d["version"] for d in _json(node, "/api/v1/deploys?from=-1h")["deploys"]
        ]
        audit = _json(node, "/api/v1/audit?from=-1h&limit=1000")["audit"]
        posts = [e for e in audit if e["method"] == "POST" and e["path"] == "/api/v1/deploys"]
        run.audit_posts = len(posts)
        run.audit_refused_posts = sum(1 for e in posts if e["status"] == 503)
        run.announcements = receiver.texts()
        if run.audit_posts >= sum(1 for a in run.answers if a.kind == "post") and len(
            run.announcements
        ) >= len(run.deploy_versions):
            break
        time.sleep(0.5)
    time.sleep(1.0)  # anything announced twice would arrive now
    run.announcements = receiver.texts()
    return run


def _json(node: RunningShipboard, path: str) -> Any:
    status, body = node.get(path)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
    return json.loads(body)
