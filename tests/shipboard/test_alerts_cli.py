"""`shipboard rules check|test`, `alerts`, `silence` and `deploy --silence`: the real command
in a subprocess, against rule files, a store seeded in tmp_path and a live control app."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.alerts.silences import Silence, list_silences
from annotations.app import ControlPlane
from annotations.control.timespec import format_time
from annotations.control.tokens import create_token
from annotations.http_client import ApiClient
from shipboard.alerts_cli import SilenceLease, _matcher, table
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import NS_PER_S, Samples, Series
from tests.annotations.alerts.stored import save_all, stored
from tests.annotations.flag_server import LiveServer

SHIPBOARD = Path(sys.executable).with_name("shipboard")
MINUTE_NS = 60 * NS_PER_S
ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
- name: QueueBacklog
  labels: {severity: page}
  query: {metric: queue.depth, agg: max, group_by: [service]}
  op: ">"
  threshold: 10
  window: 1m
  interval: 1m
  for: 2m
"""
BAD = """\
rules:
  - name: HighErrorRate
    query: {metric: http.errors.count, agg: sum}
    op: "=>"
    threshold: 0.02
  - name: NoThreshold
    query: {metric: cpu.idle}
    op: "<"
    for: 5 minutes
"""


def shipboard(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SHIPBOARD), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


@pytest.mark.slow
def test_rules_check_counts_the_rules_of_good_files(tmp_path: Path) -> None:
    good = tmp_path / "queue.yaml"
    good.write_text(GOOD)
    example = ROOT / "shipboard" / "rules.example.yaml"
    done = shipboard("rules", "check", str(good), str(example))
    assert (done.returncode, done.stdout, done.stderr) == (0, "5 rules OK\n", "")


@pytest.mark.slow
def test_rules_check_names_the_file_and_line_of_every_error(tmp_path: Path) -> None:
    bad, good, again = tmp_path / "bad.yaml", tmp_path / "good.yaml", tmp_path / "again.yaml"
    bad.write_text(BAD)
    good.write_text(GOOD)
    again.write_text("# the same rule twice\n" + GOOD)
    done = shipboard("rules", "check", str(bad), str(good), str(again), str(tmp_path / "no.yaml"))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{bad}:4: rule HighErrorRate: op: Input should be '>', '>=', '<', '<=', '==' or '!='",
        f"{bad}:6: rule NoThreshold: threshold: Field required",
        f"{bad}:9: rule NoThreshold: for: '5 minutes' is not a duration"
        " (write e.g. 30s, 5m, 6h, 7d, 1y)",
        f"{again}:2: rule QueueBacklog: duplicate name (first in {good}:1)",
        f"{tmp_path / 'no.yaml'}:1: no such rule file",
    ]


def queue_depth(t0_ns: int, spike: tuple[int, int]) -> Samples:
    """queue.depth of web (1, but 50 in [spike)) and api (2) every 10 s for two hours."""
    times = np.arange(t0_ns, t0_ns + 120 * MINUTE_NS, 10 * NS_PER_S, dtype=np.int64)
    web = np.where((times >= spike[0]) & (times < spike[1]), 50.0, 1.0)
    series = (
        Series.of("queue.depth", {"service": "web"}),
        Series.of("queue.depth", {"service": "api"}),
    )
    return Samples(
        series,
        np.repeat(np.arange(2, dtype=np.int32), len(times)),
        np.tile(times, 2),
        np.concatenate([web, np.full(len(times), 2.0)]),
    )


@pytest.mark.slow
def test_rules_test_replays_a_spike_that_fires_and_resolves_at_known_times(
    tmp_path: Path,
) -> None:
    hour_ns = 60 * MINUTE_NS
    t0_ns = time.time_ns() // hour_ns * hour_ns - 3 * hour_ns
    spike = (t0_ns + 60 * MINUTE_NS, t0_ns + 70 * MINUTE_NS)
    data_dir = tmp_path / "data"
    with EmbeddedStore(data_dir / "metrics", Settings(data_dir=data_dir).tiers()) as store:
        store.write(queue_depth(t0_ns, spike))
    rules = tmp_path / "queue.yaml"
    rules.write_text(GOOD)
    start, end = format_time(t0_ns), format_time(t0_ns + 2 * hour_ns)

    done = shipboard(
        "rules", "test", str(rules), "--from", start, "--to", end, "--data-dir", str(data_dir)
    )

    # Evaluated on the minute over the minute before: the first window of the spike holds
    # (pending), two minutes later it fires; the first window after the spike resolves it.
    fired, resolved = format_time(spike[0] + 3 * MINUTE_NS), format_time(spike[1] + MINUTE_NS)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"QueueBacklog ({rules}:1): fired 1 time in 121 evaluations every 1m00s"
        f" from {start} to {end}",
        f"  service=web severity=page: fired {fired}, resolved {resolved} after 8m00s (value 50)",
    ]


@pytest.mark.slow
def test_rules_test_refuses_a_bad_file_and_bad_times(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    done = shipboard("rules", "test", str(bad), "--data-dir", str(tmp_path))
    assert done.returncode == 1
    assert done.stdout.startswith(f"{bad}:4: rule HighErrorRate: op:")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    done = shipboard("rules", "test", str(good), "--from", "yesterday", "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "'yesterday' is not a time" in done.stderr


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane.open("", tmp_path / "control")
    yield plane
    plane.close()


@pytest.fixture
def live(control: ControlPlane) -> Iterator[LiveServer]:
    server = LiveServer(control)
    server.start()
    yield server
    server.close()


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line)


@pytest.mark.slow
def test_alerts_and_silences_through_the_api(control: ControlPlane, live: LiveServer) -> None:
    db = control.db
    viewer = create_token(db, "alice", "viewer")[1]
    operator = create_token(db, "bob", "operator")[1]
    now_ns = time.time_ns()
    fired_ns, pending_ns = now_ns - 7 * MINUTE_NS, now_ns - 30 * NS_PER_S
    web = {"service": "web", "host": "web-1"}
    save_all(
        db,
        stored("HighErrorRate", "firing", web, 0.031, fired_ns, now_ns, "web errors at 3.1%"),
        stored("HighErrorRate", "resolved", {"service": "api"}, 0.0, fired_ns, now_ns),
        stored("QueueBacklog", "pending", {}, 12.0, pending_ns, now_ns),
    )
    api = ("--url", live.url, "--token")

    done = shipboard("alerts", *api, viewer)
    assert done.returncode == 0, done.stderr
    header, first, second = done.stdout.splitlines()
    assert cells(header) == ["STATE", "RULE", "LABELS", "VALUE", "SINCE", "SILENCED BY", "SUMMARY"]
    assert cells(first)[:4] == ["firing", "HighErrorRate", "host=web-1 service=web", "0.031"]
    assert re.fullmatch(re.escape(format_time(fired_ns)) + r" \(7m0\ds ago\)", cells(first)[4])
    assert cells(first)[5:] == ["-", "web errors at 3.1%"]
    assert cells(second)[:4] == ["pending", "QueueBacklog", "-", "12"]

    refused = shipboard(
        "silence",
        "add",
        "--match",
        "alertname=HighErrorRate",
        "--until",
        "+2h",
        "--comment",
        "reindexing",
        *api,
        viewer,
    )
    assert refused.returncode == 1
    assert "HTTP 403" in refused.stderr
    added = shipboard(
        "silence",
        "add",
        "--match",
        "alertname=HighErrorRate",
        "--match",
        "host=web*",
        "--until",
        "+2h",
        "--comment",
        "reindexing",
        *api,
        operator,
    )
    assert added.returncode == 0, added.stderr
    [silence] = list_silences(db, time.time_ns())
    assert silence.matchers == {"alertname": "HighErrorRate", "host": "web*"}
    assert silence.ends_ns - silence.starts_ns == 2 * 60 * MINUTE_NS
    assert (silence.comment, silence.who) == ("reindexing", "bob")
    assert added.stdout == (
        f"silence {silence.id} until {format_time(silence.ends_ns)}:"
        " alertname=HighErrorRate host=web*\n"
    )
    listed = shipboard("silence", "list", *api, viewer).stdout.splitlines()
    assert cells(listed[1]) == [
        str(silence.id),
        "active",
        format_time(silence.ends_ns),
        "alertname=HighErrorRate host=web*",
        "bob",
        "reindexing",
    ]
    silenced = shipboard("alerts", *api, viewer).stdout.splitlines()[1]
    assert cells(silenced)[5] == str(silence.id)

    expired = shipboard("silence", "expire", str(silence.id), *api, operator)
    assert expired.returncode == 0, expired.stderr
    assert expired.stdout.startswith(f"silence {silence.id} expired at ")
    assert shipboard("silence", "list", *api, viewer).stdout == "no active silences\n"
    assert (
        cells(shipboard("silence", "list", "--all", *api, viewer).stdout.splitlines()[1])[1]
        == "expired"
    )
    assert (
        shipboard(
            "silence",
            "add",
            "--match",
            "nolabel",
            "--until",
            "+1h",
            "--comment",
            "x",
            *api,
            operator,
        ).returncode
        == 2
    )


def start_deploy(
    control: ControlPlane, live: LiveServer, tmp_path: Path, seconds: float
) -> tuple[subprocess.Popen[str], list[Silence]]:
    """`shipboard deploy --silence …` of web around a command that sleeps `seconds`, and the
    silences it made once they are there."""
    token = create_token(control.db, "ci", "operator")[1]
    args = (
        *("deploy", "--service", "web", "--env", "prod", "--version", "v2"),
        *("--silence", "HighErrorRate", "--silence", "SlowCheckout"),
        *("--server", live.url, "--token", token, "--spool-dir", str(tmp_path / "spool")),
        *("--", sys.executable, "-c", f"import time; time.sleep({seconds})"),
    )
    process = subprocess.Popen(
        [str(SHIPBOARD), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = list_silences(control.db, time.time_ns(), active_only=True)
        if len(found) == 2:
            return process, found
        time.sleep(0.05)
    process.kill()
    process.communicate()
    raise AssertionError("the deploy made no silences")


@pytest.mark.slow
def test_deploy_silences_its_rules_of_its_service_while_the_command_runs(
    control: ControlPlane, live: LiveServer, tmp_path: Path
) -> None:
    process, silences = start_deploy(control, live, tmp_path, 2)
    assert sorted(s.matchers["alertname"] for s in silences) == ["HighErrorRate", "SlowCheckout"]
    assert {s.matchers["service"] for s in silences} == {"web"}
    assert {s.comment for s in silences} == {"deploy of web v2 to prod running"}
    assert all(110 * NS_PER_S < s.ends_ns - time.time_ns() <= 120 * NS_PER_S for s in silences)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    # Expired when the command ended: an alert of the rule after the deploy pages again.
    assert list_silences(control.db, time.time_ns(), active_only=True) == []
    assert {s.state for s in list_silences(control.db, time.time_ns())} == {"expired"}


@pytest.mark.slow
def test_the_silences_of_a_deploy_whose_wrapper_dies_lapse_by_themselves(
    control: ControlPlane, live: LiveServer, tmp_path: Path
) -> None:
    process, silences = start_deploy(control, live, tmp_path, 1)
    process.kill()
    process.communicate(timeout=30)
    time.sleep(1.5)  # the command it ran ends by itself
    # Nobody expired them, and nobody renews them: they end within the 2 minutes they had.
    left = list_silences(control.db, time.time_ns(), active_only=True)
    assert {s.id for s in left} == {s.id for s in silences}
    assert all(s.ends_ns <= time.time_ns() + 120 * NS_PER_S for s in left)


@pytest.mark.slow
def test_a_silence_lease_is_renewed_with_its_id_and_expired_on_leaving(
    control: ControlPlane, live: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    api = ApiClient(live.url, create_token(control.db, "ci", "operator")[1])
    with SilenceLease(api, [{"alertname": "X"}], "testing", lease_s=60, renew_s=0.2) as lease:
        [first] = list_silences(control.db, time.time_ns())
        time.sleep(0.7)
        [renewed] = list_silences(control.db, time.time_ns())
        assert lease.ids == [first.id]
    assert renewed.id == first.id
    assert renewed.ends_ns > first.ends_ns
    [expired] = list_silences(control.db, time.time_ns())
    assert (expired.id, expired.state) == (first.id, "expired")
    assert capsys.readouterr().err == ""


def test_a_silence_lease_without_a_server_says_so_and_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = ApiClient("http://127.0.0.1:9", "token", timeout_s=1)
    with SilenceLease(api, [{"alertname": "X", "service": "web"}], "testing") as lease:
        assert lease.ids == [None]
    assert (
        "shipboard: cannot silence alertname=X service=web: cannot reach" in capsys.readouterr().err
    )


@pytest.mark.slow
@given(
    st.text(st.characters(blacklist_characters="="), min_size=1).filter(str.strip),
    st.text(),
)
def test_a_matcher_is_the_label_before_the_first_equals_sign_and_the_glob_after(
    label: str, glob: str
) -> None:
    assert _matcher(f"{label}={glob}") == (label.strip(), glob)


def test_a_table_pads_every_column_but_the_last() -> None:
    assert table(["ID", "NAME", "NOTE"], [["1", "alpha", "x"], ["22", "b", ""]]) == (
        "ID  NAME   NOTE\n1   alpha  x\n22  b"
    )
