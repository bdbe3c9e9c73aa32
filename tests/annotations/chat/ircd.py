"""A real IRC server for tests: Debian's ngIRCd in the foreground on 127.0.0.1, and a small
blocking IRC client that watches a channel the way a person in it would."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotations.chat.irc_protocol import IrcMessage, format_line, parse_line
from tests.launcher import HOST, ServerProcess, free_port

CONFIG = """[Global]
Name = irc.shipboard.test
Info = Shipboard test server
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = Shipboard tests
[Limits]
PingTimeout = 120
[Options]
PAM = no
DNS = no
Ident = no
"""


@dataclass
class Ircd:
    """ngIRCd on a fixed free port, stopped and started again by the tests."""

    directory: Path
    port: int
    server: ServerProcess | None = None

    def start(self, timeout_s: float = 10.0) -> Ircd:
        binary = shutil.which("ngircd") or (
            "/usr/sbin/ngircd" if os.path.exists("/usr/sbin/ngircd") else None
        )
        if binary is None:
            pytest.fail(
                "ngircd is not installed: run scripts/test as root, or apt-get install ngircd"
            )
        conf = self.directory / "ngircd.conf"
        conf.write_text(CONFIG.format(port=self.port))
        self.server = ServerProcess(
            "ngircd", [binary, "-n", "-f", str(conf)], self.directory / "ngircd.log",
            self._listens, timeout_s=timeout_s,
        ).start()  # fmt: skip
        return self

    def _listens(self) -> bool:
        with socket.create_connection((HOST, self.port), timeout=1):
            return True

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.server = None


def make_ircd(directory: Path) -> Ircd:
    return Ircd(directory, free_port()).start()


class Watcher:
    """A person in a channel: registers, joins, answers PING, and collects PRIVMSGs."""

    def __init__(self, port: int, nick: str, channel: str) -> None:
        self.nick = nick
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._buffer = b""
        self.send("NICK", nick)
        self.send("USER", nick, "0", "*", "watcher")
        self.wait_for(lambda m: m.command == "001")
        self.send("JOIN", channel)
        self.wait_for(lambda m: m.command == "366")

    def send(self, command: str, *params: str) -> None:
        self.sock.sendall(format_line(command, *params))

    def say(self, target: str, text: str) -> None:
        self.send("PRIVMSG", target, text)

    def messages(self, timeout_s: float) -> list[IrcMessage]:
        """Every message read until `timeout_s` passes without a full line."""
        found: list[IrcMessage] = []
        self.sock.settimeout(timeout_s)
        while True:
            while b"\r\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\r\n", 1)
                message = parse_line(line)
                if message.command == "PING":
                    self.send("PONG", message.params[-1])
                found.append(message)
            if found:
                return found
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return found
            if not data:
                raise ConnectionError("server closed the watcher's connection")
            self._buffer += data

    def wait_for(self, predicate: object, timeout_s: float = 20.0) -> IrcMessage:
        assert callable(predicate)
        deadline = time.monotonic() + timeout_s
        seen: list[IrcMessage] = []
        while time.monotonic() < deadline:
            for message in self.messages(max(0.05, deadline - time.monotonic())):
                seen.append(message)
                if predicate(message):
                    return message
        raise AssertionError(f"no such message in {timeout_s} s; saw {seen[-20:]!r}")

    def privmsgs(self, timeout_s: float) -> list[str]:
        """The text of every PRIVMSG heard in `timeout_s`."""
        texts: list[str] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self.messages(max(0.05, deadline - time.monotonic())):
                if message.command == "PRIVMSG":
                    texts.append(message.params[-1])
        return texts

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("QUIT", "bye")
        self.sock.close()
