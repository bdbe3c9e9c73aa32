"""Control DB outage: PostgreSQL stopped under API load, then started again.

    .venv/bin/python -m bench.control_db_outage [--outage-s 5] [--after-s 10] [--rate 30]

A PostgreSQL server of its own (tests/postgres.py, never the shared one), and `shipboard run
--control-db postgresql://… --notify http://127.0.0.1:P/hook` with a local webhook receiver.
A client thread sends `--rate` requests/s in turn: a deploy POST (each with an idempotency key
of its own, resent with the same key after a 503 until it is answered 201, as `shipboard
deploy` does), a GET of the deploy list and a line-protocol write. After `--before-s`,
PostgreSQL is stopped (`pg_ctl stop -m immediate`) for `--outage-s`, then started; the load
runs `--after-s` more. Then, once the audit entries kept meanwhile are written:

- answers by phase and status, and API answer times before (p50) and during the outage (p50,
  p99, max);
- time from the restart to the first 2xx answer, and to the last 503;
- deploys recorded against keys answered 201 (a duplicate would show), announcements received
  per deploy, and the audit entries of the refused deploy POSTs against the 503s answered.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.postgres import own_postgres
from tests.receiver import Receiver
from tests.shipboard.control_db_outage import run_outage, shipboard_on


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.control_db_outage", description=__doc__)
    parser.add_argument("--before-s", type=float, default=3.0)
    parser.add_argument("--outage-s", type=float, default=5.0)
    parser.add_argument("--after-s", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0, help="requests/s, all kinds")
    args = parser.parse_args(argv)
    with (
        own_postgres() as pg,
        Receiver() as receiver,
        tempfile.TemporaryDirectory(prefix="shipboard-outage-") as workdir,
        shipboard_on(pg.create_database(), receiver, Path(workdir)) as node,
    ):
        run = run_outage(pg, node, receiver, before_s=args.before_s, outage_s=args.outage_s,
                         after_s=args.after_s, rate=args.rate)  # fmt: skip
    print(json.dumps(run.figures(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
