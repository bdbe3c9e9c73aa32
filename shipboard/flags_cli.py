"""`shipboard flags export|import`: feature flags as code, a YAML file beside the application.

    shipboard flags export > flags.yaml
    shipboard flags import flags.yaml --dry-run   # the diff, nothing changed
    shipboard flags import flags.yaml             # the diff, then applied

Import creates the flags that are missing, merge-patches those that differ and, with `--prune`,
deletes the flags the file does not name. Every change goes through the API, so it is checked
against the caller's role, audited and recorded as an annotation like any other.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from annotations.flags.model import Flag, FlagError, make_merge_patch
from annotations.http_client import ApiClient, ApiError
from shipboard.settings import Settings

AddSettingFlags = Callable[[argparse.ArgumentParser], None]

HEADER = "# Shipboard feature flags: apply with `shipboard flags import <file>`.\n"


class FlagsCommandError(Exception):
    """The file is invalid: printed, exit 1."""


def add_commands(commands: Any, add_setting_flags: AddSettingFlags) -> None:
    """Add `flags export` and `flags import` to the `shipboard` subcommands."""
    flags = commands.add_parser("flags", help="Export or import feature flags as YAML.")
    actions = flags.add_subparsers(dest="flags_command", required=True, metavar="ACTION")

    export = actions.add_parser("export", help="Print every flag as YAML.")
    export.add_argument("--url", default=None, help="Shipboard's HTTP address (default: local).")
    export.add_argument("--token", help="API token (default: SHIPBOARD_TOKEN).")
    add_setting_flags(export)
    export.set_defaults(func=_export)

    load = actions.add_parser("import", help="Make the server's flags match a YAML file.")
    load.add_argument("file", type=Path, help="The YAML file, as `flags export` writes it.")
    load.add_argument("--dry-run", action="store_true", help="Show the diff, change nothing.")
    load.add_argument("--prune", action="store_true", help="Delete flags the file omits.")
    load.add_argument("--url", default=None, help="Shipboard's HTTP address (default: local).")
    load.add_argument("--token", help="API token, operator or admin (default: SHIPBOARD_TOKEN).")
    add_setting_flags(load)
    load.set_defaults(func=_import)


def server_flags(api: ApiClient) -> dict[str, Flag]:
    """The server's flags, by key."""
    docs = api.call("GET", "/api/v1/flags")["flags"]
    return {flag.key: flag for flag in map(Flag.from_doc, docs)}


def _api(args: argparse.Namespace, settings: Settings) -> ApiClient:
    base = args.url or f"http://{settings.http_host}:{settings.http_port}"
    return ApiClient(base, args.token or settings.token)


def to_yaml(flags: list[Flag]) -> str:
    docs = [flag.to_doc() for flag in sorted(flags, key=lambda f: f.key)]
    return HEADER + yaml.safe_dump({"flags": docs}, sort_keys=False, allow_unicode=True)


def from_yaml(text: str) -> list[Flag]:
    """The flags of a file, validated; FlagsCommandError names the first bad one."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FlagsCommandError(f"not YAML: {error}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("flags"), list):
        raise FlagsCommandError("the file must hold `flags:` with a list of flags")
    flags: dict[str, Flag] = {}
    for i, item in enumerate(doc["flags"]):
        try:
            flag = Flag.from_doc(item)
        except FlagError as error:
            raise FlagsCommandError(f"flags[{i}]: {error}") from None
        if flag.key in flags:
            raise FlagsCommandError(f"flags[{i}]: {flag.key!r} appears twice")
        flags[flag.key] = flag
    return list(flags.values())


@dataclass(frozen=True, slots=True)
class Plan:
    """What an import does: flags to create, to patch (with the patch) and to delete."""

    create: list[Flag]
    update: list[tuple[Flag, Flag]]
    delete: list[Flag]
    kept: list[str]

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def plan(current: dict[str, Flag], wanted: list[Flag], *, prune: bool) -> Plan:
    wanted_keys = {flag.key for flag in wanted}
    extra = [current[key] for key in sorted(set(current) - wanted_keys)]
    return Plan(
        create=[f for f in wanted if f.key not in current],
        update=[(current[f.key], f) for f in wanted if f.key in current and current[f.key] != f],
        delete=extra if prune else [],
        kept=[] if prune else [f.key for f in extra],
    )


def diff(plan: Plan) -> str:
    """A unified diff per flag, in the file's YAML form."""
    pieces: list[str] = []

    def show(key: str, before: Flag | None, after: Flag | None) -> None:
        old = _flag_yaml(before).splitlines(keepends=True)
        new = _flag_yaml(after).splitlines(keepends=True)
        pieces.extend(difflib.unified_diff(old, new, f"server/{key}", f"file/{key}"))

    for flag in plan.create:
        show(flag.key, None, flag)
    for before, after in plan.update:
        show(after.key, before, after)
    for flag in plan.delete:
        show(flag.key, flag, None)
    for key in plan.kept:
        pieces.append(f"# {key}: on the server, not in the file (kept; --prune deletes it)\n")
    summary = (
        f"{len(plan.create)} to create, {len(plan.update)} to change, {len(plan.delete)} to delete"
    )
    return "".join(pieces) + ("no changes\n" if plan.empty else f"{summary}\n")


def _flag_yaml(flag: Flag | None) -> str:
    if flag is None:
        return ""
    return yaml.safe_dump(flag.to_doc(), sort_keys=False, allow_unicode=True)


def apply(api: ApiClient, plan: Plan) -> None:
    for flag in plan.create:
        api.call("POST", "/api/v1/flags", flag.to_doc())
    for before, after in plan.update:
        patch = make_merge_patch(before.to_doc(), after.to_doc())
        api.call("PATCH", f"/api/v1/flags/{urllib.parse.quote(after.key)}", patch)
    for flag in plan.delete:
        api.call("DELETE", f"/api/v1/flags/{urllib.parse.quote(flag.key)}")


def _export(args: argparse.Namespace, settings: Settings) -> int:
    try:
        flags = server_flags(_api(args, settings))
    except ApiError as error:
        print(f"shipboard flags export: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(to_yaml(list(flags.values())))
    return 0


def _import(args: argparse.Namespace, settings: Settings) -> int:
    api = _api(args, settings)
    try:
        wanted = from_yaml(args.file.read_text(encoding="utf-8"))
        steps = plan(server_flags(api), wanted, prune=args.prune)
        sys.stdout.write(diff(steps))
        if args.dry_run or steps.empty:
            return 0
        apply(api, steps)
    except (FlagsCommandError, ApiError, OSError) as error:
        print(f"shipboard flags import: {error}", file=sys.stderr)
        return 1
    print("applied")
    return 0
