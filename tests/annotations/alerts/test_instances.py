"""Alert instances and rule statuses in the control DB, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotations.alerts.instances import (
    RuleStatus,
    drop_rules_except,
    load_instances,
    record_rule_status,
    rule_statuses,
    save_instances,
)
from annotations.alerts.model import Instance, fingerprint
from annotations.control.db import ControlDB

NS = 10**9


def instance(rule: str, state: str = "firing", **labels: str) -> Instance:
    full = {"alertname": rule, **labels}
    return Instance(
        rule=rule,
        labels=full,
        fingerprint=fingerprint(full),
        state=state,
        value=0.031,
        evaluated_ns=1_700_000_300 * NS,
        active_ns=1_700_000_000 * NS,
        fired_ns=1_700_000_060 * NS if state == "firing" else None,
        last_held_ns=1_700_000_300 * NS,
        annotation_id=7 if state == "firing" else None,
        annotations={"summary": "web errors at 3.1% — über"},
    )


def by_fp(*instances: Instance) -> dict[str, Instance]:
    return {i.fingerprint: i for i in instances}


def test_saved_instances_load_back_equal(control_db: ControlDB) -> None:
    web = instance("HighErrorRate", service="web")
    api = instance("HighErrorRate", state="pending", service="api")
    disk = Instance(
        rule="DiskFull",
        labels={"alertname": "DiskFull"},
        fingerprint=fingerprint({"alertname": "DiskFull"}),
        state="error",
        value=None,
        evaluated_ns=5 * NS,
        error="unknown metric disk.free",
    )
    save_instances(control_db, "HighErrorRate", by_fp(web, api))
    save_instances(control_db, "DiskFull", by_fp(disk))
    assert load_instances(control_db) == by_fp(web, api, disk)


def test_saving_a_rule_replaces_its_rows_and_leaves_the_other_rules(
    control_db: ControlDB,
) -> None:
    web, api = instance("A", service="web"), instance("A", service="api")
    other = instance("B", service="web")
    save_instances(control_db, "A", by_fp(web, api))
    save_instances(control_db, "B", by_fp(other))
    resolved = replace(web, state="resolved", resolved_ns=9 * NS)
    save_instances(control_db, "A", by_fp(resolved))
    assert load_instances(control_db) == by_fp(resolved, other)
    save_instances(control_db, "A", {})
    assert load_instances(control_db) == by_fp(other)


def test_saving_joins_the_callers_transaction(control_db: ControlDB) -> None:
    save_instances(control_db, "A", by_fp(instance("A", service="web")))
    before = load_instances(control_db)

    def failed_round() -> None:
        with control_db.transaction():
            save_instances(control_db, "A", by_fp(instance("A", service="api")))
            record_rule_status(control_db, "A", "r.yaml:1", 5, 0.1, "")
            raise RuntimeError("the round failed")

    with pytest.raises(RuntimeError):
        failed_round()
    assert load_instances(control_db) == before
    assert rule_statuses(control_db) == {}


def test_a_nan_value_reads_back_as_none(control_db: ControlDB) -> None:
    nan = replace(instance("A"), value=float("nan"))
    save_instances(control_db, "A", by_fp(nan))
    assert load_instances(control_db)[nan.fingerprint].value is None


def test_nul_in_an_error_is_stored_as_a_replacement_character(control_db: ControlDB) -> None:
    failed = replace(instance("A"), state="error", error="no metric 'a\x00b'")
    save_instances(control_db, "A", by_fp(failed))
    record_rule_status(control_db, "A", "a.yaml:1", NS, 0.1, "no metric 'a\x00b'")
    assert load_instances(control_db)[failed.fingerprint].error == "no metric 'a\ufffdb'"
    assert rule_statuses(control_db)["A"].error == "no metric 'a\ufffdb'"


def test_two_rules_with_one_fingerprint_share_a_row_instead_of_failing(
    control_db: ControlDB,
) -> None:
    a = instance("A", service="web")
    b = replace(a, rule="B", state="pending")
    save_instances(control_db, "A", by_fp(a))
    save_instances(control_db, "B", by_fp(b))
    assert load_instances(control_db) == by_fp(b)


def test_a_rules_status_is_its_last_evaluation(control_db: ControlDB) -> None:
    record_rule_status(control_db, "A", "rules/a.yaml:1", 10 * NS, 0.25, "")
    record_rule_status(control_db, "B", "rules/b.yaml:4", 11 * NS, 0.5, "")
    record_rule_status(control_db, "A", "rules/a.yaml:3", 20 * NS, 0.125, "query failed: boom")
    assert rule_statuses(control_db) == {
        "A": RuleStatus("A", "rules/a.yaml:3", 20 * NS, 0.125, "query failed: boom"),
        "B": RuleStatus("B", "rules/b.yaml:4", 11 * NS, 0.5, ""),
    }


def test_dropping_removed_rules_forgets_their_statuses_and_instances(
    control_db: ControlDB,
) -> None:
    for name in ("A", "B", "C"):
        record_rule_status(control_db, name, f"r.yaml:{ord(name)}", NS, 0.1, "")
    save_instances(control_db, "A", by_fp(instance("A")))
    save_instances(control_db, "B", by_fp(instance("B")))
    save_instances(control_db, "D", by_fp(instance("D")))  # instances, no status yet
    drop_rules_except(control_db, ["A", "C"])
    assert set(rule_statuses(control_db)) == {"A", "C"}
    assert [i.rule for i in load_instances(control_db).values()] == ["A"]
    drop_rules_except(control_db, [])
    assert rule_statuses(control_db) == {}
    assert load_instances(control_db) == {}


TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
NS_VALUES = st.integers(-(2**63) + 1, 2**63 - 1)
LABELS = st.dictionaries(TEXT, TEXT, max_size=4)


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    labels = {"alertname": "R", **draw(LABELS)}
    return Instance(
        rule="R",
        labels=labels,
        fingerprint=fingerprint(labels),
        state=draw(st.sampled_from(["pending", "firing", "resolved", "nodata", "error"])),
        value=draw(st.none() | st.floats(allow_nan=False)),
        evaluated_ns=draw(NS_VALUES),
        active_ns=draw(st.none() | NS_VALUES),
        fired_ns=draw(st.none() | NS_VALUES),
        last_held_ns=draw(st.none() | NS_VALUES),
        resolved_ns=draw(st.none() | NS_VALUES),
        error=draw(TEXT),
        annotation_id=draw(st.none() | st.integers(1, 2**63 - 1)),
        annotations=draw(LABELS),
    )


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(saved=st.lists(instances(), max_size=4, unique_by=lambda i: i.fingerprint))
def test_any_instances_round_trip(control_db: ControlDB, saved: list[Instance]) -> None:
    save_instances(control_db, "R", by_fp(*saved))
    assert load_instances(control_db) == by_fp(*saved)
