"""Browser access to the dashboards: sign in once with a token (or a sign-in link), then a cookie.

The cookie holds a signed, dated session (which token, its name and role), never the token.
It is HttpOnly and SameSite=Lax, so a shared link opens the dashboards but another site cannot
read or send it in the background. Each request re-checks that the token is still live, so
revoking a token signs its browsers out. Without a session every request is refused (401),
unless anonymous read is on. The signing key lives in the data dir, so sessions and sign-in
links survive a restart.
"""

from __future__ import annotations

import html
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import flask
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from annotations.control.db import ControlDB
from annotations.control.tokens import list_tokens, lookup_token

COOKIE = "shipboard_session"
SESSION_MAX_AGE_S = 30 * 86400
LINK_MAX_AGE_S = 86400
KEY_FILE = "dashboards.key"
_LIVE_CACHE_S = 5.0
_LINK_SESSION = 0  # token id of sessions opened by a sign-in link
_OPEN_PATHS = frozenset({"/signin", "/signout", "/_favicon.ico"})


def load_key(data_dir: Path) -> bytes:
    """The signing key in `data_dir`, made (readable by this user only) on first use."""
    path = data_dir / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return bytes.fromhex(path.read_text().strip())  # another process made it first
        with os.fdopen(fd, "w") as out:
            out.write(key.hex())
        return key


def sign_in_link(base_url: str, key: bytes) -> str:
    """A link that signs a browser in as a viewer; valid for LINK_MAX_AGE_S (what `shipboard
    run` prints, so whoever started it opens the dashboards with no further step)."""
    code = URLSafeTimedSerializer(key, salt="sign-in-link").dumps({"role": "viewer"})
    return f"{base_url.rstrip('/')}/signin?link={quote(code)}"


@dataclass(frozen=True, slots=True)
class Session:
    token_id: int
    name: str
    role: str


class Gate:
    """Decides, before each request, whether it may go on; serves the sign-in routes."""

    def __init__(
        self,
        key: bytes,
        control: ControlDB | None,
        *,
        anonymous_read: bool,
        secure_cookie: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = URLSafeTimedSerializer(key, salt="session")
        self._links = URLSafeTimedSerializer(key, salt="sign-in-link")
        self._control = control
        self._anonymous_read = anonymous_read
        self._secure = secure_cookie
        self._clock = clock
        self._live: tuple[float, frozenset[int]] = (-_LIVE_CACHE_S, frozenset())

    def install(self, server: flask.Flask) -> None:
        server.before_request(self._check)
        server.add_url_rule("/signin", "signin", self._sign_in, methods=["GET", "POST"])
        server.add_url_rule("/signout", "signout", self._sign_out, methods=["POST"])

    def session(self) -> Session | None:
        """The caller's session: from the cookie, or from `Authorization: Bearer <token>`."""
        header = flask.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self._from_token(token.strip())
        cookie = flask.request.cookies.get(COOKIE)
        if not cookie:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=SESSION_MAX_AGE_S)
            found = Session(int(data["t"]), str(data["n"]), str(data["r"]))
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        if found.token_id != _LINK_SESSION and found.token_id not in self._live_ids():
            return None
        return found

    def _from_token(self, token: str) -> Session | None:
        info = None if self._control is None else lookup_token(self._control, token)
        return None if info is None else Session(info.id, info.name, info.role)

    def _live_ids(self) -> frozenset[int]:
        now = self._clock()
        if now - self._live[0] >= _LIVE_CACHE_S and self._control is not None:
            self._live = (now, frozenset(t.id for t in list_tokens(self._control)))
        return self._live[1]

    def _check(self) -> Response | None:
        if self._anonymous_read or flask.request.path in _OPEN_PATHS:
            return None
        if self.session() is not None:
            return None
        if flask.request.method == "GET" and "text/html" in flask.request.headers.get("Accept", ""):
            return self._form(flask.request.full_path.rstrip("?"), "", 401)
        body = b'{"error": "sign in with a token first"}'
        return Response(body, status=401, mimetype="application/json")

    def _sign_in(self) -> Response:
        request = flask.request
        target = _local(request.values.get("next", "/"))
        if "link" in request.args:
            try:
                self._links.loads(request.args["link"], max_age=LINK_MAX_AGE_S)
            except BadSignature:
                return self._form(target, "This sign-in link is not valid or has expired.", 401)
            return self._start(Session(_LINK_SESSION, "sign-in link", "viewer"), target)
        token = request.values.get("token", "").strip()
        if not token:
            return self._form(target, "", 200)
        found = self._from_token(token)
        if found is None:
            return self._form(target, "Unknown or revoked token.", 401)
        return self._start(found, target)

    def _start(self, session: Session, target: str) -> Response:
        response = flask.redirect(target, code=303)
        cookie = self._sessions.dumps({"t": session.token_id, "n": session.name, "r": session.role})
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=SESSION_MAX_AGE_S,
            httponly=True,
            samesite="Lax",
            secure=self._secure,
        )
        return response

    def _sign_out(self) -> Response:
        response = flask.redirect("/signin", code=303)
        response.delete_cookie(COOKIE)
        return response

    def _form(self, target: str, message: str, status: int) -> Response:
        e = html.escape
        note = f'<p class="error">{e(message)}</p>' if message else ""
        page = _FORM.format(next=e(_local(target)), note=note)
        return Response(page, status=status, mimetype="text/html")


def _local(target: str) -> str:
    """`target` if it is a path on this site, else `/` (no open redirect after sign-in)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shipboard: sign in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:5rem auto}}
input{{width:100%;padding:.5rem;margin:.5rem 0}}.error{{color:#d9534f}}</style></head>
<body><h1>Shipboard</h1><p>Sign in with an API token (any role can read the dashboards).</p>
{note}<form method="post" action="/signin"><input type="hidden" name="next" value="{next}">
<input type="password" name="token" placeholder="sb_..." autocomplete="off" autofocus>
<button type="submit">Sign in</button></form></body></html>
"""
