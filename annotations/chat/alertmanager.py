"""Alertmanager-style targets: receivers of Alertmanager's webhook payload (version 4).

`alertmanager+https://host:9093/hook?group_by=alertname,service&group_wait=30s&
group_interval=5m&repeat_interval=4h` posts the payload that `annotations.alerts.dispatch`
queued for it (grouped and repeated as Alertmanager does, with its defaults), so that receivers
written for Alertmanager work unchanged. The grouping options are taken out of the URL; any
other query parameter goes to the receiver. It is a webhook: the same allowlist, no redirects,
2xx is delivered. It receives alerts only, never the deploy, flag and note announcements.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from annotations.alerts.model import ALL_LABELS, Grouping
from annotations.chat.errors import TargetError
from annotations.chat.webhooks import WebhookTarget
from annotations.control.outbox import Announcement
from storage.timeparse import parse_duration_ns

_OPTIONS = ("group_by", "group_wait", "group_interval", "repeat_interval")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")


def split_options(url: str, query: str) -> tuple[dict[str, str], str]:
    """A target URL's grouping options, and the rest of its query (for the receiver)."""
    options: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in _OPTIONS:
            if key in options:
                raise TargetError(f"alertmanager target {url!r}: {key} is given twice")
            options[key] = value
        elif key.startswith(("group_", "repeat_")):  # a misspelt option, not the receiver's
            raise TargetError(
                f"alertmanager target {url!r}: unknown option {key!r} (use {', '.join(_OPTIONS)})"
            )
        else:
            rest.append((key, value))
    return options, urlencode(rest)


def parse_grouping(target: str, options: Mapping[str, str]) -> Grouping:
    """The grouping of target `target` that its URL's options set, Alertmanager's defaults for
    the rest; TargetError says what is wrong."""
    defaults = Grouping(target)
    durations = {
        "group_wait": defaults.group_wait_ns,
        "group_interval": defaults.group_interval_ns,
        "repeat_interval": defaults.repeat_interval_ns,
    }
    for key in durations:
        if key not in options:
            continue
        try:
            durations[key] = parse_duration_ns(options[key])
        except ValueError as error:
            raise TargetError(f"alertmanager target {target}: {key}: {error}") from None
        if key != "group_wait" and durations[key] <= 0:
            raise TargetError(f"alertmanager target {target}: {key} must be more than 0s")
    group_by = defaults.group_by
    if "group_by" in options:
        group_by = tuple(label.strip() for label in options["group_by"].split(","))
        if group_by != (ALL_LABELS,) and not all(_LABEL.match(label) for label in group_by):
            raise TargetError(
                f"alertmanager target {target}: group_by takes label names (a,b) or ..."
            )
    return Grouping(
        target,
        group_by=group_by,
        group_wait_ns=durations["group_wait"],
        group_interval_ns=durations["group_interval"],
        repeat_interval_ns=durations["repeat_interval"],
    )


class AlertmanagerTarget(WebhookTarget):
    """POSTs the Alertmanager payload queued for it; `grouping` says how its alerts are
    grouped and repeated (what `annotations.alerts.dispatch` follows)."""

    kind = "alertmanager"
    styles: ClassVar[dict[str, str]] = {
        "alertmanager+http": "alertmanager",
        "alertmanager+https": "alertmanager",
    }

    def __init__(self, url: str, allowlist: Sequence[str], name: str | None = None) -> None:
        parts = urlsplit(url)
        # The grouping is Shipboard's: neither the receiver nor the target's name sees it.
        options, rest = split_options(url, parts.query)
        super().__init__(urlunsplit(parts._replace(query=rest)), allowlist, name)
        self.grouping = parse_grouping(self.name, options)

    def body(self, announcement: Announcement) -> dict[str, Any]:
        return announcement.annotation
