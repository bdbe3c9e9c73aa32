"""Announcements and the bot on a real IRC server (ngIRCd) with a real `shipboard run`."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from annotations.chat.irc_protocol import IrcMessage
from tests.annotations.chat.ircd import Watcher, make_ircd
from tests.launcher import wait_for
from tests.running import RunningShipboard

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow


def _privmsg_from(nick: str, text_start: str) -> Callable[[IrcMessage], bool]:
    return lambda m: (
        m.command == "PRIVMSG" and m.nick == nick and m.params[-1].startswith(text_start)
    )


def test_deploys_are_announced_answered_and_delivered_after_an_ircd_restart(tmp_path: Path):
    (tmp_path / "irc").mkdir()
    ircd = make_ircd(tmp_path / "irc")
    # Someone already holds the bot's nick: the bot must register under another one.
    squatter = Watcher(ircd.port, "shipbot", "#elsewhere")
    alice = Watcher(ircd.port, "alice", "#ship")
    shipboard = RunningShipboard(
        tmp_path / "data",
        [
            "--no-agent",
            "--public-url", "http://dash.example",
            "--notify", f"irc://shipbot@127.0.0.1:{ircd.port}/#ship",
            "--notify-retry", "0.2",
            "--notify-timeout", "3",
            "--notify-max-tries", "50",
        ],
    )  # fmt: skip
    try:
        shipboard.start()
        joined = alice.wait_for(lambda m: m.command == "JOIN" and m.nick.startswith("shipbo"))
        bot = joined.nick
        assert bot == "shipbot_"

        status, body = shipboard.post(
            "/api/v1/deploys",
            json.dumps(
                {"service": "web", "environment": "prod", "version": "3f2c1a9",
                 "description": "faster search", "who": "alice"}
            ).encode(),
        )  # fmt: skip
        assert status == 201, body
        deploy_id = json.loads(body)["id"]
        said = alice.wait_for(_privmsg_from(bot, "[deploy] alice started"))
        text = said.params[-1]
        assert said.params[0] == "#ship"
        assert text.startswith('[deploy] alice started web 3f2c1a9 to prod: "faster search" ')
        assert text.split(" ")[-1].startswith("http://dash.example/d/services?from=")

        alice.say("#ship", "!deploys")
        answer = alice.wait_for(_privmsg_from(bot, f"#{deploy_id} web 3f2c1a9 to prod by alice"))
        assert "running" in answer.params[-1]
        alice.say(bot, "!help")
        private = alice.wait_for(_privmsg_from(bot, "!deploys [service]"))
        assert private.params[0] == "alice"

        # The server goes away; the finish is queued, and delivered once the bot is back.
        alice.close()
        squatter.close()
        ircd.stop()
        status, body = shipboard.post(
            f"/api/v1/deploys/{deploy_id}/finish", json.dumps({"status": "succeeded"}).encode()
        )
        assert status == 200, body
        ircd.start()
        alice = Watcher(ircd.port, "alice", "#ship")
        # The bot is back under its own nick: the squatter is gone.
        finished = alice.wait_for(_privmsg_from("shipbot", "[deploy] web 3f2c1a9 succeeded in"), 30)
        assert finished.params[0] == "#ship"
        # Counted once the queue row is gone, just after the line went out.
        wait_for(
            lambda: (
                shipboard.metric_value("shipboard_announcements_delivered_total", target="irc") == 2
            )
        )
    finally:
        alice.close()
        squatter.close()
        if shipboard.process is not None:
            shipboard.stop()
        ircd.stop()


ERRORS_RULE = """\
- name: WebErrors
  query: {metric: app.errors.count, agg: sum}
  window: 3s
  op: ">"
  threshold: 1
  interval: 1s
  annotations: {summary: "errors: {value:.0f}"}
"""


@contextmanager
def _errors_sent_to(port: int) -> Iterator[None]:
    """StatsD error counts sent every 0.2 s while inside."""
    done = threading.Event()

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not done.wait(0.2):
                sock.sendto(b"app.errors:1|c", ("127.0.0.1", port))

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield
    finally:
        done.set()
        sender.join()


def test_an_alert_is_said_in_the_channel_and_the_bot_lists_it(tmp_path: Path):
    (tmp_path / "irc").mkdir()
    (tmp_path / "data" / "rules").mkdir(parents=True)
    (tmp_path / "data" / "rules" / "errors.yaml").write_text(ERRORS_RULE)
    ircd = make_ircd(tmp_path / "irc")
    alice = Watcher(ircd.port, "alice", "#ship")
    shipboard = RunningShipboard(
        tmp_path / "data",
        [
            "--no-agent", "--flush-interval", "1", "--idle-flushes", "0",
            "--rules-interval", "1",
            "--notify", f"irc://shipbot@127.0.0.1:{ircd.port}/#ship",
            "--notify-retry", "0.2",
        ],
    )  # fmt: skip
    try:
        shipboard.start()
        with _errors_sent_to(shipboard.statsd_port):
            said = alice.wait_for(_privmsg_from("shipbot", "[alert] FIRING WebErrors"), 30)
            assert said.params[0] == "#ship"
            assert "errors: " in said.params[-1]
            alice.say("#ship", "!alerts")
            listed = alice.wait_for(_privmsg_from("shipbot", "FIRING WebErrors: "), 10)
            assert listed.params[0] == "#ship"
        resolved = alice.wait_for(_privmsg_from("shipbot", "[alert] RESOLVED WebErrors"), 30)
        assert resolved.params[0] == "#ship"
    finally:
        alice.close()
        if shipboard.process is not None:
            shipboard.stop()
        ircd.stop()
