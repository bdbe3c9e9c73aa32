"""The IRC line parser and writer, target URLs, the token bucket, nicks and text splitting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.chat.errors import IrcParseError, TargetError
from annotations.chat.irc_client import IrcConfig, TokenBucket
from annotations.chat.irc_protocol import (
    MAX_LINE,
    IrcMessage,
    alternative_nick,
    format_line,
    parse_line,
    split_text,
)

_word = st.text(
    st.characters(blacklist_characters="\0\r\n :", blacklist_categories=["Cs"]), min_size=1
).filter(lambda w: not w.startswith("@"))
_trailing = st.text(st.characters(blacklist_characters="\0\r\n", blacklist_categories=["Cs"]))


def test_parse_line_reads_prefix_command_and_trailing():
    message = parse_line(b":alice!~a@host PRIVMSG #ship :!deploys web\r\n")
    assert message == IrcMessage("alice!~a@host", "PRIVMSG", ("#ship", "!deploys web"))
    assert message.nick == "alice"
    assert parse_line(b"PING :irc.example") == IrcMessage("", "PING", ("irc.example",))
    assert parse_line(b":srv 001 bot :Welcome").params == ("bot", "Welcome")
    assert parse_line(b"@time=x :srv NOTICE * :hi").command == "NOTICE"
    assert parse_line(b":srv 433 * shipbot :Nickname in use").params[1] == "shipbot"


@pytest.mark.parametrize(
    "line",
    [b"", b"\r\n", b":prefixonly", b": PRIVMSG x", b"PRIV\0MSG x", b"12 x", b"PRIV-MSG x",
     b"A " + b"p " * 16],
)  # fmt: skip
def test_parse_line_refuses_what_is_not_a_message(line: bytes):
    with pytest.raises(IrcParseError):
        parse_line(line)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise_irc_parse_error_only(data: bytes):
    try:
        message = parse_line(data)
    except IrcParseError:
        return
    assert message.command
    assert len(message.params) <= 15


@pytest.mark.slow
@given(
    st.sampled_from(["PRIVMSG", "NOTICE", "JOIN", "PONG", "001"]),
    st.lists(_word, max_size=5),
    _trailing,
)
def test_format_then_parse_round_trips(command: str, middle: list[str], trailing: str):
    try:
        line = format_line(command, *middle, trailing)
    except ValueError:
        assert len((" ".join([command, *middle, ":" + trailing]) + "\r\n").encode()) > MAX_LINE
        return
    assert line.endswith(b"\r\n")
    assert len(line) <= MAX_LINE
    assert parse_line(line) == IrcMessage("", command, (*middle, trailing))


@pytest.mark.parametrize(
    ("command", "params"),
    [("PRIVMSG", ("#a", "two\r\nQUIT")), ("PRIVMSG", ("a b", "x")), ("PRI VMSG", ("x",)),
     ("PRIVMSG", (":a", "x")), ("PRIVMSG", ("#a", "x" * 600))],
)  # fmt: skip
def test_format_line_refuses_injection_and_long_lines(command: str, params: tuple[str, ...]):
    with pytest.raises(ValueError, match=r"."):
        format_line(command, *params)


@given(_trailing, st.integers(20, 400))
def test_split_text_keeps_every_word_within_the_byte_limit(text: str, limit: int):
    lines = split_text(text, limit)
    assert all(len(line.encode()) <= limit for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_irc_target_urls():
    config = IrcConfig.from_url("irc://shipbot:s3cret@irc.example:6697/#ship,#ops?tls=1")
    assert config == IrcConfig(
        "irc.example", 6697, "shipbot", ("#ship", "#ops"), password="s3cret", tls=True
    )
    assert "s3cret" not in config.name
    assert IrcConfig.from_url("ircs://bot@irc.example/%23ship").port == 6697
    assert IrcConfig.from_url("irc://irc.example/#a").nick == "shipboard"
    bad_urls = ["http://x/#a", "irc://bot@:1/#a", "irc://bot@h/", "irc://bot@h/nochan",
                "irc://waytoolongnick@h/#a", "irc://bot@h:port/#a", "irc://bot@h/#a b"]  # fmt: skip
    for bad in bad_urls:
        with pytest.raises(TargetError):
            IrcConfig.from_url(bad)


def test_token_bucket_allows_a_burst_then_paces():
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.delay_s() for _ in range(3)] == [0, 0, 0]
    assert bucket.delay_s() == pytest.approx(0.5)
    assert bucket.delay_s() == pytest.approx(1.0)
    now[0] = 10.0
    assert bucket.delay_s() == 0


def test_alternative_nicks_stay_within_nine_characters():
    assert alternative_nick("shipbot", 1) == "shipbot_"
    assert alternative_nick("shipboard", 1) == "shipboar_"
    assert alternative_nick("shipboard", 12) == "shipboa12"
