"""What changed before an alert: the deploys and flag changes of the half hour before it."""

from __future__ import annotations

from annotations.alerts.context import changes_before
from annotations.control.db import ControlDB
from annotations.control.deploys import DeployStart, finish_deploy, start_deploy
from annotations.control.notes import add_annotation

S = 10**9
MINUTE = 60 * S
STARTED = 1_800_000_000 * S


def flag_change(db: ControlDB, at_ns: int, title: str, environment: str) -> None:
    add_annotation(
        db,
        "flag",
        start_ns=at_ns,
        title=title,
        who="bob",
        tags={"flag": "checkout", "environment": environment},
        extra={"version": 3},
    )


def test_the_deploys_and_flag_changes_of_the_half_hour_before_latest_first(control_db: ControlDB):
    db = control_db
    start = DeployStart("web", "production", "v42", watch=("http.errors",), rollback="v41")
    recent = start_deploy(db, start, who="alice", start_ns=STARTED - 4 * MINUTE)
    finish_deploy(db, str(recent), status="succeeded", end_ns=STARTED - 3 * MINUTE)
    old = start_deploy(db, DeployStart("api", "production", "v7"), who="carol", start_ns=0)
    finish_deploy(db, str(old), status="succeeded", end_ns=STARTED - 31 * MINUTE)
    start_deploy(db, DeployStart("api", "production", "v8"), who="carol", start_ns=STARTED + S)
    for environment in ("production", "staging"):  # a kill is recorded in each environment
        flag_change(db, STARTED - 12 * MINUTE, "checkout killed", environment)
    flag_change(db, STARTED - 20 * MINUTE, "checkout production: 10% -> 50%", "production")

    changes = changes_before(db, STARTED)
    assert [(c["kind"], c["at_ns"]) for c in changes] == [
        ("deploy", STARTED - 4 * MINUTE),
        ("flag", STARTED - 12 * MINUTE),
        ("flag", STARTED - 20 * MINUTE),
    ]
    assert changes[0] == {
        "kind": "deploy",
        "id": recent,
        "at_ns": STARTED - 4 * MINUTE,
        "who": "alice",
        "service": "web",
        "environment": "production",
        "version": "v42",
        "status": "succeeded",
        "watch": ["http.errors"],
        "risk": "",
        "rollback": "v41",
    }
    assert (changes[1]["who"], changes[1]["flag"], changes[1]["change"]) == (
        "bob",
        "checkout",
        "checkout killed",
    )


def test_a_deploy_that_began_earlier_and_ended_within_the_half_hour_is_listed(
    control_db: ControlDB,
):
    deploy = DeployStart("web", "production", "v42")
    long_one = start_deploy(control_db, deploy, who="alice", start_ns=STARTED - 45 * MINUTE)
    finish_deploy(control_db, str(long_one), status="failed", end_ns=STARTED - 25 * MINUTE)
    assert [c["status"] for c in changes_before(control_db, STARTED)] == ["failed"]
    assert changes_before(control_db, STARTED, window_ns=10 * MINUTE) == []
