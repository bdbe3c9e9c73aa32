"""A deploy's windows, its overall status and its confounders, on a real control DB."""

from __future__ import annotations

import pytest

from annotations.control.deploys import DeployStart, finish_deploy, get_deploy, start_deploy
from annotations.control.notes import add_annotation
from annotations.verdicts.judge import confounders, overall, windows

S = 10**9


@pytest.mark.parametrize(
    ("verify_after_s", "expected_s"),
    [
        # settle = min(1 m, verify_after / 4); the before window as long as the after one
        (900, (1000 - 840, 1000, 1060 + 60, 1060 + 900)),
        (4, (1000 - 3, 1000, 1060 + 1, 1060 + 4)),
    ],
)
def test_windows(verify_after_s, expected_s):
    got = windows(1000 * S, 1060 * S, verify_after_s * S)
    assert got == tuple(t * S for t in expected_s)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["healthy", "regressed", "no_data"], "regressed"),
        (["no_data", "no_data"], "no_data"),
        (["healthy", "no_data"], "healthy"),
        (["healthy", "inconclusive"], "inconclusive"),
        (["inconclusive", "no_data", "regressed"], "regressed"),
    ],
)
def test_overall(statuses, expected):
    assert overall(statuses) == expected


def test_confounders_are_the_services_other_deploys_and_every_flag_change(control_db):
    def deploy(service: str, start_s: int) -> int:
        start = DeployStart(service=service, environment="prod", version=f"v{start_s}")
        return start_deploy(control_db, start, who="ci", start_ns=start_s * S)

    mine = deploy("web", 1000)
    finish_deploy(control_db, str(mine), status="succeeded", end_ns=1010 * S)
    other = deploy("web", 1100)
    deploy("db", 1100)  # another service's
    deploy("web", 5000)  # after the windows
    flag = add_annotation(
        control_db, "flag", start_ns=1200 * S, title="new-search prod: 10% -> 25%", who="ann"
    )
    got = confounders(control_db, get_deploy(control_db, str(mine)), 900 * S, 1300 * S)
    assert got == [
        {"kind": "deploy", "id": other, "title": "deploy web v1100 to prod", "start_ns": 1100 * S},
        {"kind": "flag", "id": flag, "title": "new-search prod: 10% -> 25%", "start_ns": 1200 * S},
    ]
