"""ControlDB: migrations, transactions and conflicts behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from annotations.control.db import MIGRATIONS, ControlDB
from annotations.control.errors import ConflictError
from annotations.control.notes import add_annotation, find_by_key, list_annotations


def test_open_applies_every_migration_once(control_url: str, tmp_path: Path) -> None:
    first = ControlDB.open(control_url, tmp_path)
    assert first.schema_version() == len(MIGRATIONS)
    first.close()
    again = ControlDB.open(control_url, tmp_path)
    rows = again.query("SELECT version FROM schema_version ORDER BY version")
    assert [r["version"] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    again.close()


def test_empty_url_opens_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    db = ControlDB.open("", tmp_path / "data")
    assert db.dialect == "sqlite"
    db.close()
    assert (tmp_path / "data" / "control.db").is_file()


def test_flags_table_round_trips_a_document(control_db: ControlDB) -> None:
    control_db.execute(
        "INSERT INTO flags (key, doc, version, updated_at) VALUES (?, ?, ?, ?)",
        ("checkout", '{"enabled": true}', 1, 5),
    )
    assert control_db.query("SELECT key, doc, version, updated_at FROM flags") == [
        {"key": "checkout", "doc": '{"enabled": true}', "version": 1, "updated_at": 5}
    ]


def test_duplicate_primary_key_is_a_conflict(control_db: ControlDB) -> None:
    sql = "INSERT INTO flags (key, doc, version, updated_at) VALUES (?, ?, ?, ?)"
    control_db.execute(sql, ("a", "{}", 1, 1))
    with pytest.raises(ConflictError):
        control_db.execute(sql, ("a", "{}", 1, 2))


def test_a_failed_transaction_leaves_nothing(control_db: ControlDB) -> None:
    sql = "INSERT INTO flags (key, doc, version, updated_at) VALUES (?, ?, ?, ?)"

    def insert_twice() -> None:
        with control_db.transaction():
            control_db.execute(sql, ("x", "{}", 1, 1))
            control_db.execute(sql, ("x", "{}", 1, 1))

    with pytest.raises(ConflictError):
        insert_twice()
    assert control_db.query("SELECT key FROM flags") == []
    control_db.execute(sql, ("y", "{}", 1, 1))
    assert control_db.query("SELECT key FROM flags") == [{"key": "y"}]


def test_a_read_is_not_blocked_by_an_open_write_transaction(control_db: ControlDB) -> None:
    sql = "INSERT INTO flags (key, doc, version, updated_at) VALUES (?, ?, ?, ?)"
    control_db.execute(sql, ("before", "{}", 1, 1))

    def keys() -> list[str]:
        return [r["key"] for r in control_db.query("SELECT key FROM flags ORDER BY key")]

    inside, release = threading.Event(), threading.Event()
    seen_inside: list[list[str]] = []

    def write() -> None:
        with control_db.transaction():
            control_db.execute(sql, ("during", "{}", 1, 1))
            seen_inside.append(keys())
            inside.set()
            release.wait(30)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert inside.wait(10)
        seen: list[list[str]] = []
        reader = threading.Thread(target=lambda: seen.append(keys()))
        reader.start()
        # The bound is for a failure only: a reader that waited for the lock would still be
        # waiting, since the transaction stays open until `release` below.
        reader.join(10)
        assert not reader.is_alive(), "the read waited for the write transaction"
        assert seen == [["before"]]  # the last commit, not the open transaction's row
    finally:
        release.set()
        writer.join(10)
    assert seen_inside == [["before", "during"]]  # a transaction reads its own writes
    assert keys() == ["before", "during"]


def test_idempotency_key_records_once(control_db: ControlDB) -> None:
    ids = {
        add_annotation(control_db, "note", start_ns=10, title="t", who="ops", idempotency_key="k1")
        for _ in range(3)
    }
    assert len(ids) == 1
    found = find_by_key(control_db, "k1")
    assert found is not None
    assert found.id == ids.pop()
    assert len(list_annotations(control_db, 0, 100)) == 1


def test_list_orders_by_time_and_filters_kind_tags_and_overlap(control_db: ControlDB) -> None:
    add_annotation(control_db, "note", start_ns=30, title="c", who="a", tags={"service": "web"})
    add_annotation(control_db, "deploy", start_ns=10, title="a", who="a", tags={"service": "web"})
    add_annotation(control_db, "flag", start_ns=20, title="b", who="a", tags={"flag": "f"})
    add_annotation(control_db, "note", start_ns=1, end_ns=15, title="region", who="a")
    add_annotation(control_db, "note", start_ns=200, title="late", who="a")

    assert [a.title for a in list_annotations(control_db, 12, 100)] == ["region", "b", "c"]
    assert [a.title for a in list_annotations(control_db, 0, 100, kinds=["note"])] == [
        "region",
        "c",
    ]
    web = list_annotations(control_db, 0, 100, tags={"service": "web"}, newest_first=True)
    assert [a.title for a in web] == ["c", "a"]


def test_an_alert_still_firing_overlaps_every_range_after_its_start(control_db: ControlDB) -> None:
    add_annotation(control_db, "alert", start_ns=10, title="firing", who="shipboard")
    add_annotation(control_db, "alert", start_ns=20, end_ns=30, title="resolved", who="shipboard")
    add_annotation(control_db, "note", start_ns=15, title="instant", who="a")

    assert [a.title for a in list_annotations(control_db, 50, 60)] == ["firing"]
    assert [a.title for a in list_annotations(control_db, 25, 60)] == ["firing", "resolved"]
    assert list_annotations(control_db, 0, 5) == []
