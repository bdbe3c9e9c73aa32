"""`shipboard deploy --verify`: after the command, wait for the deploy's verdict (GET
/api/v1/deploys/{id} until it is no longer pending), print it, and exit by it.

Exit codes: the command's own when it failed (no verdict is waited for); else 0 for healthy,
inconclusive, no_data or nothing to verify, 3 for regressed, 4 when no verdict could be had
(the server unreachable, or still pending past its due time plus a margin)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from annotations.control.verdict_text import confounders_of, metric_detail, metrics_of
from annotations.http_client import ApiClient, ApiError
from storage.records import NS_PER_S

REGRESSED_EXIT = 3
NO_VERDICT_EXIT = 4
DEFAULT_VERIFY_AFTER_S = 15 * 60.0
"""What the server waits when the deploy names no `verify_after` (its default setting); the
first pending answer's `due_ns` replaces this guess."""
MARGIN_S = 60.0
"""How long past a verdict's due time the CLI still waits for it (one evaluation pass)."""
MAX_POLL_S = 5.0


def verdict_report(deploy: Mapping[str, Any], verdict: Mapping[str, Any]) -> list[str]:
    """`verdict regressed for web 3f2c1a9 (at 2026-12-02T21:15:00Z)`, a line per metric with
    its before -> after, change, interval, test and samples, then the confounders."""
    at = verdict.get("at")
    when = (
        f" (at {datetime.fromtimestamp(at / NS_PER_S, UTC):%Y-%m-%dT%H:%M:%SZ})"
        if isinstance(at, int)
        else ""
    )
    lines = [
        f"verdict {verdict.get('status')} for {deploy.get('service')} {deploy.get('version')}"
        + when
    ]
    lines += [f"  {metric_detail(metric)}" for metric in metrics_of(verdict)]
    others = confounders_of(verdict)
    lines += [f"  confounder: {other}" for other in others]
    return lines


def wait_for_verdict(
    server: ApiClient,
    ref: str,
    verify_after_s: float | None,
) -> int:
    """Poll the deploy `ref` (its id or idempotency key) until its verdict is reached, print
    it to stderr, and return the exit code it means."""
    deadline = time.time() + (verify_after_s or DEFAULT_VERIFY_AFTER_S) + MARGIN_S
    while True:
        try:
            deploy = server.call("GET", f"/api/v1/deploys/{ref}")
        except ApiError as error:
            if not error.retryable or time.time() >= deadline:
                return _no_verdict(f"cannot read the deploy's verdict: {error}")
            time.sleep(MAX_POLL_S)
            continue
        verdict = deploy.get("verdict")
        if verdict is None:
            print(
                "shipboard: nothing to verify (the deploy watches no metric and its service"
                " has no default metrics)",
                file=sys.stderr,
            )
            return 0
        status = verdict.get("status")
        if status != "pending":
            print("shipboard: " + "\n".join(verdict_report(deploy, verdict)), file=sys.stderr)
            return REGRESSED_EXIT if status == "regressed" else 0
        due_ns = verdict.get("due_ns")
        if isinstance(due_ns, int):
            deadline = due_ns / NS_PER_S + MARGIN_S
        now = time.time()
        if now >= deadline:
            return _no_verdict(
                f"the verdict was still pending {MARGIN_S:.0f}s after it was due; see"
                f" GET /api/v1/deploys/{deploy.get('id', ref)} later"
            )
        due_in = due_ns / NS_PER_S - now if isinstance(due_ns, int) else MAX_POLL_S
        time.sleep(min(max(due_in, 0.5), MAX_POLL_S, deadline - now))


def _no_verdict(why: str) -> int:
    print(f"shipboard: no verdict: {why}", file=sys.stderr)
    return NO_VERDICT_EXIT
