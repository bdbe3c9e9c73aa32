"""The short chat lines that announce deploys (and their verdicts), flag changes, notes and alerts
(with what changed before them), with a dashboard link."""

from __future__ import annotations

import re
from typing import Any

from annotations.alerts.model import ALERTNAME
from annotations.control.links import dashboard_link
from annotations.control.notes import Annotation
from annotations.control.outbox import Announcement
from annotations.control.verdict_text import confounders_of, summary_text, verdict_of
from storage.records import NS_PER_S

MAX_QUOTE = 200
MAX_CHANGES_SHOWN = 3
"""Changes before an alert that its chat line names (the annotation keeps more)."""

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
    """The chat line for an annotation just `added` or `updated` (a deploy's finish, an
    alert's resolve), or for a deploy's `verdict`."""
    if annotation.kind == "alert":
        return alert_text(annotation, event, public_url)
    text = verdict_text(annotation) if event == "verdict" else _text(annotation, event)
    link = dashboard_link(public_url, annotation.start_ns, annotation.end_ns)
    return f"{text} {link}" if link else text


def render_announcement(annotation: Annotation, event: str, public_url: str = "") -> Announcement:
    """What the targets are given for an annotation just `added` or `updated`: the chat line,
    the dashboard link and the annotation itself (the outbox's `render`)."""
    if annotation.kind == "alert":  # the graphs from before the alert started
        link = dashboard_link(public_url, _started_ns(annotation), annotation.end_ns)
    else:
        link = dashboard_link(public_url, annotation.start_ns, annotation.end_ns)
    return Announcement(
        announcement_text(annotation, event, public_url), event, link, annotation.to_json()
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


def verdict_text(deploy: Annotation) -> str:
    """`[verdict] web 3f2c1a9: regressed: http.errors/http.requests 0.4% -> 0.9% (+125%)`, and
    `· confounders: deploy api 7.0.0 to prod` when other changes fell inside its windows."""
    service = clean(deploy.tags.get("service", "?"), 60)
    version = clean(str(deploy.extra.get("version", "")), 40)
    verdict = verdict_of(deploy.extra)
    said = clean(summary_text(verdict), 160) if verdict is not None else "nothing to verify"
    text = f"[verdict] {service} {version}: {said}"
    others = confounders_of(verdict) if verdict is not None else []
    if others:
        shown = "; ".join(clean(o, 80) for o in others[:MAX_CHANGES_SHOWN])
        more = len(others) - MAX_CHANGES_SHOWN
        text += f" · confounders: {shown}" + (f"; {more} more" if more > 0 else "")
    return text


def _started_ns(alert: Annotation) -> int:
    """When the alert's condition started holding (its annotation starts when it fired)."""
    started = alert.extra.get("started_ns")
    return int(started) if isinstance(started, int) else alert.start_ns


def _number(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "no data"


def _ago(at_ns: object, started_ns: int) -> str:
    seconds = max(0, (started_ns - at_ns) // NS_PER_S) if isinstance(at_ns, int) else 0
    if seconds < 3600:  # "4m before" is exact enough for what happened before an alert
        return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m"
    return duration_text(seconds)


def _change_text(change: dict[str, Any], started_ns: int) -> str:
    """`deploy web v42 by alice 4m before (watch …)`, `flag checkout … by bob 12m before`."""
    who = clean(str(change.get("who", "")), 50)
    ago = _ago(change.get("at_ns"), started_ns)
    if change.get("kind") == "flag":
        return f"flag {clean(str(change.get('change', '')), 120)} by {who} {ago} before"
    service = clean(str(change.get("service", "?")), 60)
    version = clean(str(change.get("version", "")), 40)
    status = str(change.get("status", ""))
    details = [status.replace("_", " ")] if status in ("failed", "rolled_back") else []
    watch = change.get("watch") or []
    if isinstance(watch, list) and watch:
        details.append("watch " + clean(", ".join(str(item) for item in watch), 80))
    for name in ("risk", "rollback"):
        if change.get(name):
            details.append(f"{name}: {clean(str(change[name]), 80)}")
    said = f" ({'; '.join(details)})" if details else ""
    return f"deploy {service} {version} by {who} {ago} before{said}"


def alert_text(alert: Annotation, event: str, public_url: str = "") -> str:
    """`[alert] FIRING HighErrorRate service=web: web errors at 3.1% (0.031 > 0.02) · changed
    before: deploy web v42 by alice 4m before (watch …) · <the dashboards then>`, and once it
    resolved `[alert] RESOLVED HighErrorRate service=web after 7m12s`."""
    extra = alert.extra
    group = extra.get("group")
    if not isinstance(group, dict):
        group = {k: v for k, v in alert.tags.items() if k != ALERTNAME}
    labels = " ".join(f"{clean(str(k), 40)}={clean(str(v), 60)}" for k, v in sorted(group.items()))
    name = " ".join(filter(None, (clean(alert.title, 80), labels)))
    if event == "updated" and alert.end_ns is not None:
        took = duration_text((alert.end_ns - alert.start_ns) / NS_PER_S)
        return f"[alert] RESOLVED {name} after {took}"
    condition = (
        f"({_number(extra.get('value'))} {clean(str(extra.get('op', '')), 2)}"
        f" {_number(extra.get('threshold'))})"
    )
    summary = clean(alert.body)
    parts = [
        f"[alert] FIRING {name}: {summary} {condition}"
        if summary
        else f"[alert] FIRING {name} {condition}"
    ]
    started_ns = _started_ns(alert)
    changes = [c for c in extra.get("changes") or [] if isinstance(c, dict)]
    if changes:
        shown = "; ".join(_change_text(c, started_ns) for c in changes[:MAX_CHANGES_SHOWN])
        more = len(changes) - MAX_CHANGES_SHOWN
        parts.append(f"changed before: {shown}" + (f"; {more} more" if more > 0 else ""))
    else:
        parts.append("no deploy or flag change in the 30 min before")
    link = dashboard_link(public_url, started_ns)
    return " · ".join([*parts, link] if link else parts)
