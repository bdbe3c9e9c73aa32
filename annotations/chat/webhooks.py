"""Webhook targets: Slack-compatible `{"text": …}` or generic JSON, to allowlisted hosts only.

`https://hooks.slack.com/services/…` posts `{"text": line}` (what Slack, Mattermost and
Rocket.Chat accept); `json+https://host/path` posts the whole announcement: text, event, link
and the annotation. Only http(s), only hosts on the allowlist (`*.example.com` allows the
subdomains), and redirects are not followed: whoever edits the settings cannot point the
notifier at an internal address, directly or through a redirect. Alertmanager-style targets
(`annotations.chat.alertmanager`) are webhooks too, with a payload of their own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import ClassVar, Self
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from annotations.chat.errors import DeliveryError, TargetError
from annotations.control.outbox import Announcement

STYLES = {"http": "slack", "https": "slack", "json+http": "json", "json+https": "json"}


def host_allowed(host: str, allowlist: Sequence[str]) -> bool:
    """Whether `host` is on the allowlist: an exact name, or under a `*.domain` entry."""
    host = host.lower().rstrip(".")
    for entry in allowlist:
        entry = entry.strip().lower().rstrip(".")
        if entry.startswith("*.") and host.endswith(entry[1:]) and host != entry[2:]:
            return True
        if host == entry:
            return True
    return False


class WebhookTarget:
    """POSTs each announcement as JSON; any answer but 2xx, or no answer, is a failed try.
    It delivers while in `async with` (its HTTP session open). Named `name`, or else by its
    host and a digest of its URL."""

    kind = "webhook"
    styles: ClassVar[dict[str, str]] = STYLES
    """The URL schemes this kind of target takes, and the body each posts."""

    def __init__(self, url: str, allowlist: Sequence[str], name: str | None = None) -> None:
        parts = urlsplit(url)
        style = self.styles.get(parts.scheme.lower())
        if style is None:
            schemes = ", ".join(f"{scheme}://" for scheme in self.styles)
            raise TargetError(f"{self.kind} {url!r}: only {schemes} URLs")
        try:
            host = parts.hostname or ""
            parts.port  # noqa: B018 (a bad port raises here, at startup)
        except ValueError as error:
            raise TargetError(f"{self.kind} {url!r}: {error}") from None
        if not host:
            raise TargetError(f"{self.kind} {url!r}: no host")
        if parts.username or parts.password:
            raise TargetError(f"{self.kind} {url!r}: credentials belong in the path, not the host")
        if not host_allowed(host, allowlist):
            raise TargetError(
                f"{self.kind} host {host!r} is not in webhook_allowlist ({', '.join(allowlist)})"
            )
        self.style = style
        scheme = parts.scheme.lower().rpartition("+")[2]
        self.url = urlunsplit(parts._replace(scheme=scheme))
        # Webhook URLs carry their secret in the path: the name shows the host and a digest.
        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        self.name = name or f"{parts.scheme.lower()}://{parts.netloc}/…{digest}"
        self._session: aiohttp.ClientSession | None = None

    def body(self, announcement: Announcement) -> dict[str, object]:
        if self.style == "slack":
            return {"text": announcement.text}
        return announcement.to_json()

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(headers={"User-Agent": "Shipboard"}, trust_env=False)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def deliver(self, announcement: Announcement) -> None:
        if self._session is None:
            raise DeliveryError(f"{self.name}: not open (deliver inside `async with`)")
        try:
            async with self._session.post(
                self.url, json=self.body(announcement), allow_redirects=False
            ) as response:
                if not 200 <= response.status < 300:
                    text = (await response.text(errors="replace"))[:200]
                    raise DeliveryError(f"HTTP {response.status}: {text}")
        except aiohttp.ClientError as error:
            raise DeliveryError(f"{type(error).__name__}: {error}") from error
