"""Node locks on a PostgreSQL server that goes away: nobody holds the lock meanwhile, and the
node that held it takes it again on its first try once the server is back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shipboard.node_lock import DUTIES, NodeLock
from tests import postgres
from tests.postgres import OwnPostgres

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

own_pg_server = postgres.own_pg_server
own_pg = postgres.own_pg
own_pg_url = postgres.own_pg_url


@pytest.mark.parametrize("duty", sorted(DUTIES))
def test_the_holder_takes_its_lock_again_on_the_first_try_after_an_outage(
    own_pg: OwnPostgres, own_pg_url: str, tmp_path: Path, duty: str
) -> None:
    holder = NodeLock(duty, own_pg_url, tmp_path / "a")
    standby = NodeLock(duty, own_pg_url, tmp_path / "b")
    try:
        assert holder.try_acquire()
        assert not standby.try_acquire()
        own_pg.stop("immediate")
        started = time.monotonic()
        assert not holder.try_acquire()
        assert not standby.try_acquire()
        assert time.monotonic() - started < 1.0
        own_pg.start()
        assert holder.try_acquire()
        assert not standby.try_acquire()
    finally:
        holder.release()
        standby.release()


def test_a_restart_between_two_tries_costs_the_holder_no_turn(
    own_pg: OwnPostgres, own_pg_url: str, tmp_path: Path
) -> None:
    """The holder's session died with the server; the next try sees that, reconnects and
    takes the lock again before the standby's try."""
    holder = NodeLock("aggregator", own_pg_url, tmp_path / "a")
    standby = NodeLock("aggregator", own_pg_url, tmp_path / "b")
    try:
        assert holder.try_acquire()
        own_pg.stop("fast")
        own_pg.start()
        assert holder.try_acquire()
        assert not standby.try_acquire()
        holder.release()
        assert standby.try_acquire()
    finally:
        holder.release()
        standby.release()
