"""Errors of the control plane; each carries the HTTP `status` the error middleware replies with.

ControlError                     500
 ├── BadRequestError(ValueError) 400  malformed JSON, a missing field, a bad time or role
 ├── UnauthorizedError           401  no token, or one that is unknown or revoked
 ├── ForbiddenError              403  a valid token whose role is too low
 ├── NotFoundError(LookupError)  404  no such deploy, token or flag
 ├── ConflictError               409  a unique key already taken, a stale version
 └── UnavailableError            503  the control DB cannot be reached now (also a
                                      ConnectionError); the call changed nothing, retry it

A pydantic ValidationError becomes a BadRequestError through `first_problem`, which names the
field: `environments.prod.variants[0].weight`, `Input should be a valid number`.

The errors of announcements, outside HTTP, are `annotations.chat.errors`'.
"""

from __future__ import annotations

from pydantic import ValidationError


class ControlError(Exception):
    """Base of every control-plane error."""

    status = 500


class BadRequestError(ControlError, ValueError):
    """The request is malformed: bad JSON, a missing or ill-typed field, an unknown value."""

    status = 400


class UnauthorizedError(ControlError):
    """No credentials, or credentials that match no live token."""

    status = 401


class ForbiddenError(ControlError):
    """The caller is known but their role does not allow this call."""

    status = 403


class NotFoundError(ControlError, LookupError):
    """The addressed deploy, token or flag does not exist."""

    status = 404


class ConflictError(ControlError):
    """The write collides with existing state: a taken unique key, a stale version."""

    status = 409


class UnavailableError(ControlError, ConnectionError):
    """The control database cannot be reached now (down, restarting, no connection free in
    time). Nothing was written; the same call may be sent again, and will work once it is back.
    A ConnectionError too, so that a server that cannot reach it at startup says so and exits."""

    status = 503


def first_problem(error: ValidationError) -> tuple[str, str]:
    """The path of the first field that failed and what is wrong with it."""
    first = error.errors()[0]
    ctx = first.get("ctx") or {}
    # A validator's own ValueError reads better without pydantic's "Value error, " prefix.
    if first["type"] == "value_error" and "error" in ctx:
        return field_path(first["loc"]), str(ctx["error"])
    return field_path(first["loc"]), first["msg"]


def field_path(loc: tuple[int | str, ...]) -> str:
    """("variants", 0, "weight") -> "variants[0].weight"; a mapping's bad key is named by
    itself: ("environments", "a b", "[key]") -> "environments.a b"."""
    path = ""
    for part in loc:
        if part == "[key]":
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path
