"""The flags SDK against a live server: same answers as /evaluate, 304 polls, outages."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.app import ControlPlane
from annotations.control.tokens import create_token
from annotations.flags.client import Flags, SnapshotError, parse_snapshot
from annotations.flags.store import create_flag, patch_flag
from tests.annotations.flag_server import LiveServer

EXPERIMENT = {
    "key": "checkout",
    "environments": {
        "prod": {
            "percentage": 30,
            "allow_users": ["ann"],
            "allow_groups": ["staff"],
            "variants": [{"name": "one-page", "weight": 70}, {"name": "classic", "weight": 30}],
        },
        "staging": {"percentage": 100},
    },
}


@pytest.fixture
def control(control_url: str, tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane.open(control_url, tmp_path)
    create_flag(plane.db, EXPERIMENT, who="test", now_ns=1)
    yield plane
    plane.close()


@pytest.fixture
def token(control: ControlPlane) -> str:
    return create_token(control.db, "app", "viewer")[1]


@pytest.fixture
def flags(server: LiveServer, token: str) -> Iterator[Flags]:
    client = Flags(server.url, token, "prod", poll_interval_s=0.05)
    yield client
    client.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def server_evaluation(server: LiveServer, token: str, user: str, groups: str) -> dict[str, object]:
    query = urllib.parse.urlencode({"user": user, "groups": groups, "environment": "prod"})
    request = urllib.request.Request(
        f"{server.url}/api/v1/flags/checkout/evaluate?{query}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


def test_sdk_answers_exactly_as_the_server_does(flags: Flags, server: LiveServer, token) -> None:
    assert flags.ready.is_set()
    assert flags.keys == ["checkout"]
    cases = [(f"user-{i}", "") for i in range(60)] + [("ann", ""), ("zed", "guests,staff")]
    for user, groups in cases:
        local = flags.evaluate("checkout", user, [g for g in groups.split(",") if g]).to_doc()
        assert local == server_evaluation(server, token, user, groups)
    assert {flags.variant("checkout", "ann"), flags.variant("checkout", "zed", ["staff"])} <= {
        "one-page",
        "classic",
    }
    assert flags.is_enabled("checkout", "ann")


def test_unknown_flag_is_off(flags: Flags) -> None:
    assert flags.evaluate("nope", "ann").to_doc() == {
        "key": "nope",
        "environment": "prod",
        "enabled": False,
        "variant": None,
        "reason": "default",
        "value": None,
    }
    assert not flags.is_enabled("nope", "ann")
    assert flags.variant("nope", "ann") is None


def test_unchanged_state_polls_as_304_and_changes_are_picked_up(
    server: LiveServer, token: str, control: ControlPlane
) -> None:
    with Flags(server.url, token, "prod", poll_interval_s=3600) as flags:
        assert flags.keys == ["checkout"]
        assert flags.refresh() is False  # 304: nothing new
        assert not flags.stale
        patch = {"environments": {"prod": {"enabled": False}}}
        patch_flag(control.db, "checkout", patch, who="test", now_ns=2)
        assert flags.is_enabled("checkout", "ann")
        assert flags.refresh() is True
        assert flags.evaluate("checkout", "ann").reason == "killed"


def test_server_going_away_keeps_the_last_snapshot_and_its_return_updates(
    flags: Flags, server: LiveServer, control: ControlPlane
) -> None:
    assert flags.is_enabled("checkout", "ann")
    server.stop()
    wait_for(lambda: flags.stale)
    assert flags.is_enabled("checkout", "ann")
    assert flags.variant("checkout", "ann") in {"one-page", "classic"}
    assert flags.refresh() is False
    patch_flag(control.db, "checkout", {"enabled": False}, who="test", now_ns=2)
    server.start()
    wait_for(lambda: not flags.is_enabled("checkout", "ann"))
    assert not flags.stale
    assert flags.evaluate("checkout", "ann").reason == "killed"


def test_no_server_at_start_means_every_flag_off_until_it_comes(
    control: ControlPlane, token: str
) -> None:
    server = LiveServer(control)
    try:
        server.start()
        server.stop()  # the port is known and nothing listens on it
        started = time.monotonic()
        with Flags(server.url, token, "prod", poll_interval_s=0.05, initial_wait_s=0.2) as flags:
            assert time.monotonic() - started < 2
            assert not flags.ready.is_set()
            assert flags.stale
            assert not flags.is_enabled("checkout", "ann")
            server.start()
            wait_for(lambda: flags.is_enabled("checkout", "ann"))
    finally:
        server.close()


def test_a_refused_token_serves_nothing(server: LiveServer) -> None:
    with Flags(server.url, "sb_wrong", "prod", poll_interval_s=3600, initial_wait_s=1) as flags:
        assert not flags.ready.is_set()
        assert flags.stale
        assert flags.keys == []


def test_close_stops_polling(flags: Flags, server: LiveServer, control: ControlPlane) -> None:
    flags.close()
    patch_flag(control.db, "checkout", {"enabled": False}, who="test", now_ns=2)
    time.sleep(0.2)
    assert flags.is_enabled("checkout", "ann")


@given(st.binary(max_size=300))
def test_arbitrary_snapshot_bytes_raise_only_snapshot_error(body: bytes) -> None:
    with contextlib.suppress(SnapshotError):
        parse_snapshot(body)


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'{"flags": 3}', b'{"flags": {"a": 1}}', b'{"flags": [{"key": "a", "x": 1}]}'],
)
def test_malformed_snapshots_are_refused(body: bytes) -> None:
    with pytest.raises(SnapshotError, match="bad snapshot"):
        parse_snapshot(body)


def test_snapshot_parses_what_the_server_sends() -> None:
    body = b'{"environment": "prod", "flags": [{"key": "a"}, {"key": "b", "enabled": false}]}'
    flags = parse_snapshot(body)
    assert sorted(flags) == ["a", "b"]
    assert flags["b"].enabled is False
