"""`shipboard token create|list|revoke` and `shipboard deploy … -- CMD` (spooled when offline,
its alerts silenced while it runs with `--silence RULE`, its verdict waited for with
`--verify`)."""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from annotations.alerts.model import ALERTNAME
from annotations.app import ControlPlane
from annotations.control.tokens import ROLES, create_token, list_tokens, revoke_token
from annotations.http_client import ApiClient, ApiError
from shipboard.alerts_cli import SilenceLease
from shipboard.settings import Settings
from shipboard.verify_cli import NO_VERDICT_EXIT, REGRESSED_EXIT, wait_for_verdict
from storage.files import replace_file
from storage.timeparse import parse_duration_ns

DEFAULT_SERVER = "http://127.0.0.1:8080"
LOG_TAIL_BYTES = 8192
HTTP_TIMEOUT_S = 5.0


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_setting_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add `token` and `deploy` to the `shipboard` command."""
    token = commands.add_parser("token", help="Create, list or revoke API tokens.")
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="Create a token and print it (shown once).")
    create.add_argument("--name", required=True, help="Who or what uses it: alice, ci, wall.")
    create.add_argument("--role", choices=ROLES, default="viewer")
    create.set_defaults(func=_token_create)
    listing = actions.add_parser("list", help="List tokens (never their secret).")
    listing.add_argument("--all", action="store_true", help="Include revoked tokens.")
    listing.set_defaults(func=_token_list)
    revoke = actions.add_parser("revoke", help="Revoke a token by id.")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=_token_revoke)
    for parser in (create, listing, revoke):
        add_setting_flags(parser)

    deploy = commands.add_parser(
        "deploy", help="Record a deploy around a command: shipboard deploy … -- ./deploy.sh"
    )
    deploy.add_argument("--service")
    deploy.add_argument("--env", dest="environment")
    deploy.add_argument("--version", dest="deploy_version", help="A commit or tag.")
    deploy.add_argument("--description", default="")
    deploy.add_argument("--url", default="", help="Change set or diff.")
    deploy.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="METRIC",
        help="A metric this change may move and its verdict judges: http.errors.count/"
        "http.requests.count (a ratio), http.latency:p99, cpu.user. Repeat, or comma separate.",
    )
    deploy.add_argument(
        "--verify",
        action="store_true",
        help="After the command succeeded, wait for the deploy's verdict and print it. Exit"
        f" codes: the command's when it failed; else 0 healthy, inconclusive, no_data or nothing"
        f" to verify, {REGRESSED_EXIT} regressed, {NO_VERDICT_EXIT} no verdict to be had (server"
        " unreachable, or still pending a minute past due).",
    )
    deploy.add_argument(
        "--verify-after",
        metavar="DURATION",
        help="How long after the finish the verdict is taken (e.g. 2m; the server's default"
        " is 15m).",
    )
    deploy.add_argument("--risk", default="")
    deploy.add_argument("--rollback", default="", help="How to undo it.")
    deploy.add_argument(
        "--silence",
        action="append",
        default=[],
        metavar="RULE",
        help="Silence this rule's alerts of --service while the command runs (they lapse"
        " within 2 min if this dies). Repeat for more.",
    )
    deploy.add_argument("--server", help=f"Shipboard's URL (SHIPBOARD_URL, {DEFAULT_SERVER}).")
    deploy.add_argument("--token", help="API token (default: SHIPBOARD_TOKEN).")
    deploy.add_argument("--spool-dir", type=Path, help="Default: ~/.shipboard/spool.")
    deploy.add_argument(
        "--flush-spool", action="store_true", help="Send spooled records; with no command, exit."
    )
    deploy.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command to run")
    deploy.set_defaults(func=_deploy)


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    control = ControlPlane.open(settings.control_db, settings.data_dir)
    try:
        info, token = create_token(control.db, args.name, args.role)
    finally:
        control.close()
    print(f"token {info.id} for {info.name} ({info.role}), shown once:", file=sys.stderr)
    print(token)
    return 0


def _token_list(args: argparse.Namespace, settings: Settings) -> int:
    control = ControlPlane.open(settings.control_db, settings.data_dir)
    try:
        tokens = list_tokens(control.db, include_revoked=args.all)
    finally:
        control.close()
    print(f"{'ID':>5}  {'NAME':<20} {'ROLE':<9} {'CREATED':<20} REVOKED")
    for t in tokens:
        revoked = _iso(t.revoked_ns) if t.revoked_ns is not None else "-"
        print(f"{t.id:>5}  {t.name:<20} {t.role:<9} {_iso(t.created_ns):<20} {revoked}")
    return 0


def _token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    control = ControlPlane.open(settings.control_db, settings.data_dir)
    try:
        info = revoke_token(control.db, args.id)
    except LookupError as error:
        print(f"shipboard: {error}", file=sys.stderr)
        return 1
    finally:
        control.close()
    print(f"revoked token {info.id} ({info.name})", file=sys.stderr)
    return 0


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Spool:
    """Records waiting for the server, one file each, sent in the order they were written.

    A record is written (and fsync'd) before it is sent and deleted once the server took it;
    the server ignores a resent start (its idempotency key) and a resent finish changes nothing,
    so a crash between send and delete duplicates nothing."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.rejected = directory / "rejected"

    def add(self, path: str, body: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
        replace_file(
            self.directory / name,
            orjson.dumps({"path": path, "body": body}),
            temporary=self.directory / f".{name}.tmp",
        )

    def pending(self) -> list[Path]:
        return sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []

    def flush(self, server: ApiClient) -> int:
        """Send what is pending, oldest first; stop at the first record the server cannot take
        now. Returns how many records are still pending."""
        with self._locked():
            for record_path in self.pending():
                record = orjson.loads(record_path.read_bytes())
                try:
                    server.call("POST", record["path"], record["body"])
                except ApiError as error:
                    if error.retryable:
                        print(f"shipboard: spooled, will retry: {error}", file=sys.stderr)
                        break
                    # The server will never accept it; set aside, so it blocks nothing.
                    self.rejected.mkdir(exist_ok=True)
                    record_path.rename(self.rejected / record_path.name)
                    print(f"shipboard: server refused a record: {error}", file=sys.stderr)
                    continue
                record_path.unlink()
            return len(self.pending())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def run_command(cmd: list[str]) -> tuple[int, str]:
    """Run `cmd`, streaming its output (stderr merged) to ours; its exit code and output tail."""
    tail: collections.deque[bytes] = collections.deque()
    size = 0
    try:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as error:
        message = f"shipboard: cannot run {cmd[0]}: {error}"
        print(message, file=sys.stderr)
        return 127, message
    assert process.stdout is not None
    out = sys.stdout.buffer
    try:
        while chunk := os.read(process.stdout.fileno(), 65536):
            out.write(chunk)
            out.flush()
            tail.append(chunk)
            size += len(chunk)
            while size - len(tail[0]) >= LOG_TAIL_BYTES:
                size -= len(tail.popleft())
    except KeyboardInterrupt:
        # The command got the same Ctrl-C; record how it ended.
        pass
    code = process.wait()
    process.stdout.close()
    text = b"".join(tail)[-LOG_TAIL_BYTES:].decode("utf-8", "replace")
    return (128 - code if code < 0 else code), text


def _deploy(args: argparse.Namespace, settings: Settings) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    server = ApiClient(
        args.server or os.environ.get("SHIPBOARD_URL") or DEFAULT_SERVER,
        args.token or settings.token,
        timeout_s=HTTP_TIMEOUT_S,
    )
    spool = Spool(args.spool_dir or Path.home() / ".shipboard" / "spool")
    if not cmd:
        if not args.flush_spool:
            print("shipboard deploy: give the command after --", file=sys.stderr)
            return 2
        left = spool.flush(server)
        print(f"shipboard: {left} record(s) still spooled", file=sys.stderr)
        return 0 if left == 0 else 1
    required = {
        "--service": args.service,
        "--env": args.environment,
        "--version": args.deploy_version,
    }
    missing = [flag for flag, value in required.items() if not value]
    if missing:
        print(f"shipboard deploy: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        verify_after_s = parse_duration_ns(args.verify_after) / 1e9 if args.verify_after else None
    except ValueError as error:
        print(f"shipboard deploy: --verify-after: {error}", file=sys.stderr)
        return 2

    key = f"deploy-{uuid.uuid4().hex}"
    spool.add(
        "/api/v1/deploys",
        {
            "service": args.service,
            "environment": args.environment,
            "version": args.deploy_version,
            "description": args.description,
            "url": args.url,
            "watch": [w.strip() for item in args.watch for w in item.split(",") if w.strip()],
            "risk": args.risk,
            "rollback": args.rollback,
            "start_ns": time.time_ns(),
            "idempotency_key": key,
        }
        | ({"verify_after": args.verify_after} if args.verify_after else {}),
    )
    spool.flush(server)
    started = time.monotonic()
    silences = [{ALERTNAME: rule, "service": args.service} for rule in args.silence]
    comment = f"deploy of {args.service} {args.deploy_version} to {args.environment} running"
    with SilenceLease(server, silences, comment) if silences else contextlib.nullcontext():
        code, tail = run_command(cmd)
    status = "succeeded" if code == 0 else "failed"
    spool.add(
        f"/api/v1/deploys/{key}/finish",
        {"status": status, "end_ns": time.time_ns(), "exit_code": code, "log_tail": tail},
    )
    left = spool.flush(server)
    where = "recorded" if left == 0 else f"spooled in {spool.directory} (sent on the next deploy)"
    duration_s = time.monotonic() - started
    print(f"shipboard: deploy {status} (exit {code}, {duration_s:.1f}s), {where}", file=sys.stderr)
    if code != 0 or not args.verify:
        return code
    if left:
        print("shipboard: no verdict: the deploy is not recorded yet", file=sys.stderr)
        return NO_VERDICT_EXIT
    return wait_for_verdict(server, key, verify_after_s)
