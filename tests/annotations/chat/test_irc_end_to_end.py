"""Announcements and the bot on a real IRC server (ngIRCd) with a real `shipboard run`."""

from __future__ import annotations

import json
from collections.abc import Callable
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
