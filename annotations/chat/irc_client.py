"""An asyncio IRC client that announces in channels and hears commands (the lines themselves are
`annotations.chat.irc_protocol`'s).

It registers (PASS, NICK, USER), answers PING, takes another nick on a collision (433/436),
joins its channels (again after a KICK), keeps the link alive with its own PING, reconnects
with a growing, jittered backoff, paces what it says with a token bucket so that the server
never sees a flood, and splits long text into lines that fit 512 bytes once the server adds
its prefix. Lines from the server are parsed strictly; a bad one is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Self
from urllib.parse import parse_qs, unquote

from annotations.chat.errors import DeliveryError, IrcParseError, TargetError
from annotations.chat.irc_protocol import (
    CHANNEL_PREFIXES,
    JOIN_ERRORS,
    MAX_LINE,
    NICK_LEN,
    PREFIX_RESERVE,
    IrcMessage,
    alternative_nick,
    format_line,
    parse_line,
    split_text,
)
from annotations.control.outbox import Announcement
from storage.backoff import Backoff
from storage.tasks import cancelled

log = logging.getLogger(__name__)

MAX_IN = 8192  # what we read per line: servers that send message tags go past 512
MAX_QUEUED = 100

Handler = Callable[["IrcClient", IrcMessage], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class IrcConfig:
    """Where to connect and what to join: `irc://nick[:password]@host:port/#chan,#chan2?tls=1`."""

    host: str
    port: int
    nick: str
    channels: tuple[str, ...]
    password: str = ""
    tls: bool = False
    tls_verify: bool = True

    @property
    def name(self) -> str:
        """The target's name, without the password."""
        return f"irc://{self.nick}@{self.host}:{self.port}/{','.join(self.channels)}"

    @classmethod
    def from_url(cls, url: str) -> IrcConfig:
        """Parse an IRC target; `#` needs no escaping, `?tls=1&verify=0` are the options."""
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("irc", "ircs"):
            raise TargetError(f"irc target {url!r}: use irc://nick@host:port/#channel")
        where, _, query = rest.partition("?")
        netloc, _, path = where.partition("/")
        userinfo, at, hostport = netloc.rpartition("@")
        nick, _, password = (userinfo if at else "shipboard").partition(":")
        host, colon, port_text = hostport.rpartition(":")
        if not colon:
            host, port_text = hostport, ""
        options = {k: v[-1] for k, v in parse_qs(query).items()}
        tls = scheme.lower() == "ircs" or options.get("tls", "0") in ("1", "true", "yes")
        channels = tuple(unquote(c).strip() for c in path.split(",") if c.strip())
        nick = unquote(nick)
        if not host or not (port_text.isdigit() or not port_text):
            raise TargetError(f"irc target {url!r}: bad host or port")
        if not nick or len(nick) > NICK_LEN or not nick.isascii() or " " in nick:
            raise TargetError(f"irc target {url!r}: the nick must be 1-{NICK_LEN} ASCII letters")
        if not channels or any(
            not c.startswith(CHANNEL_PREFIXES) or any(x in c for x in " ,\x07\0\r\n")
            for c in channels
        ):
            raise TargetError(f"irc target {url!r}: name channels as /#one,#two")
        return cls(
            host=host.strip("[]"),
            port=int(port_text) if port_text else (6697 if tls else 6667),
            nick=nick,
            channels=channels,
            password=unquote(password),
            tls=tls,
            tls_verify=options.get("verify", "1") not in ("0", "false", "no"),
        )


class TokenBucket:
    """`rate_per_s` lines a second on average, `burst` at once: the server's flood limit."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def delay_s(self) -> float:
        """Take one token: the seconds to wait before the line may go (0 if at once)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s


class IrcClient:
    """One IRC connection, kept up while in `async with`; it is also a notify target for its
    channels. It may be entered again once left (the node holding the chat lease changes)."""

    kind = "irc"

    def __init__(
        self,
        config: IrcConfig,
        on_privmsg: Handler | None = None,
        *,
        name: str | None = None,
        rate_per_s: float = 1.0,
        burst: int = 4,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        ping_s: float = 90.0,
        connect_timeout_s: float = 15.0,
    ) -> None:
        self.config = config
        self.name = name or config.name  # a name given in --notify NAME=URL, or its URL's
        self.nick = config.nick
        self.on_privmsg = on_privmsg
        self.ready = asyncio.Event()
        self.registrations = 0
        self._bucket = TokenBucket(rate_per_s, burst)
        self._min_backoff_s = min_backoff_s
        # Jittered: bots whose server restarted do not all come back at once.
        self._backoff = Backoff(min_backoff_s, max_backoff_s, jitter=0.2)
        self._ping_s = ping_s
        self._connect_timeout_s = connect_timeout_s
        self._writer: asyncio.StreamWriter | None = None
        self._outbox: asyncio.Queue[tuple[bytes, asyncio.Future[None]]] = asyncio.Queue()
        self._pending_joins: set[str] = set()
        self._registered = False
        self._nick_attempt = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        if self._connected is not None:
            raise RuntimeError(f"irc {self.name}: already connecting")
        self._connected = asyncio.create_task(self._stay_connected())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leave: the connection closes (lines still queued fail with DeliveryError), and the
        replies and rejoins it started stop with it."""
        if self._connected is not None:
            task, self._connected = self._connected, None
            await cancelled(task)
        for spawned in list(self._tasks):
            await cancelled(spawned)

    async def _stay_connected(self) -> None:
        """Stay connected until cancelled, reconnecting with backoff."""
        while True:
            registered_before = self.registrations
            try:
                await self._connection()
            except (OSError, ConnectionError, TimeoutError, ssl.SSLError) as error:
                log.warning("irc %s: %s", self.name, str(error) or type(error).__name__)
            if self.registrations > registered_before:
                self._backoff.succeeded()  # a link that registered: the next wait is short
            await asyncio.sleep(self._backoff.failed())

    async def say(self, target: str, text: str) -> None:
        """Send `text` to a channel or nick once connected, paced; raises DeliveryError if the
        connection drops before every line is written."""
        await self.ready.wait()
        room = MAX_LINE - 2 - len(f"PRIVMSG {target} :".encode()) - PREFIX_RESERVE
        outbox = self._outbox
        if outbox.qsize() >= MAX_QUEUED:
            raise DeliveryError(f"{self.name}: {MAX_QUEUED} lines already wait to be sent")
        for line in split_text(text, room):
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            outbox.put_nowait((format_line("PRIVMSG", target, line), done))
            await done

    async def deliver(self, announcement: Announcement) -> None:
        for channel in self.config.channels:
            await self.say(channel, announcement.text)

    async def _connection(self) -> None:
        context = None
        if self.config.tls:
            context = ssl.create_default_context()
            if not self.config.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.config.host, self.config.port, ssl=context, limit=MAX_IN),
            self._connect_timeout_s,
        )
        self._writer = writer
        self._outbox = asyncio.Queue()
        self._nick_attempt = 0
        self._registered = False
        self._pending_joins = set()
        self.nick = self.config.nick
        sender = asyncio.create_task(self._send_paced(writer, self._outbox))
        try:
            if self.config.password:
                self._send_now("PASS", self.config.password)
            self._send_now("NICK", self.nick)
            self._send_now("USER", self.config.nick, "0", "*", "Shipboard announcements")
            await self._read(reader)
        finally:
            self.ready.clear()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            while not self._outbox.empty():
                _, done = self._outbox.get_nowait()
                if not done.done():
                    done.set_exception(DeliveryError(f"{self.name}: connection lost"))
            self._writer = None
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def _send_paced(
        self,
        writer: asyncio.StreamWriter,
        outbox: asyncio.Queue[tuple[bytes, asyncio.Future[None]]],
    ) -> None:
        while True:
            line, done = await outbox.get()
            delay_s = self._bucket.delay_s()
            if delay_s:
                await asyncio.sleep(delay_s)
            try:
                writer.write(line)
                await writer.drain()
            except (OSError, ConnectionError) as error:
                if not done.done():
                    done.set_exception(DeliveryError(f"{self.name}: {error}"))
                raise
            if not done.done():
                done.set_result(None)

    def _send_now(self, command: str, *params: str) -> None:
        """Protocol lines (registration, PONG, JOIN) skip the queue: they keep the link up."""
        if self._writer is not None:
            self._writer.write(format_line(command, *params))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        awaiting_pong = False
        while True:
            try:
                raw = await asyncio.wait_for(reader.readline(), self._ping_s)
            except TimeoutError:
                if awaiting_pong:
                    raise ConnectionError("no answer to PING") from None
                self._send_now("PING", "shipboard")
                awaiting_pong = True
                continue
            except ValueError:  # a line past MAX_IN: asyncio has dropped it
                continue
            if not raw.endswith(b"\n"):
                raise ConnectionError("connection closed by the server")
            awaiting_pong = False
            try:
                message = parse_line(raw)
            except IrcParseError as error:
                log.debug("irc %s: skipped a bad line (%s): %r", self.name, error, raw[:100])
                continue
            self._handle(message)

    def _handle(self, message: IrcMessage) -> None:
        command, params = message.command, message.params
        if command == "PING":
            self._send_now("PONG", params[-1] if params else "shipboard")
        elif command == "001":
            self.nick = params[0] if params else self.nick
            self.registrations += 1
            self._registered = True
            self._pending_joins = {c.lower() for c in self.config.channels}
            for channel in self.config.channels:
                self._send_now("JOIN", channel)
        elif command in ("433", "436", "432") and not self._registered:
            self._nick_attempt += 1
            self.nick = alternative_nick(self.config.nick, self._nick_attempt)
            self._send_now("NICK", self.nick)
        elif command == "NICK" and message.nick == self.nick and params:
            self.nick = params[0]
        elif command == "JOIN" and message.nick == self.nick and params:
            self._joined(params[0])
        elif command in JOIN_ERRORS and len(params) > 1:
            log.warning("irc %s: cannot join %s: %s", self.name, params[1], params[-1])
            self._joined(params[1])
        elif command == "KICK" and len(params) > 1 and params[1] == self.nick:
            log.warning("irc %s: kicked from %s; joining again", self.name, params[0])
            self._spawn(self._rejoin(params[0]))
        elif command == "PRIVMSG" and len(params) == 2 and self.on_privmsg is not None:
            if message.nick != self.nick and not params[1].startswith("\x01"):
                self._spawn(self.on_privmsg(self, message))
        elif command == "ERROR":
            log.warning("irc %s: server says %s", self.name, params[-1] if params else "")

    def _joined(self, channel: str) -> None:
        self._pending_joins.discard(channel.lower())
        if not self._pending_joins:
            self.ready.set()

    async def _rejoin(self, channel: str) -> None:
        await asyncio.sleep(self._min_backoff_s * 10)
        self._send_now("JOIN", channel)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except DeliveryError as error:
                log.info("irc %s: reply not sent: %s", self.name, error)
            except Exception:
                log.exception("irc %s: handling a message failed", self.name)

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
