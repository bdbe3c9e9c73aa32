"""The chat bot's read-only commands: `!deploys`, `!flags`, `!flag`, `!graph`, `!alerts` and
`!help`."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Sequence

from aggregator.summary import GraphSummary
from annotations.alerts.model import ALERTNAME, Instance
from annotations.chat.irc_client import IrcClient
from annotations.chat.irc_protocol import CHANNEL_PREFIXES, IrcMessage
from annotations.chat.messages import clean, duration_text
from annotations.control.db import ControlDB
from annotations.control.deploys import RUNNING, list_deploys
from annotations.control.errors import NotFoundError, UnavailableError
from annotations.control.links import dashboard_link
from annotations.flags.model import EnvironmentRules
from annotations.flags.store import StoredFlag, get_flag, list_flags
from storage.records import NS_PER_S

LAST_DEPLOYS = 5
MAX_FLAG_LINES = 10
MAX_ALERT_LINES = 10
SPARK = "▁▂▃▄▅▆▇█"
HELP = (
    "!deploys [service]: the last five deploys | !flags [env]: flags part-way rolled out"
    " | !flag KEY: its state and rules | !graph METRIC [range, e.g. 6h]: last, min, max"
    " | !alerts: what is firing"
)


# (metric, range like "1h") -> its summary; ValueError when the query cannot run.
Graph = Callable[[str, str], GraphSummary]
# Every alert instance as stored (blocking: called in a thread).
Alerts = Callable[[], Iterable[Instance]]


def sparkline(values: Sequence[float]) -> str:
    """Eight levels of block characters from the minimum to the maximum."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = high - low
    top = len(SPARK) - 1
    return "".join(
        SPARK[0 if span == 0 or not math.isfinite(v) else round((v - low) / span * top)]
        for v in values
    )


def _number(value: float) -> str:
    return f"{value:.4g}"


class Bot:
    """Answers commands from the control DB and the metric store; changes nothing."""

    def __init__(
        self,
        db: ControlDB,
        graph: Graph | None = None,
        *,
        alerts: Alerts | None = None,
        public_url: str = "",
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.db = db
        self.graph = graph
        self.alerts = alerts
        self.public_url = public_url
        self.clock = clock

    async def answer(self, text: str) -> list[str]:
        """The reply lines to a chat message: none unless it is a command."""
        words = text.strip().split()
        if not words or not words[0].startswith("!"):
            return []
        command, args = words[0][1:].lower(), words[1:]
        if command == "help":
            return [HELP]
        try:
            if command == "deploys":
                return await self.db.run(self._deploys, args[0] if args else None)
            if command == "flags":
                return await self.db.run(self._flags, args[0] if args else None)
            if command == "flag" and args:
                return await self.db.run(self._flag, args[0])
            if command == "alerts" and self.alerts is not None:
                return await asyncio.to_thread(self._alerts)
        except UnavailableError as error:
            return [str(error)]
        if command == "graph" and args and self.graph is not None:
            return await asyncio.to_thread(self._graph, args[0], args[1] if len(args) > 1 else "1h")
        if command in ("flag", "graph"):
            return [f"usage: !{command} {'KEY' if command == 'flag' else 'METRIC [range]'}"]
        return []

    async def on_privmsg(self, client: IrcClient, message: IrcMessage) -> None:
        """Reply in the channel the command came from, or privately to a private message."""
        target, text = message.params
        reply_to = target if target.startswith(CHANNEL_PREFIXES) else message.nick
        for line in await self.answer(text):
            await client.say(reply_to, line)

    def _deploys(self, service: str | None) -> list[str]:
        now_ns = self.clock()
        found = list_deploys(self.db, 0, now_ns + 86400 * NS_PER_S, service=service)
        if not found:
            return [f"no deploys of {clean(service, 60)}" if service else "no deploys yet"]
        lines = []
        for deploy in found[:LAST_DEPLOYS]:
            status = str(deploy.extra.get("status", RUNNING))
            took = (
                f" in {duration_text((deploy.end_ns - deploy.start_ns) / NS_PER_S)}"
                if deploy.end_ns is not None
                else ""
            )
            ago = duration_text(max(0, now_ns - deploy.start_ns) / NS_PER_S)
            lines.append(
                clean(
                    f"#{deploy.id} {deploy.tags.get('service', '?')}"
                    f" {deploy.extra.get('version', '')} to {deploy.tags.get('environment', '?')}"
                    f" by {deploy.who}: {status.replace('_', ' ')}{took}, {ago} ago",
                    300,
                )
            )
        return lines

    def _flags(self, environment: str | None) -> list[str]:
        lines = []
        for stored in list_flags(self.db):
            partial = [
                f"{name} {rules.percentage:g}%"
                for name, rules in stored.flag.environments.items()
                if (environment is None or name == environment)
                and stored.flag.enabled
                and rules.enabled
                and 0 < rules.percentage < 100
            ]
            if partial:
                lines.append(clean(f"{stored.flag.key}: {', '.join(partial)}", 300))
        if not lines:
            where = f" in {clean(environment, 60)}" if environment else ""
            return [f"no flag is part-way rolled out{where}"]
        if len(lines) > MAX_FLAG_LINES:
            lines = [*lines[:MAX_FLAG_LINES], f"… and {len(lines) - MAX_FLAG_LINES} more"]
        return lines

    def _flag(self, key: str) -> list[str]:
        try:
            stored: StoredFlag = get_flag(self.db, key)
        except NotFoundError:
            return [f"no flag {clean(key, 100)!r}"]
        flag = stored.flag
        state = "on" if flag.enabled else "KILLED (off everywhere)"
        owner = f", owner {flag.owner}" if flag.owner else ""
        head = f"{flag.key} v{stored.version}: {state}{owner}"
        if flag.description:
            head += f": {flag.description}"
        lines = [clean(head, 300)]
        lines += [clean(f"  {name}: {_rules(r)}", 300) for name, r in flag.environments.items()]
        return lines if flag.environments else [*lines, "  no environments"]

    def _alerts(self) -> list[str]:
        assert self.alerts is not None
        firing = sorted(
            (a for a in self.alerts() if a.state == "firing"),
            key=lambda a: (a.fired_ns or 0, a.rule, a.fingerprint),
        )
        if not firing:
            return ["nothing is firing"]
        now_ns = self.clock()
        lines = [clean(_alert_line(alert, now_ns), 300) for alert in firing[:MAX_ALERT_LINES]]
        if len(firing) > MAX_ALERT_LINES:
            lines.append(f"… and {len(firing) - MAX_ALERT_LINES} more")
        # The graphs from the first alert's start on: what changed just before is on them.
        link = dashboard_link(self.public_url, firing[0].fired_ns or now_ns, now_ns)
        return lines + ([link] if link else [])

    def _graph(self, metric: str, range_text: str) -> list[str]:
        assert self.graph is not None
        try:
            summary = self.graph(metric, range_text)
        except ValueError as error:
            return [clean(f"!graph: {error}", 300)]
        values = [v for v in summary.values if math.isfinite(v)]
        if not values:
            return [f"{clean(metric, 100)}: no data in the last {clean(range_text, 20)}"]
        more = f" (+{summary.other_series} more series)" if summary.other_series else ""
        line = (
            f"{clean(summary.metric, 100)} last {range_text}: {_number(values[-1])}"
            f" (min {_number(min(values))}, max {_number(max(values))}) {sparkline(values)}{more}"
        )
        link = dashboard_link(self.public_url, summary.start_ns, summary.end_ns)
        return [clean(line, 400)] + ([link] if link else [])


def _alert_line(alert: Instance, now_ns: int) -> str:
    """`FIRING HighErrorRate service=web: 0.031 for 7m12s · web errors at 3.1%`."""
    labels = " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != ALERTNAME)
    line = f"FIRING {alert.rule}" + (f" {labels}" if labels else "")
    if alert.value is not None:
        line += f": {_number(alert.value)}"
    if alert.fired_ns is not None:
        line += f" for {duration_text(max(0, now_ns - alert.fired_ns) / NS_PER_S)}"
    if summary := alert.annotations.get("summary"):
        line += f" · {summary}"
    return line


def _rules(rules: EnvironmentRules) -> str:
    parts = [f"{rules.percentage:g}%" + ("" if rules.enabled else " (disabled)")]
    if rules.allow_users:
        parts.append(f"users {','.join(rules.allow_users[:5])}")
    if rules.allow_groups:
        parts.append(f"groups {','.join(rules.allow_groups[:5])}")
    if rules.variants:
        parts.append("variants " + " ".join(f"{v.name}:{v.weight:g}" for v in rules.variants))
    return ", ".join(parts)
