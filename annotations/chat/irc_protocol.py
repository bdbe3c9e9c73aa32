"""The IRC wire protocol (RFC 1459/2812): messages parsed from and formatted into lines.

Lines from a server are parsed strictly (IrcParseError when a line is not a message); a line to
send is checked so that no parameter can smuggle in a second command, and text is split into
lines that fit 512 bytes once the server adds its prefix. Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from annotations.chat.errors import IrcParseError

MAX_LINE = 512  # bytes, CR LF included (RFC 2812 2.3)
NICK_LEN = 9  # RFC 1459's limit; ngIRCd keeps it by default
# What the server prepends when it relays our line: ":nick!~user@host " with a 63-byte host.
PREFIX_RESERVE = 1 + NICK_LEN + 2 + 10 + 1 + 63 + 1
CHANNEL_PREFIXES = ("#", "&", "+", "!")
JOIN_ERRORS = frozenset({"403", "405", "471", "473", "474", "475", "476", "477"})
_FORBIDDEN = ("\0", "\r", "\n")
_LINE_BREAK = re.compile(r"\r\n|[\r\n]")


@dataclass(frozen=True, slots=True)
class IrcMessage:
    """One message: `:prefix COMMAND param… :trailing`."""

    prefix: str
    command: str
    params: tuple[str, ...]

    @property
    def nick(self) -> str:
        return self.prefix.split("!", 1)[0]


def parse_line(line: bytes) -> IrcMessage:
    """A line from the server (CR LF optional); IrcParseError when it is not a message."""
    line = line.removesuffix(b"\n").removesuffix(b"\r")
    if not line or any(c in line for c in (b"\0", b"\r", b"\n")):
        raise IrcParseError("empty line or a NUL, CR or LF inside")
    text = line.decode("utf-8", errors="replace")
    if text.startswith("@"):  # IRCv3 message tags: not used here
        _, _, text = text.partition(" ")
    prefix = ""
    if text.startswith(":"):
        prefix, _, text = text[1:].partition(" ")
        if not prefix:
            raise IrcParseError("empty prefix")
    text = text.lstrip(" ")
    head, colon, trailing = text.partition(" :")
    if text.startswith(":"):
        head, colon, trailing = "", ":", text[1:]
    words = [word for word in head.split(" ") if word]  # only spaces separate (RFC 2812)
    if not words:
        raise IrcParseError("no command")
    command, middle = words[0].upper(), words[1:]
    valid = command.isascii() and (command.isalpha() or (len(command) == 3 and command.isdigit()))
    if not valid:
        raise IrcParseError(f"bad command {command[:20]!r}")
    params = (*middle, trailing) if colon else tuple(middle)
    if len(params) > 15:
        raise IrcParseError("more than 15 parameters")
    return IrcMessage(prefix, command, params)


def format_line(command: str, *params: str) -> bytes:
    """One outgoing line with CR LF; ValueError if it cannot be sent as it is."""
    if not command.isascii() or not command.isalnum():
        raise ValueError(f"bad command {command!r}")
    for param in params:
        if any(c in param for c in _FORBIDDEN):
            raise ValueError("a parameter holds NUL, CR or LF")
    for param in params[:-1]:
        if not param or " " in param or param.startswith(":"):
            raise ValueError(f"middle parameter {param!r} must be one word")
    words = [command, *params]
    if params and (not params[-1] or " " in params[-1] or params[-1].startswith(":")):
        words[-1] = ":" + params[-1]
    data = (" ".join(words) + "\r\n").encode()
    if len(data) > MAX_LINE:
        raise ValueError(f"line of {len(data)} bytes is over {MAX_LINE}")
    return data


def split_text(text: str, max_bytes: int) -> list[str]:
    """`text` as lines of at most `max_bytes` UTF-8 bytes, broken between words when possible."""
    lines: list[str] = []
    for paragraph in _LINE_BREAK.split(text):
        rest = paragraph.replace("\0", " ")
        while len(rest.encode()) > max_bytes:
            cut = rest.encode()[:max_bytes].decode("utf-8", errors="ignore")
            space = cut.rfind(" ")
            piece = cut[:space] if space > 0 else cut
            lines.append(piece)
            rest = rest[len(piece) :].lstrip(" ")
        if rest:
            lines.append(rest)
    return lines


def alternative_nick(nick: str, attempt: int) -> str:
    """The nick to try after `attempt` collisions: `shipboard` -> `shipboar_` -> `shipboa2`."""
    suffix = "_" if attempt == 1 else str(attempt)
    return nick[: NICK_LEN - len(suffix)] + suffix
