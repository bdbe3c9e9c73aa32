"""Silences: how matchers match labels (Hypothesis), and silences kept in the control DB on
SQLite and PostgreSQL: added, updated by id, listed, expired."""

from __future__ import annotations

from glob import escape
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.alerts.silences import (
    Silence,
    add_silence,
    expire_silence,
    list_silences,
    matches,
    silenced_by,
)
from annotations.control.db import ControlDB
from annotations.control.errors import BadRequestError, NotFoundError

NS = 10**9
NOW = 1_700_000_000 * NS
HOUR = 3600 * NS

NAMES = st.text("abcdefgh_", min_size=1, max_size=6)
VALUES = st.text(st.characters(codec="utf-8"), max_size=12)
LABELS = st.dictionaries(NAMES, VALUES, max_size=5)


@given(LABELS.filter(bool), st.data())
def test_a_silence_of_some_labels_exact_values_matches_them(
    labels: dict[str, str], data: st.DataObject
) -> None:
    names = data.draw(st.sets(st.sampled_from(sorted(labels)), min_size=1))
    assert matches({n: escape(labels[n]) for n in names}, labels)


@given(LABELS, LABELS, LABELS)
def test_labels_the_matchers_do_not_name_never_change_the_outcome(
    matchers: dict[str, str], labels: dict[str, str], more: dict[str, str]
) -> None:
    extra = {k: v for k, v in more.items() if k not in matchers}
    assert matches(matchers, labels | extra) == matches(matchers, labels)


@given(NAMES, VALUES, VALUES)
def test_an_exact_glob_matches_only_its_own_value(name: str, glob: str, value: str) -> None:
    assert matches({name: escape(glob)}, {name: value}) == (value == glob)


@given(NAMES, VALUES, VALUES)
def test_a_trailing_star_matches_every_value_with_that_prefix(
    name: str, prefix: str, value: str
) -> None:
    assert matches({name: escape(prefix) + "*"}, {name: value}) == value.startswith(prefix)


@given(LABELS, NAMES)
def test_a_missing_label_reads_as_empty(labels: dict[str, str], name: str) -> None:
    labels.pop(name, None)
    assert matches({name: "*"}, labels)
    assert matches({name: ""}, labels)
    assert not matches({name: "?*"}, labels)


@given(LABELS, LABELS, LABELS)
def test_all_matchers_must_match(
    first: dict[str, str], second: dict[str, str], labels: dict[str, str]
) -> None:
    both = first | {k: v for k, v in second.items() if k not in first}
    rest = {k: v for k, v in both.items() if k not in first}
    assert matches(both, labels) == (matches(first, labels) and matches(rest, labels))


def test_globs_are_case_sensitive_and_know_classes() -> None:
    assert matches({"host": "web-[0-9]*"}, {"host": "web-12"})
    assert not matches({"host": "web-[0-9]*"}, {"host": "web-x"})
    assert not matches({"host": "WEB*"}, {"host": "web-1"})


def add(
    db: ControlDB,
    matchers: dict[str, str],
    *,
    ends_ns: int = NOW + HOUR,
    comment: str = "deploying web",
    who: str = "alice",
    now_ns: int = NOW,
    silence_id: int | None = None,
) -> Silence:
    return add_silence(db, matchers, ends_ns, comment, who, now_ns, silence_id)


WEB = {"alertname": "HighErrorRate", "service": "web", "host": "web-1"}


def test_a_silence_is_active_until_its_end_then_expired_and_matches_nothing(
    control_db: ControlDB,
) -> None:
    silence = add(control_db, {"alertname": "HighErrorRate", "host": "web*"})
    assert (silence.starts_ns, silence.ends_ns, silence.who) == (NOW, NOW + HOUR, "alice")
    assert silence.state == "active"
    assert list_silences(control_db, NOW) == [silence]
    assert silenced_by(list_silences(control_db, NOW + HOUR - 1), WEB) == [silence.id]
    assert silenced_by(list_silences(control_db, NOW), {**WEB, "host": "db-1"}) == []
    later = list_silences(control_db, NOW + HOUR)
    assert [s.state for s in later] == ["expired"]
    assert silenced_by(later, WEB) == []
    assert list_silences(control_db, NOW + HOUR, active_only=True) == []


def test_silenced_by_lists_every_active_matching_silence(control_db: ControlDB) -> None:
    by_rule = add(control_db, {"alertname": "HighErrorRate"})
    by_host = add(control_db, {"host": "web-?"}, ends_ns=NOW + 2 * HOUR)
    add(control_db, {"service": "api"})
    expired = add(control_db, {"service": "web"})
    expire_silence(control_db, expired.id, NOW + 1)
    active = list_silences(control_db, NOW + 2, active_only=True)
    assert sorted(silenced_by(active, WEB)) == [by_rule.id, by_host.id]
    assert sorted(silenced_by(list_silences(control_db, NOW + 2), WEB)) == [by_rule.id, by_host.id]


def test_listing_puts_active_ones_first_ending_soonest_then_expired_latest_first(
    control_db: ControlDB,
) -> None:
    late = add(control_db, {"service": "a"}, ends_ns=NOW + 3 * HOUR)
    soon = add(control_db, {"service": "b"}, ends_ns=NOW + HOUR)
    gone_first = add(control_db, {"service": "c"})
    gone_last = add(control_db, {"service": "d"})
    expire_silence(control_db, gone_first.id, NOW + 10)
    expire_silence(control_db, gone_last.id, NOW + 20)
    listed = list_silences(control_db, NOW + 30)
    assert [s.id for s in listed] == [soon.id, late.id, gone_last.id, gone_first.id]
    assert [s.state for s in listed] == ["active", "active", "expired", "expired"]


def test_posting_again_with_the_id_extends_the_same_silence(control_db: ControlDB) -> None:
    silence = add(control_db, {"alertname": "HighErrorRate", "service": "web"})
    again = add(
        control_db,
        {"service": "web", "alertname": "HighErrorRate"},
        ends_ns=NOW + 2 * HOUR,
        comment="still deploying",
        who="bob",
        now_ns=NOW + 30 * NS,
        silence_id=silence.id,
    )
    assert again.id == silence.id
    assert (again.starts_ns, again.ends_ns) == (NOW, NOW + 2 * HOUR)
    assert (again.comment, again.who, again.created_ns) == ("still deploying", "bob", NOW)
    assert list_silences(control_db, NOW + 30 * NS) == [again]


def test_changed_matchers_or_an_expired_silence_give_a_new_silence(
    control_db: ControlDB,
) -> None:
    first = add(control_db, {"service": "web"})
    changed = add(control_db, {"service": "api"}, now_ns=NOW + 10, silence_id=first.id)
    assert changed.id != first.id
    assert changed.starts_ns == NOW + 10
    states = {s.id: s.state for s in list_silences(control_db, NOW + 10)}
    assert states == {first.id: "expired", changed.id: "active"}
    expire_silence(control_db, changed.id, NOW + 20)
    revived = add(control_db, {"service": "api"}, now_ns=NOW + 30, silence_id=changed.id)
    assert revived.id not in (first.id, changed.id)
    assert expire_silence(control_db, changed.id, NOW + 40).ends_ns == NOW + 20


@pytest.mark.parametrize(
    ("matchers", "fields", "message"),
    [
        ({}, {}, "at least one label"),
        ({"host": "*"}, {}, "must not match an empty value"),
        ({"host": "*", "service": ""}, {}, "must not match an empty value"),
        ({"": "web"}, {}, "1 to 1000 characters"),
        ({"host": "x" * 1001}, {}, "1 to 1000 characters"),
        ({f"l{i}": "x" for i in range(51)}, {}, "at most 50"),
        ({"host": "web"}, {"ends_ns": NOW}, "ends_at must be in the future"),
        ({"host": "web"}, {"ends_ns": NOW - HOUR}, "ends_at must be in the future"),
        ({"host": "web"}, {"comment": "  "}, "comment"),
        ({"host": "web"}, {"comment": "a\x00b"}, "NUL"),
        ({"host": "web"}, {"who": "\x00"}, "NUL"),
    ],
)
def test_bad_silences_are_refused_saying_why(
    control_db: ControlDB, matchers: dict[str, str], fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadRequestError, match=message):
        add(control_db, matchers, **fields)
    assert list_silences(control_db, NOW) == []


def test_unknown_ids_are_not_found(control_db: ControlDB) -> None:
    with pytest.raises(NotFoundError):
        add(control_db, {"host": "web"}, silence_id=404)
    with pytest.raises(NotFoundError):
        expire_silence(control_db, 404, NOW)
    assert list_silences(control_db, NOW) == []


def test_expiring_twice_keeps_the_first_end(control_db: ControlDB) -> None:
    silence = add(control_db, {"host": "web"})
    assert expire_silence(control_db, silence.id, NOW + 5).ends_ns == NOW + 5
    assert expire_silence(control_db, silence.id, NOW + 9).ends_ns == NOW + 5
