"""The `shipboard` command: `run`, `agent`, `query`, the control-plane and alerting commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, get_origin

from shipboard import alerts_cli, control_cli, flags_cli, relay_command, rollout_cli
from shipboard.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _comma_separated(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every field of `Settings` (its metadata says where the flag's name or
    help differ from the field's); unset flags fall back to SHIPBOARD_* variables and defaults."""
    group = parser.add_argument_group("settings (also SHIPBOARD_<NAME> variables)")
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if "flag" in extra and extra["flag"] is None:
            continue
        flag = str(extra.get("flag") or "--" + name.removesuffix("_s").replace("_", "-"))
        help_text = str(extra.get("flag_help") or field.description)
        dest = f"setting_{name}"
        if field.annotation is bool:
            const = not field.default
            flag = flag if const else "--no-" + flag.removeprefix("--")
            group.add_argument(flag, dest=dest, action="store_const", const=const, help=help_text)
        elif get_origin(field.annotation) is tuple:
            if extra.get("flag_repeat"):
                group.add_argument(
                    flag,
                    dest=dest,
                    action="append",
                    help=f"{help_text} Repeat for more.",
                    metavar=name.upper(),
                )
            else:
                default = ",".join(
                    f"{value:g}" if isinstance(value, float) else str(value)
                    for value in field.default
                )
                group.add_argument(
                    flag,
                    dest=dest,
                    type=_comma_separated,
                    help=f"{help_text} Comma separated ({default}).",
                    metavar=name.upper(),
                )
        else:
            kind: Callable[[str], object] = str  # pydantic parses the rest (paths, patterns)
            if field.annotation is int:
                kind = int
            elif field.annotation is float:
                kind = float
            group.add_argument(flag, dest=dest, type=kind, help=help_text, metavar=name.upper())


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
    rollout_cli.add_commands(commands, add_setting_flags)
    alerts_cli.add_commands(commands, add_setting_flags)
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
