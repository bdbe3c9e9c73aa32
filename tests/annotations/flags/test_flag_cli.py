"""`shipboard flags export|import` through the real command against a live server."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from annotations.app import ControlPlane
from annotations.control.notes import list_annotations
from annotations.control.tokens import create_token
from annotations.flags.store import create_flag, delete_flag, list_flags, patch_flag
from shipboard.flags_cli import FlagsCommandError, from_yaml, to_yaml
from tests.annotations.flag_server import LiveServer

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

FLAGS = [
    {
        "key": "new-search",
        "description": "Search v2",
        "owner": "search",
        "environments": {"prod": {"percentage": 10}, "staging": {"percentage": 100}},
    },
    {
        "key": "checkout",
        "environments": {
            "prod": {"allow_groups": ["staff"], "variants": [{"name": "a", "weight": 1}]}
        },
    },
    {"key": "old-banner", "enabled": False},
]


@pytest.fixture
def control(control_url: str, tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane.open(control_url, tmp_path)
    for doc in FLAGS:
        create_flag(plane.db, doc, who="setup", now_ns=1)
    yield plane
    plane.close()


@pytest.fixture
def operator(control: ControlPlane) -> str:
    return create_token(control.db, "deployer", "operator")[1]


def shipboard(
    server: LiveServer, token: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPBOARD_")}
    return subprocess.run(
        [sys.executable, "-m", "shipboard.cli", "flags", *args, "--url", server.url],
        env={**env, "SHIPBOARD_TOKEN": token},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def server_yaml(control: ControlPlane) -> str:
    return to_yaml([stored.flag for stored in list_flags(control.db)])


def test_export_prints_every_flag_as_yaml(server, operator, control, tmp_path) -> None:
    done = shipboard(server, operator, "export", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == server_yaml(control)
    docs = yaml.safe_load(done.stdout)["flags"]
    assert [d["key"] for d in docs] == ["checkout", "new-search", "old-banner"]
    assert docs[1]["environments"]["prod"]["percentage"] == 10.0


def test_round_trip_with_a_dry_run_diff_first(server, operator, control, tmp_path) -> None:
    exported = shipboard(server, operator, "export", cwd=tmp_path).stdout
    path = tmp_path / "flags.yaml"
    path.write_text(exported)
    # The server drifts from the file: one flag moved, one deleted, one added.
    patch_flag(
        control.db, "new-search", {"environments": {"prod": {"percentage": 50}}}, who="x", now_ns=2
    )
    delete_flag(control.db, "checkout", who="x", now_ns=3)
    create_flag(control.db, {"key": "stray"}, who="x", now_ns=4)
    drifted = server_yaml(control)

    dry = shipboard(server, operator, "import", str(path), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "--- server/new-search\n+++ file/new-search\n" in dry.stdout
    assert "-    percentage: 50.0\n+    percentage: 10.0\n" in dry.stdout
    assert "+key: checkout\n" in dry.stdout
    assert "# stray: on the server, not in the file (kept; --prune deletes it)" in dry.stdout
    assert dry.stdout.endswith("1 to create, 1 to change, 0 to delete\n")
    assert server_yaml(control) == drifted

    applied = shipboard(server, operator, "import", str(path), "--prune", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert "--- server/stray\n+++ file/stray\n" in applied.stdout
    assert applied.stdout.endswith("1 to create, 1 to change, 1 to delete\napplied\n")
    assert server_yaml(control) == exported

    again = shipboard(server, operator, "import", str(path), "--prune", cwd=tmp_path)
    assert again.stdout == "no changes\n"
    # The changes went through the API: annotated as the token's owner.
    whos = {n.who for n in list_annotations(control.db, 0, 2**62, kinds=["flag"])}
    assert "deployer" in whos


def test_viewer_token_cannot_import(server, control, tmp_path) -> None:
    viewer = create_token(control.db, "dev", "viewer")[1]
    path = tmp_path / "flags.yaml"
    path.write_text(to_yaml([]).replace("flags: []", "flags:\n- key: brand-new"))
    done = shipboard(server, viewer, "import", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert "HTTP 403" in done.stderr
    assert [s.flag.key for s in list_flags(control.db)] == ["checkout", "new-search", "old-banner"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("flags: [", "not YAML"),
        ("- key: a", "`flags:` with a list"),
        ("flags:\n- key: a\n  colour: red", "flags[0]: colour: Extra inputs are not permitted"),
        ("flags:\n- key: a\n- key: a", "flags[1]: 'a' appears twice"),
    ],
)
def test_bad_files_name_the_problem(text: str, error: str) -> None:
    with pytest.raises(FlagsCommandError, match=re.escape(error)):
        from_yaml(text)


def test_a_bad_file_changes_nothing(server, operator, control, tmp_path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text("flags:\n- key: a\n- key: b\n  enabled: maybe\n")
    before = server_yaml(control)
    done = shipboard(server, operator, "import", str(path), "--prune", cwd=tmp_path)
    assert done.returncode == 1
    assert "flags[1]: enabled: Input should be a valid boolean" in done.stderr
    assert server_yaml(control) == before


def test_unreachable_server_is_a_clear_error(operator, tmp_path, control) -> None:
    live = LiveServer(control)
    live.start()
    live.stop()
    try:
        done = shipboard(live, operator, "export", cwd=tmp_path)
    finally:
        live.close()
    assert done.returncode == 1
    assert "cannot reach" in done.stderr


def test_yaml_round_trips_through_the_parser(control) -> None:
    flags = [stored.flag for stored in list_flags(control.db)]
    assert from_yaml(to_yaml(flags)) == flags


@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_the_command_error(text: str) -> None:
    with contextlib.suppress(FlagsCommandError):
        from_yaml(text)
