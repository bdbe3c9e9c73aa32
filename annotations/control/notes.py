"""Annotations: one table for deploys, flag changes and notes, and the merged time-ordered list.

A writer that wants its annotation announced hands `add_annotation` or `update_annotation` its
`Outbox` (`annotations.control.outbox`): the announcement is queued in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson

from annotations.control.db import ControlDB, Row
from annotations.control.errors import NotFoundError

if TYPE_CHECKING:
    from annotations.control.outbox import Outbox

KINDS = ("deploy", "flag", "note", "alert")
MAX_LIST = 10_000

_COLUMNS = "id, kind, start_ns, end_ns, tags, title, body, who, extra"


@dataclass(frozen=True, slots=True)
class Annotation:
    """An event on the graphs: a time (and optional end), a kind, tags, a title and a body."""

    id: int
    kind: str
    start_ns: int
    end_ns: int | None
    tags: dict[str, str]
    title: str
    body: str
    who: str
    extra: dict[str, Any]

    @classmethod
    def from_row(cls, row: Row) -> Annotation:
        return cls(
            id=int(row["id"]),
            kind=row["kind"],
            start_ns=int(row["start_ns"]),
            end_ns=None if row["end_ns"] is None else int(row["end_ns"]),
            tags=orjson.loads(row["tags"]),
            title=row["title"],
            body=row["body"],
            who=row["who"],
            extra=orjson.loads(row["extra"]),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _dumps(value: Mapping[str, Any]) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def add_annotation(
    db: ControlDB,
    kind: str,
    *,
    start_ns: int,
    title: str,
    who: str,
    body: str = "",
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
    end_ns: int | None = None,
    idempotency_key: str | None = None,
    outbox: Outbox | None = None,
) -> int:
    """Record an annotation and return its id, announced through `outbox` if one is given.
    A repeated `idempotency_key` records (and announces) nothing and returns the id of the first
    annotation recorded with it."""
    if kind not in KINDS:
        raise ValueError(f"unknown annotation kind {kind!r}")
    params = (
        kind,
        start_ns,
        end_ns,
        _dumps(tags or {}),
        title,
        body,
        who,
        _dumps(extra or {}),
        idempotency_key,
    )
    with db.transaction():
        row = db.query_one(
            "INSERT INTO annotations"
            " (kind, start_ns, end_ns, tags, title, body, who, extra, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            params,
        )
        if row is not None:
            if outbox is not None:
                outbox.append(db, get_annotation(db, int(row["id"])), "added")
            return int(row["id"])
        existing = db.query_one(
            "SELECT id FROM annotations WHERE idempotency_key = ?", (idempotency_key,)
        )
        if existing is None:
            raise NotFoundError("annotation vanished during an idempotent insert")
        return int(existing["id"])


def get_annotation(db: ControlDB, annotation_id: int) -> Annotation:
    row = db.query_one(f"SELECT {_COLUMNS} FROM annotations WHERE id = ?", (annotation_id,))
    if row is None:
        raise NotFoundError(f"no annotation {annotation_id}")
    return Annotation.from_row(row)


def find_by_key(db: ControlDB, idempotency_key: str) -> Annotation | None:
    row = db.query_one(
        f"SELECT {_COLUMNS} FROM annotations WHERE idempotency_key = ?", (idempotency_key,)
    )
    return None if row is None else Annotation.from_row(row)


def update_annotation(
    db: ControlDB,
    annotation_id: int,
    *,
    end_ns: int | None,
    extra: Mapping[str, Any],
    outbox: Outbox | None = None,
) -> None:
    """Set the end and replace the extra fields (a deploy's finish), announced through
    `outbox` if one is given."""
    with db.transaction():
        changed = db.execute(
            "UPDATE annotations SET end_ns = ?, extra = ? WHERE id = ?",
            (end_ns, _dumps(extra), annotation_id),
        )
        if not changed:
            raise NotFoundError(f"no annotation {annotation_id}")
        if outbox is not None:
            outbox.append(db, get_annotation(db, annotation_id), "updated")


def list_annotations(
    db: ControlDB,
    start_ns: int,
    end_ns: int,
    *,
    kinds: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    newest_first: bool = False,
) -> list[Annotation]:
    """Annotations that overlap [start_ns, end_ns], of `kinds` (all if empty), whose tags hold
    every `tags` pair, ordered by start time. An alert without an end is still firing: it
    overlaps every range after its start."""
    sql = (
        f"SELECT {_COLUMNS} FROM annotations WHERE start_ns <= ?"
        " AND (COALESCE(end_ns, start_ns) >= ? OR (end_ns IS NULL AND kind = 'alert'))"
    )
    params: list[Any] = [end_ns, start_ns]
    if kinds:
        sql += " AND kind IN (" + ", ".join("?" for _ in kinds) + ")"
        params.extend(kinds)
    order = "DESC" if newest_first else "ASC"
    sql += f" ORDER BY start_ns {order}, id {order}"
    wanted = dict(tags or {})
    found: list[Annotation] = []
    # Tags are a JSON column read the same way on both backends, so they filter here.
    for row in db.query(sql, params):
        annotation = Annotation.from_row(row)
        if all(annotation.tags.get(k) == v for k, v in wanted.items()):
            found.append(annotation)
            if len(found) >= MAX_LIST:
                break
    return found
