"""The `shipboard` command: `run`, `agent`, `query` and the control-plane commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from shipboard import control_cli, flags_cli, relay_command
from shipboard.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]

# Flags shared by every command that touches the service, mapped to Settings fields.
_SETTING_FLAGS: dict[str, tuple[str, type]] = {
    "--data-dir": ("data_dir", str),
    "--http-host": ("http_host", str),
    "--http-port": ("http_port", int),
    "--ingest-host": ("ingest_host", str),
    "--statsd-port": ("statsd_port", int),
    "--graphite-port": ("graphite_port", int),
    "--dash-port": ("dash_port", int),
    "--flush-interval": ("flush_interval_s", float),
    "--idle-flushes": ("idle_flushes", int),
    "--max-body": ("max_body_bytes", int),
    "--max-series": ("max_series", int),
    "--max-points": ("max_points", int),
    "--retention-raw": ("retention_raw", str),
    "--retention-1m": ("retention_1m", str),
    "--retention-10m": ("retention_10m", str),
    "--retention-1h": ("retention_1h", str),
    "--agent-interval": ("agent_interval_s", float),
    "--log-level": ("log_level", str),
    "--control-db": ("control_db", str),
    "--ingest-token": ("ingest_token", str),
    "--public-url": ("public_url", str),
    "--store": ("store", str),
    "--influx-url": ("influx_url", str),
    "--influx-api": ("influx_api", str),
    "--influx-token": ("influx_token", str),
    "--influx-org": ("influx_org", str),
    "--influx-bucket": ("influx_bucket", str),
    "--influx-user": ("influx_user", str),
    "--influx-password": ("influx_password", str),
    "--influx-db": ("influx_db", str),
    "--spool-max-bytes": ("spool_max_bytes", int),
    "--notify-max-tries": ("notify_max_tries", int),
    "--notify-retry": ("notify_retry_s", float),
    "--notify-timeout": ("notify_timeout_s", float),
}


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """Add every settings flag; unset flags fall back to SHIPBOARD_* variables and defaults."""
    group = parser.add_argument_group("settings (also SHIPBOARD_<NAME> variables)")
    for flag, (name, kind) in _SETTING_FLAGS.items():
        description = Settings.model_fields[name].description
        group.add_argument(
            flag, dest=f"setting_{name}", type=kind, help=description, metavar=name.upper()
        )
    group.add_argument(
        "--percentiles",
        dest="setting_percentiles",
        type=lambda text: tuple(float(p) for p in text.split(",")),
        help="Timer percentiles, comma separated (90,95,99).",
    )
    group.add_argument(
        "--notify",
        dest="setting_notify",
        action="append",
        help="An announcement target (repeat for more): irc://…, https://…, json+https://…",
    )
    group.add_argument(
        "--webhook-allowlist",
        dest="setting_webhook_allowlist",
        type=lambda text: tuple(h.strip() for h in text.split(",") if h.strip()),
        help="Hosts webhook targets may name, comma separated (hooks.slack.com).",
    )
    group.add_argument(
        "--no-agent",
        dest="setting_agent",
        action="store_const",
        const=False,
        help="Do not run the host agent inside `run`.",
    )
    group.add_argument(
        "--anonymous-read",
        dest="setting_anonymous_read",
        action="store_const",
        const=True,
        help="Let requests without a token read (wall screens).",
    )
    group.add_argument(
        "--no-uvloop",
        dest="setting_uvloop",
        action="store_const",
        const=False,
        help="Use asyncio's default event loop.",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings with the command-line flags given taking precedence over the environment."""
    overrides: dict[str, Any] = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return Settings(**overrides)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from shipboard.server import run_server

    return run_server(settings)


def _agent(args: argparse.Namespace, settings: Settings) -> int:
    from shipboard.agent_command import run_agent

    return run_agent(args, settings)


def _query(args: argparse.Namespace, settings: Settings) -> int:
    from shipboard.query_command import run_query_command

    return run_query_command(args, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipboard", description="Metrics and shared graphs, with every change drawn on them."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="Start every listener, the API and the dashboards.")
    add_setting_flags(run)
    run.add_argument(
        "--role",
        dest="setting_role",
        choices=("all", "collector", "api", "dashboards", "aggregator"),
        help=Settings.model_fields["role"].description,
    )
    run.set_defaults(func=_run)

    agent = commands.add_parser("agent", help="Send this host's CPU, memory, disk and network.")
    agent.add_argument("--url", default=None, help="Shipboard's HTTP address (default: local).")
    agent.add_argument("--host-tag", default=None, help="The `host` tag (default: hostname).")
    agent.add_argument("--once", action="store_true", help="Send one sample and exit.")
    add_setting_flags(agent)
    agent.set_defaults(func=_agent)

    query = commands.add_parser("query", help="Print a metric's series, as the query API does.")
    query.add_argument("metric", help="Metric name (a glob is allowed).")
    query.add_argument("--tags", default="", help="Filters: k:v,k2:glob*")
    query.add_argument("--from", dest="start", default="-1h", help="-15m, ISO 8601 or unix s.")
    query.add_argument("--to", dest="end", default="now")
    query.add_argument("--step", default="auto", help="Bucket width (e.g. 1m) or auto.")
    query.add_argument("--agg", default="mean", help="mean, min, max, sum, count or last.")
    query.add_argument("--group-by", default="", help="Tag keys to merge series by.")
    query.add_argument("--format", choices=("table", "json", "csv"), default="table")
    query.add_argument("--url", default=None, help="Shipboard's HTTP address (default: local).")
    add_setting_flags(query)
    query.set_defaults(func=_query)

    control_cli.add_commands(commands, add_setting_flags)
    flags_cli.add_commands(commands, add_setting_flags)
    relay_command.add_commands(commands, add_setting_flags)

    return parser


# Options whose values often start with "-" (relative times), which argparse would take for flags.
_DASHED_VALUES = ("--from", "--to")


def _join_dashed_values(argv: Sequence[str]) -> list[str]:
    """`--from -15m` -> `--from=-15m`, so relative times read as users write them."""
    joined: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--":  # what follows belongs to a wrapped command (`shipboard deploy`)
            joined.append(item)
            joined.extend(items)
            break
        if item in _DASHED_VALUES:
            value = next(items, None)
            joined.append(item if value is None else f"{item}={value}")
        else:
            joined.append(item)
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_join_dashed_values(sys.argv[1:] if argv is None else argv))
    try:
        settings = settings_from(args)
    except ValueError as error:
        print(f"shipboard: bad setting: {error}", file=sys.stderr)
        return 2
    handler: Handler = args.func
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
