"""Silences: label globs that keep the alerts they match from being notified until they end.

A silence's matchers are `{label: glob}` (fnmatch, case-sensitive); it matches an alert when
every glob matches that label's value, a missing label reading as "". At least one glob must
not match "" (a silence of everything is refused, as Alertmanager does). A silence is active
from its start until its end; then it is expired: still listed, matching nothing.

Every function joins the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

import orjson

from annotations.control.db import ControlDB, Row
from annotations.control.errors import BadRequestError, NotFoundError
from annotations.control.timespec import format_time

MAX_MATCHERS = 50
MAX_TEXT = 1000
_COLUMNS = "id, matchers, starts_ns, ends_ns, comment, who, created_ns"

State = Literal["active", "expired"]


def matches(matchers: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether every glob of `matchers` matches its label in `labels` (missing: "")."""
    return all(fnmatchcase(labels.get(name, ""), glob) for name, glob in matchers.items())


@dataclass(frozen=True, slots=True)
class Silence:
    """A silence as listed at some moment: `state` is its state then."""

    id: int
    matchers: dict[str, str]
    starts_ns: int
    ends_ns: int
    comment: str
    who: str
    created_ns: int
    state: State

    @classmethod
    def from_row(cls, row: Row, now_ns: int) -> Silence:
        ends_ns = int(row["ends_ns"])
        return cls(
            int(row["id"]),
            orjson.loads(row["matchers"]),
            int(row["starts_ns"]),
            ends_ns,
            row["comment"],
            row["who"],
            int(row["created_ns"]),
            "active" if now_ns < ends_ns else "expired",
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether this silence is active and matches `labels`."""
        return self.state == "active" and matches(self.matchers, labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": self.matchers,
            "state": self.state,
            "starts_at": format_time(self.starts_ns),
            "ends_at": format_time(self.ends_ns),
            "starts_ns": self.starts_ns,
            "ends_ns": self.ends_ns,
            "comment": self.comment,
            "who": self.who,
            "created_ns": self.created_ns,
        }


def silenced_by(silences: Iterable[Silence], labels: Mapping[str, str]) -> list[int]:
    """The ids of the active silences among `silences` that match `labels`."""
    return [s.id for s in silences if s.matches(labels)]


def _checked(
    matchers: Mapping[str, str], ends_ns: int, comment: str, who: str, now_ns: int
) -> None:
    if not matchers:
        raise BadRequestError("matchers: give at least one label and its glob")
    if len(matchers) > MAX_MATCHERS:
        raise BadRequestError(f"matchers: at most {MAX_MATCHERS}")
    for name, glob in matchers.items():
        if not name or len(name) > MAX_TEXT or len(glob) > MAX_TEXT:
            raise BadRequestError(f"matchers: a label and its glob are 1 to {MAX_TEXT} characters")
    if all(fnmatchcase("", glob) for glob in matchers.values()):
        raise BadRequestError("matchers: at least one glob must not match an empty value")
    if ends_ns <= now_ns:
        raise BadRequestError("ends_at must be in the future")
    if not comment.strip():
        raise BadRequestError("comment: say why the alerts are silenced")
    if "\x00" in comment + who:  # PostgreSQL's text cannot hold one
        raise BadRequestError("comment and who must not hold NUL characters")


def _get(db: ControlDB, silence_id: int, now_ns: int) -> Silence:
    row = db.query_one(f"SELECT {_COLUMNS} FROM silences WHERE id = ?", (silence_id,))
    if row is None:
        raise NotFoundError(f"no silence {silence_id}")
    return Silence.from_row(row, now_ns)


def add_silence(
    db: ControlDB,
    matchers: Mapping[str, str],
    ends_ns: int,
    comment: str,
    who: str,
    now_ns: int,
    silence_id: int | None = None,
) -> Silence:
    """A new silence from now until `ends_ns`; or, given `silence_id`, that silence updated
    (its end, comment and author; as Alertmanager does, one that has expired or whose matchers
    change is expired and replaced by a new silence, whose id is returned)."""
    _checked(matchers, ends_ns, comment, who, now_ns)
    doc = orjson.dumps(dict(sorted(matchers.items()))).decode()
    with db.transaction():
        if silence_id is not None:
            old = _get(db, silence_id, now_ns)
            if old.state == "active" and old.matchers == dict(matchers):
                db.execute(
                    "UPDATE silences SET ends_ns = ?, comment = ?, who = ? WHERE id = ?",
                    (ends_ns, comment, who, silence_id),
                )
                return _get(db, silence_id, now_ns)
            expire_silence(db, silence_id, now_ns)
        new_id = db.insert(
            "INSERT INTO silences (matchers, starts_ns, ends_ns, comment, who, created_ns)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (doc, now_ns, ends_ns, comment, who, now_ns),
        )
        return _get(db, new_id, now_ns)


def list_silences(db: ControlDB, now_ns: int, *, active_only: bool = False) -> list[Silence]:
    """Silences as of `now_ns`, active ones first (ending soonest first), then the expired
    ones, latest ended first; `active_only` leaves the expired ones out."""
    if active_only:
        rows = db.query(
            f"SELECT {_COLUMNS} FROM silences WHERE ends_ns > ? ORDER BY ends_ns, id", (now_ns,)
        )
        return [Silence.from_row(row, now_ns) for row in rows]
    rows = db.query(f"SELECT {_COLUMNS} FROM silences ORDER BY ends_ns DESC, id DESC")
    found = [Silence.from_row(row, now_ns) for row in rows]
    active = [s for s in reversed(found) if s.state == "active"]
    return active + [s for s in found if s.state == "expired"]


def expire_silence(db: ControlDB, silence_id: int, now_ns: int) -> Silence:
    """End silence `silence_id` now; one already expired is left as it is."""
    with db.transaction():
        silence = _get(db, silence_id, now_ns)
        if silence.state == "expired":
            return silence
        db.execute("UPDATE silences SET ends_ns = ? WHERE id = ?", (now_ns, silence_id))
        return _get(db, silence_id, now_ns)
