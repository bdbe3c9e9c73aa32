"""`!alerts`: what is firing, read from the alert instances the engine keeps in the control DB."""

from __future__ import annotations

from annotations.alerts.instances import load_instances
from annotations.alerts.model import Instance
from annotations.chat.bot import HELP, MAX_ALERT_LINES, Bot
from annotations.control.db import ControlDB
from storage.records import NS_PER_S
from tests.annotations.alerts.stored import save_all, stored

NOW_NS = 1_800_000_000 * NS_PER_S
MINUTE_NS = 60 * NS_PER_S
PUBLIC_URL = "https://shipboard.example.com"


def alert(
    rule: str, state: str, labels: dict[str, str], since_ns: int, summary: str = ""
) -> Instance:
    return stored(rule, state, labels, 0.031, since_ns, NOW_NS, summary)


async def save(db: ControlDB, *alerts: Instance) -> None:
    await db.run(save_all, db, *alerts)


def bot(db: ControlDB) -> Bot:
    return Bot(
        db,
        alerts=lambda: load_instances(db).values(),
        public_url=PUBLIC_URL,
        clock=lambda: NOW_NS,
    )


async def test_alerts_lists_what_is_firing_oldest_first_with_a_link(control_db: ControlDB) -> None:
    older = alert(
        "HighErrorRate",
        "firing",
        {"service": "web", "severity": "page"},
        NOW_NS - 7 * MINUTE_NS - 12 * NS_PER_S,
        "web errors at 3.1%\r\nPRIVMSG #ops :forged",
    )
    newer = alert("SlowCheckout", "firing", {}, NOW_NS - 30 * NS_PER_S)
    pending = alert("DiskFilling", "pending", {"host": "db-1"}, NOW_NS)
    await save(control_db, older, newer, pending)

    lines = await bot(control_db).answer("!alerts")

    start_s = (NOW_NS - 7 * MINUTE_NS - 12 * NS_PER_S) // NS_PER_S - 30 * 60
    assert lines == [
        "FIRING HighErrorRate service=web severity=page: 0.031 for 7m12s"
        " · web errors at 3.1% PRIVMSG #ops :forged",
        "FIRING SlowCheckout: 0.031 for 30s",
        f"{PUBLIC_URL}/d/services?from={start_s}&to={NOW_NS // NS_PER_S + 30 * 60}",
    ]


async def test_alerts_says_when_nothing_fires(control_db: ControlDB) -> None:
    pending = alert("DiskFilling", "pending", {"host": "db-1"}, NOW_NS)
    await save(control_db, pending)
    assert await bot(control_db).answer("!alerts") == ["nothing is firing"]


async def test_alerts_shows_ten_and_counts_the_rest(control_db: ControlDB) -> None:
    many = [
        alert("Busy", "firing", {"host": f"h{i:02d}"}, NOW_NS - i * NS_PER_S) for i in range(13)
    ]
    await save(control_db, *many)
    lines = await bot(control_db).answer("!alerts")
    assert len(lines) == MAX_ALERT_LINES + 2
    assert lines[0] == "FIRING Busy host=h12: 0.031 for 12s"
    assert lines[MAX_ALERT_LINES] == "… and 3 more"


async def test_a_bot_without_alerts_ignores_the_command_and_help_names_it(
    control_db: ControlDB,
) -> None:
    assert await Bot(control_db).answer("!alerts") == []
    assert "!alerts: what is firing" in HELP
