"""A real `shipboard run --control-db postgresql://…` under light API load while its PostgreSQL
(a server of the test's own) is stopped for 5 s and started again: 503 JSON within a second
meanwhile, 2xx again within 10 s, nothing recorded or announced twice, every refused call
audited, ingest untouched, and the aggregator lock taken again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import postgres
from tests.launcher import wait_for
from tests.postgres import OwnPostgres
from tests.receiver import Receiver
from tests.shipboard.control_db_outage import run_outage, shipboard_on

# End to end: starts server processes (the fast lane, -m "not slow", leaves it out).
pytestmark = pytest.mark.slow

own_pg_server = postgres.own_pg_server
own_pg = postgres.own_pg
own_pg_url = postgres.own_pg_url


def test_a_five_second_postgresql_outage_under_api_load(
    own_pg: OwnPostgres, own_pg_url: str, tmp_path: Path
) -> None:
    with Receiver() as receiver, shipboard_on(own_pg_url, receiver, tmp_path) as node:
        run = run_outage(node=node, pg=own_pg, receiver=receiver,
                         before_s=2.0, outage_s=5.0, after_s=10.0, rate=20.0)  # fmt: skip
        # The aggregator's lock, lost with the server's sessions, is taken again.
        wait_for(lambda: node.output().count("this node now runs the rollups") >= 2, 15.0)
        assert "aggregator lock lost" in node.output()
        # /metrics counts the refused calls and the audit entries kept, then written.
        refused_calls = node.metric_value("shipboard_control_db_refused_total")
        assert refused_calls >= len([a for a in run.answers if a.status == 503]) > 0
        kept = node.metric_value("shipboard_audit_kept_total")
        wait_for(lambda: node.metric_value("shipboard_audit_written_total") == kept > 0)
        assert node.metric_value("shipboard_audit_backlog") == 0
    figures = run.figures()

    assert {a.status for a in run.answers} <= {200, 201, 204, 503}, figures["answers"]
    assert max(a.took_s for a in run.answers) < 1.0
    during = [a for a in run.answers if run.phase(a) == "during"]
    api_during = [a for a in during if a.kind != "write"]
    assert len(api_during) >= 40
    # Requests sent in the first moments may still have been answered before the stop.
    refused = [a for a in api_during if a.sent_s > run.stopped_s + 0.2]
    assert {a.status for a in refused} == {503}
    assert all(a.error.startswith("control database unavailable: ") for a in refused)
    assert {a.status for a in during if a.kind == "write"} == {204}  # ingest needs no control DB

    after = [a for a in run.answers if run.phase(a) == "after" and a.kind != "write"]
    assert figures["restart_to_first_2xx_s"] < 10.0
    assert all(a.status in (200, 201) for a in after if a.sent_s > run.started_s + 10.0)
    assert figures["restart_to_last_503_s"] is None or figures["restart_to_last_503_s"] < 10.0
    assert len([a for a in after if a.status in (200, 201)]) >= 50

    # Nothing twice: each key answered 201 once is one deploy, announced once.
    assert len(run.recorded_keys) == len(set(run.recorded_keys))
    assert sorted(run.deploy_versions) == sorted(
        "v" + key.removeprefix("outage-") for key in run.recorded_keys
    )
    assert figures["deploys_recorded_twice"] == 0
    assert figures["announcements"] == len(run.recorded_keys)
    assert figures["announced_twice"] == 0
    # Every deploy POST is audited once, the refused ones with their 503.
    assert figures["audit_deploy_posts"] == figures["deploy_posts_sent"]
    assert figures["audit_refused_deploy_posts"] == figures["deploy_posts_answered_503"] > 0
