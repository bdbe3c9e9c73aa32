"""`shipboard rules check|test`, `shipboard alerts` and `shipboard silence add|list|expire`.

    shipboard rules check rules/*.yaml          # file:line: message per error; exit 1 on any
    shipboard rules test rules/web.yaml --from -7d   # when each alert would have fired
    shipboard alerts                            # what is pending or firing now
    shipboard silence add --match alertname=HighErrorRate --match host='web*' \\
        --until +2h --comment "reindexing"

`rules` reads files and the store here; the others ask a running Shipboard's API.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotations.alerts.model import ALERTNAME, Rule
from annotations.chat.messages import duration_text
from annotations.control.timespec import format_time
from annotations.http_client import ApiClient, ApiError
from shipboard.settings import Settings
from storage.records import NS_PER_S
from storage.timeparse import parse_time

if TYPE_CHECKING:
    from annotations.alerts.replay import Episode
    from annotations.alerts.rules import RuleError

AddSettingFlags = Callable[[argparse.ArgumentParser], None]

SHOWN_STATES = ("pending", "firing")
MAX_CELL = 60  # characters of a label set or summary in a table


def add_commands(commands: Any, add_setting_flags: AddSettingFlags) -> None:
    """Add `rules`, `alerts` and `silence` to the `shipboard` subcommands."""
    rules = commands.add_parser("rules", help="Check alerting rule files, or replay them.")
    actions = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="Lint rule files: file:line: message per error.")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.set_defaults(func=_rules_check)
    test = actions.add_parser(
        "test", help="Replay rules over the stored history: when each would have fired."
    )
    test.add_argument("file", type=Path, metavar="FILE")
    test.add_argument("--from", dest="start", default="-7d", help="-7d, ISO 8601 or unix s.")
    test.add_argument("--to", dest="end", default="now")
    test.set_defaults(func=_rules_test)
    for parser in (check, test):
        add_setting_flags(parser)

    alerts = commands.add_parser("alerts", help="List the alerts pending or firing.")
    alerts.add_argument("--all", action="store_true", help="Every state, resolved included.")
    _api_flags(alerts)
    add_setting_flags(alerts)
    alerts.set_defaults(func=_alerts)

    silence = commands.add_parser("silence", help="Add, list or expire silences.")
    verbs = silence.add_subparsers(dest="silence_command", required=True, metavar="ACTION")

    def verb(name: str, help_text: str, handler: Callable[..., int]) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=help_text)
        parser.set_defaults(func=handler)
        _api_flags(parser)
        add_setting_flags(parser)
        return parser

    add = verb("add", "Silence the alerts whose labels match every glob.", _silence_add)
    add.add_argument(
        "--match",
        action="append",
        required=True,
        type=_matcher,
        metavar="LABEL=GLOB",
        help="alertname=HighErrorRate, host='web*'. Repeat for more.",
    )
    add.add_argument("--until", required=True, help="When it ends: +2h or ISO 8601.")
    add.add_argument("--comment", required=True, help="Why (shown beside the silence).")
    verb("list", "List the active silences.", _silence_list).add_argument(
        "--all", action="store_true", help="Expired ones too."
    )
    verb("expire", "End a silence now.", _silence_expire).add_argument("id", type=int)


def _api_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="Shipboard's HTTP address (default: local).")
    parser.add_argument("--token", help="API token (default: SHIPBOARD_TOKEN).")


def _api(args: argparse.Namespace, settings: Settings) -> ApiClient:
    base = args.url or f"http://{settings.http_host}:{settings.http_port}"
    return ApiClient(base, args.token or settings.token)


def _matcher(text: str) -> tuple[str, str]:
    label, sep, glob = text.partition("=")
    if not sep or not label.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write LABEL=GLOB, e.g. host=web*")
    return label.strip(), glob


def labels_text(labels: Mapping[str, str]) -> str:
    """`host=web-1 service=web`: an alert's labels but its name, sorted."""
    return " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != ALERTNAME)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _cell(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _duration(ns: int) -> str:
    return duration_text(ns / NS_PER_S)


# --- rules -----------------------------------------------------------------------------------


def _load(paths: Sequence[Path]) -> tuple[list[Rule], list[RuleError]]:
    """The rules of the files (and folders) at `paths` as the engine loads them, and their
    errors: a rule name given twice among them is one."""
    from annotations.alerts.rules import RuleError, RuleSet  # only `rules` reads rule files

    loaded = RuleSet.load(paths)
    missing = [
        RuleError(str(path), 1, "no such rule file")
        for path in paths
        if not path.exists() and path not in loaded.files
    ]
    return list(loaded.rules.values()), [*loaded.errors, *missing]


def _print_errors(errors: Sequence[RuleError]) -> None:
    for error in errors:
        print(error)


def _rules_check(args: argparse.Namespace, settings: Settings) -> int:
    rules, errors = _load(args.files)
    if errors:
        _print_errors(errors)
        return 1
    print(f"{len(rules)} rule{'' if len(rules) == 1 else 's'} OK")
    return 0


def episode_line(episode: Episode) -> str:
    """`  host=web-1: fired 2024-…Z, resolved 2024-…Z after 7m12s (value 0.031)`."""
    labels = labels_text(episode.labels) or "(no labels)"
    line = f"  {labels}: fired {format_time(episode.fired_ns)}"
    if episode.resolved_ns is None:
        line += ", still firing at the end"
    else:
        line += f", resolved {format_time(episode.resolved_ns)}"
        line += f" after {_duration(episode.resolved_ns - episode.fired_ns)}"
    return line if episode.value is None else f"{line} (value {episode.value:.6g})"


def _rules_test(args: argparse.Namespace, settings: Settings) -> int:
    rules, errors = _load([args.file])
    if errors:
        _print_errors(errors)
        return 1
    now_ns = time.time_ns()
    try:
        start_ns, end_ns = parse_time(args.start, now_ns), parse_time(args.end, now_ns)
    except ValueError as error:
        print(f"shipboard rules test: {error}", file=sys.stderr)
        return 2
    if start_ns >= end_ns:
        print("shipboard rules test: --from must be before --to", file=sys.stderr)
        return 2
    from annotations.alerts.replay import replay  # the store and the query engine: `rules test`
    from shipboard.stores import open_reader

    default_interval_ns = round(settings.rules_interval_s * NS_PER_S)
    tiers = settings.tiers()
    store = open_reader(settings)
    try:
        for rule in rules:
            result = replay(
                store, tiers, rule, start_ns, end_ns, default_interval_ns, now_ns=now_ns
            )
            every = _duration(rule.interval_ns(default_interval_ns))
            fired = len(result.episodes)
            print(
                f"{rule.name} ({rule.source}): fired {fired} time{'' if fired == 1 else 's'} in"
                f" {result.evaluations} evaluations every {every}"
                f" from {format_time(start_ns)} to {format_time(end_ns)}"
            )
            for episode in result.episodes:
                print(episode_line(episode))
            if result.errors:
                print(f"  {result.errors} evaluations failed; the first: {result.first_error}")
    finally:
        store.close()
    return 0


# --- alerts and silences ---------------------------------------------------------------------


def _alerts(args: argparse.Namespace, settings: Settings) -> int:
    params = {} if args.all else {"state": ",".join(SHOWN_STATES)}
    try:
        found = _api(args, settings).request("GET", "/api/v1/alerts", params=params).json()
    except ApiError as error:
        print(f"shipboard alerts: {error}", file=sys.stderr)
        return 1
    alerts = sorted(found["alerts"], key=lambda a: (a["state"] != "firing", a["since"], a["rule"]))
    if not alerts:
        print("nothing is pending or firing" if not args.all else "no alerts")
        return 0
    now_ns = time.time_ns()
    rows = []
    for alert in alerts:
        value = alert["value"]
        since_ns = parse_time(alert["since"], now_ns)
        rows.append(
            [
                alert["state"],
                alert["rule"],
                _cell(labels_text(alert["labels"])) or "-",
                "-" if value is None else f"{value:.6g}",
                f"{alert['since']} ({_duration(now_ns - since_ns)} ago)",
                ",".join(map(str, alert["silenced_by"])) or "-",
                _cell(alert["annotations"].get("summary", "") or alert.get("error", "")),
            ]
        )
    header = ["STATE", "RULE", "LABELS", "VALUE", "SINCE", "SILENCED BY", "SUMMARY"]
    print(table(header, rows))
    return 0


def _matchers_text(matchers: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(matchers.items()))


def _silence_add(args: argparse.Namespace, settings: Settings) -> int:
    body = {"matchers": dict(args.match), "ends_at": args.until, "comment": args.comment}
    try:
        silence = _api(args, settings).call("POST", "/api/v1/silences", body)
    except ApiError as error:
        print(f"shipboard silence add: {error}", file=sys.stderr)
        return 1
    matchers = _matchers_text(silence["matchers"])
    print(f"silence {silence['id']} until {silence['ends_at']}: {matchers}")
    return 0


def _silence_list(args: argparse.Namespace, settings: Settings) -> int:
    try:
        found = _api(args, settings).call("GET", "/api/v1/silences")["silences"]
    except ApiError as error:
        print(f"shipboard silence list: {error}", file=sys.stderr)
        return 1
    shown = [s for s in found if args.all or s["state"] == "active"]
    if not shown:
        print("no active silences" if not args.all else "no silences")
        return 0
    rows = [
        [
            str(s["id"]),
            s["state"],
            s["ends_at"],
            _cell(_matchers_text(s["matchers"])),
            s["who"],
            _cell(s["comment"]),
        ]
        for s in shown
    ]
    print(table(["ID", "STATE", "ENDS", "MATCHERS", "BY", "COMMENT"], rows))
    return 0


def _silence_expire(args: argparse.Namespace, settings: Settings) -> int:
    try:
        silence = _api(args, settings).call("DELETE", f"/api/v1/silences/{args.id}")
    except ApiError as error:
        print(f"shipboard silence expire: {error}", file=sys.stderr)
        return 1
    print(f"silence {silence['id']} expired at {silence['ends_at']}")
    return 0


class SilenceLease:
    """Silences kept only while their holder lives: each ends `lease_s` ahead and is POSTed
    again (with its id) every `renew_s`, so it lapses soon after a holder that dies; leaving
    the block expires them. A server that cannot be reached is reported, never fatal: the
    work it wraps goes on, unsilenced."""

    def __init__(
        self,
        api: ApiClient,
        matchers: Sequence[Mapping[str, str]],
        comment: str,
        *,
        lease_s: float = 120.0,
        renew_s: float = 30.0,
    ) -> None:
        self.api = api
        self.comment = comment
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.ids: list[int | None] = [None] * len(matchers)
        self._matchers = [dict(m) for m in matchers]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="silence-lease", daemon=True)

    def __enter__(self) -> SilenceLease:
        self._post_all()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        for silence_id in self.ids:
            if silence_id is None:
                continue
            try:
                self.api.call("DELETE", f"/api/v1/silences/{silence_id}")
            except ApiError as error:
                print(f"shipboard: cannot expire silence {silence_id}: {error}", file=sys.stderr)

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_s):
            self._post_all()

    def _post_all(self) -> None:
        for i, matchers in enumerate(self._matchers):
            body: dict[str, Any] = {
                "matchers": matchers,
                "ends_at": f"+{self.lease_s:g}s",
                "comment": self.comment,
            }
            if self.ids[i] is not None:
                body["id"] = self.ids[i]
            try:
                # An expired one comes back under a new id (as Alertmanager does).
                self.ids[i] = int(self.api.call("POST", "/api/v1/silences", body)["id"])
            except ApiError as error:
                what = _matchers_text(matchers)
                print(f"shipboard: cannot silence {what}: {error}", file=sys.stderr)
