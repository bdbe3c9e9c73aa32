"""The short chat lines that announce deploys, flag changes and notes, with a dashboard link."""

from __future__ import annotations

import re

from annotations.control.links import dashboard_link
from annotations.control.notes import Annotation
from annotations.control.outbox import Announcement
from storage.records import NS_PER_S

MAX_QUOTE = 200

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_PERCENT_CHANGE = re.compile(r"^(?P<key>\S+) (?P<env>\S+): (?P<old>[\d.]+%) -> (?P<new>[\d.]+%)$")


def clean(text: str, limit: int = MAX_QUOTE) -> str:
    """One line of at most `limit` characters: line breaks and control characters become
    spaces, so that nobody's text can start a second IRC command or a forged chat line."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration_text(seconds: float) -> str:
    """`2m14s`, `45s`, `1h03m`, `2d4h`: short and exact enough for a chat line."""
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def announcement_text(annotation: Annotation, event: str, public_url: str = "") -> str:
    """The chat line for an annotation just `added` or `updated` (a deploy's finish)."""
    text = _text(annotation, event)
    link = dashboard_link(public_url, annotation.start_ns, annotation.end_ns)
    return f"{text} {link}" if link else text


def render_announcement(annotation: Annotation, event: str, public_url: str = "") -> Announcement:
    """What the targets are given for an annotation just `added` or `updated`: the chat line,
    the dashboard link and the annotation itself (the outbox's `render`)."""
    return Announcement(
        announcement_text(annotation, event, public_url),
        event,
        dashboard_link(public_url, annotation.start_ns, annotation.end_ns),
        annotation.to_json(),
    )


def _text(annotation: Annotation, event: str) -> str:
    who = clean(annotation.who, 50)
    if annotation.kind == "deploy":
        service = clean(annotation.tags.get("service", "?"), 60)
        environment = clean(annotation.tags.get("environment", "?"), 60)
        version = clean(str(annotation.extra.get("version", "")), 40)
        status = clean(str(annotation.extra.get("status", "running")), 20)
        if event == "updated" and annotation.end_ns is not None:
            took = duration_text((annotation.end_ns - annotation.start_ns) / NS_PER_S)
            return f"[deploy] {service} {version} {status.replace('_', ' ')} in {took}"
        description = clean(annotation.body)
        said = f': "{description}"' if description else ""
        return f"[deploy] {who} started {service} {version} to {environment}{said}"
    if annotation.kind == "flag":
        title = clean(annotation.title)
        change = _PERCENT_CHANGE.match(title)
        if change:
            return (
                f"[flag] {who} set {change['key']} to {change['new']} in {change['env']}"
                f" (was {change['old']})"
            )
        return f"[flag] {who}: {title}"
    body = clean(annotation.body)
    return f"[{clean(annotation.kind, 20)}] {who}: {clean(annotation.title)}" + (
        f": {body}" if body else ""
    )
