"""The deploy log: a deploy is a `deploy` annotation, started, then finished with a status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annotations.control.db import ControlDB
from annotations.control.errors import BadRequestError, NotFoundError
from annotations.control.notes import (
    Annotation,
    add_annotation,
    find_by_key,
    get_annotation,
    list_annotations,
    update_annotation,
)
from annotations.control.outbox import Outbox

STATUSES = ("succeeded", "failed", "rolled_back")
RUNNING = "running"
PENDING = "pending"
MAX_LOG_TAIL = 20_000


@dataclass(frozen=True, slots=True)
class DeployStart:
    """What a developer tells ops before shipping: what, where, and what to do if it breaks."""

    service: str
    environment: str
    version: str
    description: str = ""
    url: str = ""
    watch: tuple[str, ...] = ()
    risk: str = ""
    rollback: str = ""
    verify_after_ns: int | None = None  # None: the server's default (`verify_after_s`)


def pending_verdict(due_ns: int | None = None) -> dict[str, Any]:
    """The verdict of a deploy not yet judged: due `verify_after` after its finish (None
    while it runs, until the verdict engine has seen it finished)."""
    return {"status": PENDING, "due_ns": due_ns}


def start_deploy(
    db: ControlDB,
    start: DeployStart,
    *,
    who: str,
    start_ns: int,
    idempotency_key: str | None = None,
    outbox: Outbox | None = None,
) -> int:
    """Record a running deploy, announced through `outbox` if given; its id. A repeated
    idempotency key returns the first id."""
    return add_annotation(
        db,
        "deploy",
        start_ns=start_ns,
        title=f"deploy {start.service} {start.version} to {start.environment}",
        body=start.description,
        who=who,
        tags={"service": start.service, "environment": start.environment},
        extra={
            "version": start.version,
            "url": start.url,
            "watch": list(start.watch),
            "risk": start.risk,
            "rollback": start.rollback,
            "status": RUNNING,
            "verify_after_ns": start.verify_after_ns,
            "verdict": pending_verdict(),
        },
        idempotency_key=idempotency_key,
        outbox=outbox,
    )


def get_deploy(db: ControlDB, ref: str) -> Annotation:
    """A deploy by id, or by the idempotency key its start was sent with (the CLI's spool
    finishes deploys it could not start online, before it knew their id)."""
    found = get_annotation(db, int(ref)) if ref.isdigit() else find_by_key(db, ref)
    if found is None or found.kind != "deploy":
        raise NotFoundError(f"no deploy {ref}")
    return found


def finish_deploy(
    db: ControlDB,
    ref: str,
    *,
    status: str,
    end_ns: int,
    log_tail: str = "",
    exit_code: int | None = None,
    outbox: Outbox | None = None,
) -> Annotation:
    """End a deploy with its status, announced through `outbox` if given. Finishing again
    replaces the outcome (a later rollback), so a resent finish changes nothing."""
    if status not in STATUSES:
        raise BadRequestError(f"status must be one of {', '.join(STATUSES)}")
    with db.transaction():
        deploy = get_deploy(db, ref)
        if end_ns < deploy.start_ns:
            raise BadRequestError("a deploy cannot finish before it started")
        extra = dict(deploy.extra)
        extra.update(status=status, log_tail=log_tail[-MAX_LOG_TAIL:], exit_code=exit_code)
        update_annotation(db, deploy.id, end_ns=end_ns, extra=extra, outbox=outbox)
        return get_annotation(db, deploy.id)


def list_deploys(
    db: ControlDB,
    start_ns: int,
    end_ns: int,
    *,
    service: str | None = None,
    environment: str | None = None,
) -> list[Annotation]:
    """Deploys overlapping [start_ns, end_ns], newest first."""
    tags = {k: v for k, v in (("service", service), ("environment", environment)) if v}
    return list_annotations(db, start_ns, end_ns, kinds=("deploy",), tags=tags, newest_first=True)


def deploy_json(deploy: Annotation) -> dict[str, Any]:
    """The API's view of a deploy: its fields flat, times in ns, duration in seconds."""
    extra = deploy.extra
    duration_s = None if deploy.end_ns is None else (deploy.end_ns - deploy.start_ns) / 1e9
    return {
        "id": deploy.id,
        "service": deploy.tags.get("service", ""),
        "environment": deploy.tags.get("environment", ""),
        "version": extra.get("version", ""),
        "description": deploy.body,
        "url": extra.get("url", ""),
        "who": deploy.who,
        "watch": extra.get("watch", []),
        "risk": extra.get("risk", ""),
        "rollback": extra.get("rollback", ""),
        "status": extra.get("status", RUNNING),
        "exit_code": extra.get("exit_code"),
        "log_tail": extra.get("log_tail", ""),
        "start_ns": deploy.start_ns,
        "end_ns": deploy.end_ns,
        "duration_s": duration_s,
        "verify_after_ns": extra.get("verify_after_ns"),
        # Deploys recorded before verdicts existed have none.
        "verdict": extra.get("verdict"),
    }
