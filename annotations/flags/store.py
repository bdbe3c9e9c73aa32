"""Flags in the control DB: read, create, merge-patch and delete, each change an annotation
(announced through the `Outbox` the caller gives)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from annotations.control.db import ControlDB, Row
from annotations.control.errors import ConflictError, NotFoundError
from annotations.control.notes import add_annotation
from annotations.control.outbox import Outbox
from annotations.flags.model import Flag, FlagChange, FlagError, describe_change, merge_patch


@dataclass(frozen=True, slots=True)
class StoredFlag:
    """A flag with its row's version (1 on create, +1 on every change) and update time."""

    flag: Flag
    version: int
    updated_ns: int

    @classmethod
    def from_row(cls, row: Row) -> StoredFlag:
        return cls(
            Flag.from_doc(orjson.loads(row["doc"])), int(row["version"]), int(row["updated_at"])
        )


def _dumps(flag: Flag) -> str:
    return orjson.dumps(flag.to_doc(), option=orjson.OPT_SORT_KEYS).decode()


def list_flags(db: ControlDB) -> list[StoredFlag]:
    """Every flag, by key."""
    rows = db.query("SELECT key, doc, version, updated_at FROM flags ORDER BY key")
    return [StoredFlag.from_row(row) for row in rows]


def get_flag(db: ControlDB, key: str) -> StoredFlag:
    row = db.query_one("SELECT key, doc, version, updated_at FROM flags WHERE key = ?", (key,))
    if row is None:
        raise NotFoundError(f"no flag {key!r}")
    return StoredFlag.from_row(row)


def create_flag(
    db: ControlDB, doc: object, *, who: str, now_ns: int, outbox: Outbox | None = None
) -> StoredFlag:
    """Store a new flag; ConflictError if the key is taken."""
    flag = Flag.from_doc(doc)
    with db.transaction():
        if db.query_one("SELECT key FROM flags WHERE key = ?", (flag.key,)) is not None:
            raise ConflictError(f"flag {flag.key!r} exists; PATCH it instead")
        db.execute(
            "INSERT INTO flags (key, doc, version, updated_at) VALUES (?, ?, ?, ?)",
            (flag.key, _dumps(flag), 1, now_ns),
        )
        _record(db, None, flag, who=who, now_ns=now_ns, version=1, outbox=outbox)
    return StoredFlag(flag, 1, now_ns)


def patch_flag(
    db: ControlDB,
    key: str,
    patch: object,
    *,
    who: str,
    now_ns: int,
    outbox: Outbox | None = None,
    why: str = "",
) -> StoredFlag:
    """Apply an RFC 7396 merge patch to the stored document; the key cannot change. `why`, when
    the change is not a person's (a rollout step, an alert's action), ends each annotation's
    title in parentheses."""
    if not isinstance(patch, dict):
        raise FlagError("", "a merge patch must be a JSON object")
    if "key" in patch and patch["key"] != key:
        raise FlagError("key", "cannot be changed; create a new flag and delete this one")
    with db.transaction():
        # Lock the row first (a no-op write), so that a concurrent patch from another node waits
        # here and then reads the state it must build on, on SQLite and PostgreSQL alike.
        db.execute("UPDATE flags SET version = version WHERE key = ?", (key,))
        current = get_flag(db, key)
        flag = Flag.from_doc(merge_patch(current.flag.to_doc(), patch))
        if flag == current.flag:
            return current
        version = current.version + 1
        changed = db.execute(
            "UPDATE flags SET doc = ?, version = ?, updated_at = ? WHERE key = ? AND version = ?",
            (_dumps(flag), version, now_ns, key, current.version),
        )
        if not changed:
            raise ConflictError(f"flag {key!r} changed during this patch; try again")
        _record(
            db, current.flag, flag, who=who, now_ns=now_ns, version=version, outbox=outbox, why=why
        )
        return StoredFlag(flag, version, now_ns)


def delete_flag(
    db: ControlDB, key: str, *, who: str, now_ns: int, outbox: Outbox | None = None
) -> None:
    with db.transaction():
        current = get_flag(db, key)
        if not db.execute("DELETE FROM flags WHERE key = ?", (key,)):
            raise NotFoundError(f"no flag {key!r}")
        version = current.version + 1
        _record(db, current.flag, None, who=who, now_ns=now_ns, version=version, outbox=outbox)


def snapshot(flags: Iterable[StoredFlag], environment: str | None) -> tuple[bytes, str]:
    """The SDK snapshot body and its ETag, both computed from content alone, so every node
    serving the same state answers with the same bytes and the same ETag."""
    docs = [(s.flag.only(environment) if environment else s.flag).to_doc() for s in flags]
    body: dict[str, Any] = {"environment": environment, "flags": sorted(docs, key=_key)}
    data = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _key(doc: dict[str, Any]) -> str:
    return str(doc["key"])


def _record(
    db: ControlDB,
    before: Flag | None,
    after: Flag | None,
    *,
    who: str,
    now_ns: int,
    version: int,
    outbox: Outbox | None,
    why: str = "",
) -> None:
    """One annotation per change and environment. A change that concerns every environment (the
    kill switch, a creation) is recorded in each, so every environment's graphs show it."""
    flag = after or before
    assert flag is not None
    envs = sorted(
        set(before.environments if before else ()) | set(after.environments if after else ())
    )
    for change in describe_change(before, after):
        if why:
            change = FlagChange(change.environment, f"{change.summary} ({why})")
        targets: list[str | None] = [change.environment] if change.environment else [*envs]
        for env in targets or [None]:
            _annotate(
                db, flag.key, env, change, who=who, now_ns=now_ns, version=version, outbox=outbox
            )


def _annotate(
    db: ControlDB,
    key: str,
    environment: str | None,
    change: FlagChange,
    *,
    who: str,
    now_ns: int,
    version: int,
    outbox: Outbox | None,
) -> None:
    tags = {"flag": key} if environment is None else {"flag": key, "environment": environment}
    add_annotation(
        db,
        "flag",
        start_ns=now_ns,
        title=change.summary,
        who=who,
        tags=tags,
        extra={"version": version},
        outbox=outbox,
    )
