"""The HTTP client of the commands and the flags SDK against a real HTTP server: token and JSON
sent, errors that say what failed and whether a later try may succeed, 304 answered rather than
raised."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from annotations.http_client import ApiClient, ApiError
from tests.launcher import free_port


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        echo = {"body": body, "auth": self.headers["Authorization"], "path": self.path}
        self._answer(200, json.dumps(echo).encode())

    def do_GET(self) -> None:
        status = int(self.path.rsplit("/", 1)[1])
        self._answer(status, b"" if status == 304 else b'{"error": "no such thing"}')

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"e1"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def test_json_goes_out_with_the_token_and_comes_back(base_url: str):
    answer = ApiClient(base_url, "sb_secret").call("POST", "/api/v1/deploys", {"service": "web"})
    assert answer == {
        "body": {"service": "web"},
        "auth": "Bearer sb_secret",
        "path": "/api/v1/deploys",
    }


def test_the_scheme_is_the_callers_and_params_are_encoded(base_url: str):
    api = ApiClient(base_url, "t", scheme="Token")
    answer = api.request("POST", "/write", body=b"{}", params={"precision": "ns"}).json()
    assert (answer["auth"], answer["path"]) == ("Token t", "/write?precision=ns")


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (404, False), (403, True), (503, True)]
)
def test_an_error_status_raises_with_the_servers_text(base_url: str, status: int, retryable: bool):
    with pytest.raises(ApiError) as raised:
        ApiClient(base_url).call("GET", f"/status/{status}")
    assert raised.value.status == status
    assert raised.value.retryable is retryable
    assert str(raised.value) == (
        f'GET {base_url.rstrip("/")}/status/{status}: HTTP {status}: {{"error": "no such thing"}}'
    )


def test_not_modified_is_an_answer(base_url: str):
    response = ApiClient(base_url).request("GET", "/status/304", headers={"If-None-Match": '"e1"'})
    assert (response.status, response.headers["ETag"], response.json()) == (304, '"e1"', None)


def test_an_unreachable_server_is_retryable_and_says_so():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiError, match=f"cannot reach {url}/api/v1/flags: ") as raised:
        ApiClient(url, timeout_s=2).call("GET", "/api/v1/flags")
    assert raised.value.status is None
    assert raised.value.retryable
