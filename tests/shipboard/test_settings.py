"""Settings: precedence of argument over environment over `.env` over default; README lists all."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from shipboard.cli import build_parser, settings_from
from shipboard.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_argument_beats_environment_beats_dotenv_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SHIPBOARD_HTTP_PORT=7001\nSHIPBOARD_STATSD_PORT=7002\n")
    monkeypatch.setenv("SHIPBOARD_HTTP_PORT", "7003")
    assert Settings().graphite_port == 2003  # default
    assert Settings().statsd_port == 7002  # .env
    assert Settings().http_port == 7003  # environment over .env
    args = build_parser().parse_args(["run", "--http-port", "7004"])
    assert settings_from(args).http_port == 7004  # argument over environment


def test_flags_map_onto_settings():
    args = build_parser().parse_args(
        ["run", "--percentiles", "50,99.9", "--no-agent", "--retention-raw", "3d"]
    )
    settings = settings_from(args)
    assert settings.percentiles == (50.0, 99.9)
    assert settings.agent is False
    assert settings.tiers()[0].retention_ns == 3 * 86400 * 10**9


def test_bad_duration_is_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"write e\.g\. 30s, 5m"):
        Settings(retention_raw="two days")
    assert Settings(retention_1h="1y").tiers()[3].retention_ns == 365 * 86400 * 10**9


def test_readme_lists_every_setting():
    text = README.read_text()
    missing = [name for name in Settings.model_fields if f"| {name} |" not in text]
    assert not missing, f"README's settings table lacks {missing}"


def test_every_setting_is_a_flag_of_run_but_the_token_and_role_is_runs_own():
    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    run = commands.choices["run"]
    dests = {action.dest.removeprefix("setting_") for action in run._actions}
    assert set(Settings.model_fields) - dests == {"token"}
    args = build_parser().parse_args(["run", "--max-body", "7", "--webhook-allowlist", "a, b"])
    assert (settings_from(args).max_body_bytes, settings_from(args).webhook_allowlist) == (
        7,
        ("a", "b"),
    )
