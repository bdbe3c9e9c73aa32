"""Announcements as the composition root starts them: targets from URLs, the queue, the bot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from annotations.chat.alertmanager import AlertmanagerTarget
from annotations.chat.bot import Alerts, Bot, Graph
from annotations.chat.errors import TargetError
from annotations.chat.irc_client import IrcClient, IrcConfig
from annotations.chat.notify import Notifier, Target
from annotations.chat.webhooks import WebhookTarget
from annotations.control.db import ControlDB
from annotations.control.outbox import Outbox
from storage.tasks import background

log = logging.getLogger(__name__)

LEASE_CHECK_S = 5.0
"""How often a node checks its chat lease: the longest a bot is away when its node dies."""
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class Lease(Protocol):
    """The right to keep the chat connections, held by one node of those sharing the control
    DB (so one bot answers in a channel); both calls may block."""

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


def split_name(text: str) -> tuple[str | None, str]:
    """`oncall=alertmanager+https://…` is the target `oncall` (what rules' `notify` names);
    a bare URL has no name of its own."""
    scheme, sep, _ = text.partition("://")
    if not sep or "=" not in scheme:
        return None, text
    name, _, url = text.partition("=")
    name = name.strip()
    if not _NAME.match(name):
        raise TargetError(f"notify target name {name!r}: use letters, digits, _ . and -")
    return name, url.strip()


def parse_targets(
    urls: Sequence[str], allowlist: Sequence[str], bot: Bot | None = None
) -> list[Target]:
    """One target per URL (`NAME=URL` names it); TargetError on the first that is malformed or
    not allowed, or a name given twice."""
    targets: list[Target] = []
    for text in urls:
        name, url = split_name(text)
        scheme = url.partition("://")[0].lower()
        if scheme in ("irc", "ircs"):
            on_privmsg = None if bot is None else bot.on_privmsg
            targets.append(IrcClient(IrcConfig.from_url(url), on_privmsg, name=name))
        elif scheme in WebhookTarget.styles:
            targets.append(WebhookTarget(url, allowlist, name))
        elif scheme in AlertmanagerTarget.styles:
            targets.append(AlertmanagerTarget(url, allowlist, name))
        else:
            raise TargetError(
                f"notify target {url!r}: use irc://, https://, json+https://"
                " or alertmanager+https://"
            )
    twice = sorted(name for name, n in Counter(t.name for t in targets).items() if n > 1)
    if twice:
        raise TargetError(f"notify target {twice[0]!r} is listed twice")
    return targets


class Announcer:
    """The notifier over every target, and the IRC connections (with the bot) kept up."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.irc = [t for t in notifier.targets if isinstance(t, IrcClient)]
        self.webhooks = [t for t in notifier.targets if isinstance(t, WebhookTarget)]
        self.groupings = [t.grouping for t in self.webhooks if isinstance(t, AlertmanagerTarget)]
        """How each Alertmanager-style target groups alerts (`annotations.alerts.dispatch`)."""

    @property
    def plain_targets(self) -> tuple[str, ...]:
        """The names of the targets that announce annotations (every kind but alertmanager)."""
        return self.notifier.outbox.targets

    @property
    def outbox(self) -> Outbox:
        """What the control plane's writers append their announcements to."""
        return self.notifier.outbox

    @classmethod
    def build(
        cls,
        db: ControlDB,
        urls: Sequence[str],
        *,
        allowlist: Sequence[str],
        public_url: str = "",
        graph: Graph | None = None,
        alerts: Alerts | None = None,
        max_tries: int = 8,
        retry_s: float = 2.0,
        timeout_s: float = 10.0,
    ) -> Announcer:
        """Check every target (TargetError at startup); announcements are queued through
        `outbox` from then on."""
        bot = Bot(db, graph, alerts=alerts, public_url=public_url)
        targets = parse_targets(urls, allowlist, bot)
        notifier = Notifier(
            db,
            targets,
            public_url=public_url,
            max_tries=max_tries,
            retry_s=retry_s,
            timeout_s=timeout_s,
        )
        return cls(notifier)

    @contextlib.asynccontextmanager
    async def delivering(
        self, lease: Lease | None = None, check_s: float = LEASE_CHECK_S
    ) -> AsyncIterator[None]:
        """Deliver for the life of the block; the IRC connections (and the bot) are kept up
        only while this node holds `lease`, if one is given, and their announcements wait for
        that."""
        async with contextlib.AsyncExitStack() as stack:
            for webhook in self.webhooks:
                await stack.enter_async_context(webhook)
            await stack.enter_async_context(self.notifier)
            if self.irc:
                await stack.enter_async_context(background(self._keep_chat(lease, check_s)))
            yield

    async def _keep_chat(self, lease: Lease | None, check_s: float) -> None:
        """Connect while `lease` is held (always without one), checking every `check_s`."""
        connected: contextlib.AsyncExitStack | None = None
        try:
            while True:
                held = lease is None or await asyncio.to_thread(lease.try_acquire)
                if held and connected is None:
                    if lease is not None:
                        log.info("this node holds the chat lease: its bot connects")
                    connected = contextlib.AsyncExitStack()
                    for client in self.irc:
                        await connected.enter_async_context(client)
                    self.notifier.chat_open.set()
                elif not held and connected is not None:
                    log.warning("chat lease lost: this node's bot leaves")
                    self.notifier.chat_open.clear()
                    await connected.aclose()
                    connected = None
                await asyncio.sleep(check_s)
        finally:
            self.notifier.chat_open.clear()
            if connected is not None:
                await connected.aclose()
