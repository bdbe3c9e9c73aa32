"""Deploys of web with verdicts, written through the real control DB as the verdict engine
stores them (the annotation's `extra["verdict"]`, the API's `verdict`)."""

from __future__ import annotations

from typing import Any

from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, finish_deploy, start_deploy
from annotations.control.notes import Annotation, get_annotation, update_annotation
from storage.records import NS_PER_S

MINUTE_NS = 60 * NS_PER_S
ERRORS = {
    "metric": "http.errors/http.requests",
    "test": "binomial",
    "before": 0.004,
    "after": 0.009,
    "change": 1.25,
    "interval": [0.8, 1.7],
    "samples": [12000, 11800],
    "baseline": 0.0041,
    "status": "regressed",
}
LATENCY = {
    "metric": "http.latency p99",
    "test": "quantile",
    "before": 180.0,
    "after": 183.6,
    "change": 0.02,
    "interval": [-0.04, 0.08],
    "samples": [5000, 5100],
    "baseline": None,
    "status": "healthy",
}
STEADY = ERRORS | {"after": 0.0042, "change": 0.05, "interval": [-0.06, 0.17], "status": "healthy"}
SPARSE = ERRORS | {"after": 0.01, "change": 1.5, "interval": [-0.9, 9.0], "samples": [40, 38]}
VERDICTS: dict[str, dict[str, Any]] = {
    "healthy": {"status": "healthy", "metrics": [STEADY, LATENCY], "confounders": []},
    "regressed": {
        "status": "regressed",
        "metrics": [LATENCY, ERRORS],
        "confounders": [{"kind": "flag", "id": 1, "title": "new-search prod: 10% -> 25%"}],
    },
    "inconclusive": {
        "status": "inconclusive",
        "metrics": [SPARSE | {"status": "inconclusive"}],
        "confounders": [],
    },
    "pending": {"status": "pending"},
}
MINUTES_BEFORE = {"healthy": 46, "regressed": 42, "inconclusive": 38, "pending": 26}
"""When each deploy started, minutes before now: between and after the seed's two deploys."""


def seed_verdicts(db: ControlDB, now_ns: int) -> dict[str, Annotation]:
    """A succeeded deploy of web for each verdict, two minutes long; its annotation by status."""
    found = {}
    for status, minutes in MINUTES_BEFORE.items():
        start_ns = now_ns - minutes * MINUTE_NS
        version = f"2.0.{minutes}"
        ref = start_deploy(db, DeployStart("web", "prod", version), who="erin", start_ns=start_ns)
        finished = finish_deploy(db, str(ref), status="succeeded", end_ns=start_ns + 2 * MINUTE_NS)
        verdict = VERDICTS[status] | (
            {"due_ns": now_ns + MINUTE_NS} if status == "pending" else {"at": now_ns}
        )
        update_annotation(
            db, ref, end_ns=finished.end_ns, extra=finished.extra | {"verdict": verdict}
        )
        found[status] = get_annotation(db, ref)
    return found
