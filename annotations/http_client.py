"""The HTTP client of the command-line tools and the flags SDK: a request to a Shipboard with its
token, JSON in and out.

    api = ApiClient("http://127.0.0.1:8080", token)
    flags = api.call("GET", "/api/v1/flags")
    api.call("POST", "/api/v1/deploys", {"service": "web", ...})

A status of 400 or more, or a server that cannot be reached, raises `ApiError`, which says which
(`status` None: unreachable) and carries the server's text; `retryable` tells a failure that a
later try may fix from one that never will. Other answers (304 among them) are returned.

It imports only the standard library and orjson: an app that loads the flags SDK loads no
server code through it.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

import orjson

DEFAULT_TIMEOUT_S = 30.0
MAX_DETAIL_CHARS = 300  # of an answer's text in an error (a proxy's HTML page can be long)
# Client errors that a later try can fix (a token, a restart); others never will.
_RETRYABLE = frozenset({401, 403, 408, 429})


class ApiError(Exception):
    """A request failed: the server answered `status` (400 or more) with `detail`, or could
    not be reached (`status` None, `detail` the reason)."""

    def __init__(self, method: str, url: str, status: int | None, detail: str) -> None:
        detail = detail[:MAX_DETAIL_CHARS]
        super().__init__(
            f"cannot reach {url}: {detail}"
            if status is None
            else f"{method} {url}: HTTP {status}: {detail}"
        )
        self.status = status
        self.detail = detail

    @property
    def retryable(self) -> bool:
        """Whether a later try may succeed: unreachable, a 5xx, or a client error such as a
        token not yet valid or a rate limit."""
        return self.status is None or self.status >= 500 or self.status in _RETRYABLE


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass(frozen=True, slots=True)
class ApiClient:
    """One Shipboard's HTTP API, called with one token (`Authorization: <scheme> <token>`,
    nothing when the token is empty)."""

    base_url: str
    token: str = ""
    scheme: str = "Bearer"  # InfluxDB-style ingest takes "Token"
    timeout_s: float = DEFAULT_TIMEOUT_S

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return f"{self.base_url.rstrip('/')}{path}{query}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request; the answer if its status is below 400, else `ApiError`."""
        url = self.url(path, params)
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        if self.token:
            request.add_header("Authorization", f"{self.scheme} {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                return Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            text = error.read()
            if error.code < 400:
                return Response(error.code, error.headers, text)
            raise ApiError(method, url, error.code, text.decode(errors="replace")) from None
        # HTTPException: the connection broke mid-answer (a server going away).
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise ApiError(method, url, None, str(reason)) from None

    def call(self, method: str, path: str, body: object = None) -> Any:
        """Send `body` as JSON (none when None); the answer's JSON, None when it is empty."""
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        return self.request(method, path, body=data, headers=headers).json()
