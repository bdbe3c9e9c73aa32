"""Announcements as the composition root starts them: targets from URLs, the queue, the bot."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from annotations.bot import Bot, Graph
from annotations.db import ControlDB
from annotations.errors import TargetError
from annotations.irc import IrcClient, IrcConfig
from annotations.notify import Notifier, Target
from annotations.webhooks import WebhookTarget


def parse_targets(
    urls: Sequence[str], allowlist: Sequence[str], bot: Bot | None = None
) -> list[Target]:
    """One target per URL; TargetError on the first that is malformed or not allowed."""
    targets: list[Target] = []
    for url in urls:
        scheme = url.partition("://")[0].lower()
        if scheme in ("irc", "ircs"):
            on_privmsg = None if bot is None else bot.on_privmsg
            targets.append(IrcClient(IrcConfig.from_url(url), on_privmsg))
        elif scheme in ("http", "https", "json+http", "json+https"):
            targets.append(WebhookTarget(url, allowlist))
        else:
            raise TargetError(f"notify target {url!r}: use irc://, https:// or json+https://")
    names = [target.name for target in targets]
    if len(set(names)) != len(names):
        raise TargetError("a notify target is listed twice")
    return targets


class Announcer:
    """The notifier over every target, and the IRC connections (with the bot) kept up."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.irc = [t for t in notifier.targets if isinstance(t, IrcClient)]

    @classmethod
    def build(
        cls,
        db: ControlDB,
        urls: Sequence[str],
        *,
        allowlist: Sequence[str],
        public_url: str = "",
        graph: Graph | None = None,
        max_tries: int = 8,
        retry_s: float = 2.0,
        timeout_s: float = 10.0,
    ) -> Announcer:
        """Check every target (TargetError at startup) and start queueing announcements."""
        bot = Bot(db, graph, public_url=public_url)
        targets = parse_targets(urls, allowlist, bot)
        notifier = Notifier(
            db,
            targets,
            public_url=public_url,
            max_tries=max_tries,
            retry_s=retry_s,
            timeout_s=timeout_s,
        )
        notifier.install()
        return cls(notifier)

    async def run(self) -> None:
        """Deliver and keep IRC connected until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.notifier.run())
            for client in self.irc:
                group.create_task(client.run())
