"""`shipboard rollout status|pause|resume FLAG ENVIRONMENT`: a guarded rollout from the terminal.

    shipboard rollout status new-search prod   # where the plan stands and its last judgement
    shipboard rollout pause new-search prod    # hold it at its step (operator)
    shipboard rollout resume new-search prod   # go on from the flag's percentage now

Each is one call of the API (`GET /api/v1/flags/{key}`, `POST …/rollout/pause|resume`), so roles,
the audit and the annotations are those of any client.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from annotations.control.verdict_text import metric_detail
from annotations.http_client import ApiClient, ApiError
from shipboard.settings import Settings

AddSettingFlags = Callable[[argparse.ArgumentParser], None]
ACTIONS = ("status", "pause", "resume")


def add_commands(commands: Any, add_setting_flags: AddSettingFlags) -> None:
    """Add `rollout status|pause|resume` to the `shipboard` subcommands."""
    rollout = commands.add_parser("rollout", help="See, pause or resume a guarded rollout.")
    rollout.add_argument("action", choices=ACTIONS)
    rollout.add_argument("flag", help="The flag's key.")
    rollout.add_argument("environment", help="The environment whose plan it is (prod, ...).")
    rollout.add_argument("--url", default=None, help="Shipboard's HTTP address (default: local).")
    rollout.add_argument("--token", help="API token; operator to pause or resume.")
    add_setting_flags(rollout)
    rollout.set_defaults(func=_run)


def state_text(flag: str, environment: str, state: Mapping[str, Any], now_ns: int) -> str:
    """`new-search prod: running, step 2 of 3 at 25% (next 100% in 4m 10s): the guards held`
    and a line per guard of the last evaluation."""
    head = f"{flag} {environment}: {state['status']}, step {state['step']} of {state['steps']}"
    head += f" at {state['percentage']:g}%"
    if state.get("next_step") is not None and state.get("next_at_ns") is not None:
        wait_s = max(0, round((state["next_at_ns"] - now_ns) / 1e9))
        head += f" (next {state['next_step']:g}% in {wait_s // 60}m {wait_s % 60}s)"
    lines = [f"{head}: {state['reason']}"]
    evaluation = state.get("last_evaluation") or {}
    lines += [f"  {metric_detail(m)}" for m in evaluation.get("metrics", [])]
    return "\n".join(lines) + "\n"


def _run(args: argparse.Namespace, settings: Settings) -> int:
    api = ApiClient(
        args.url or f"http://{settings.http_host}:{settings.http_port}",
        args.token or settings.token,
    )
    key = urllib.parse.quote(args.flag, safe="")
    environment = urllib.parse.quote(args.environment, safe="")
    try:
        if args.action == "status":
            found = api.call("GET", f"/api/v1/flags/{key}").get("rollout_state", {})
            state = found.get(args.environment)
            if state is None:
                print(f"{args.flag} has no rollout plan under way in {args.environment}")
                return 1
        else:
            path = f"/api/v1/flags/{key}/environments/{environment}/rollout/{args.action}"
            state = api.call("POST", path)
    except ApiError as error:
        print(f"shipboard rollout {args.action}: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(state_text(args.flag, args.environment, state, time.time_ns()))
    return 0
