"""API tokens and roles: 32 random bytes given out once, only their SHA-256 kept."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass

from annotations.control.db import ControlDB, Row
from annotations.control.errors import BadRequestError, NotFoundError

ROLES = ("viewer", "operator", "admin")
TOKEN_PREFIX = "sb_"


def role_rank(role: str) -> int:
    """viewer < operator < admin, as comparable integers."""
    return ROLES.index(role)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as stored: never the token itself."""

    id: int
    name: str
    role: str
    created_ns: int
    revoked_ns: int | None

    @classmethod
    def from_row(cls, row: Row) -> TokenInfo:
        revoked = row["revoked_ns"]
        return cls(
            int(row["id"]),
            row["name"],
            row["role"],
            int(row["created_ns"]),
            None if revoked is None else int(revoked),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_ns": self.created_ns,
            "revoked_ns": self.revoked_ns,
        }


_COLUMNS = "id, name, role, created_ns, revoked_ns"


def create_token(db: ControlDB, name: str, role: str) -> tuple[TokenInfo, str]:
    """A new token for `name` with `role`; the clear token is returned here and nowhere else."""
    if role not in ROLES:
        raise BadRequestError(f"role must be one of {', '.join(ROLES)}")
    if not name or len(name) > 200:
        raise BadRequestError("name must be 1 to 200 characters")
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    now_ns = time.time_ns()
    token_id = db.insert(
        "INSERT INTO tokens (name, role, hash, created_ns) VALUES (?, ?, ?, ?) RETURNING id",
        (name, role, hash_token(token), now_ns),
    )
    return TokenInfo(token_id, name, role, now_ns, None), token


def lookup_token(db: ControlDB, token: str) -> TokenInfo | None:
    """The live (unrevoked) token matching `token`, if any."""
    row = db.query_one(
        f"SELECT {_COLUMNS} FROM tokens WHERE hash = ? AND revoked_ns IS NULL",
        (hash_token(token),),
    )
    return None if row is None else TokenInfo.from_row(row)


def list_tokens(db: ControlDB, *, include_revoked: bool = False) -> list[TokenInfo]:
    where = "" if include_revoked else " WHERE revoked_ns IS NULL"
    rows = db.query(f"SELECT {_COLUMNS} FROM tokens{where} ORDER BY id")
    return [TokenInfo.from_row(row) for row in rows]


def revoke_token(db: ControlDB, token_id: int) -> TokenInfo:
    """Revoke the token; it stops working on the next request."""
    db.execute(
        "UPDATE tokens SET revoked_ns = ? WHERE id = ? AND revoked_ns IS NULL",
        (time.time_ns(), token_id),
    )
    row = db.query_one(f"SELECT {_COLUMNS} FROM tokens WHERE id = ?", (token_id,))
    if row is None:
        raise NotFoundError(f"no token {token_id}")
    return TokenInfo.from_row(row)


def has_tokens(db: ControlDB) -> bool:
    return db.query_one("SELECT id FROM tokens LIMIT 1") is not None
