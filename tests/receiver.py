"""A webhook receiver on 127.0.0.1 for the end-to-end tests: a real HTTP server that keeps the
JSON body of every POST, by path, and answers 204."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any, Self

HOST = "127.0.0.1"


class Receiver:
    """Serves while in `with`; `bodies("/hook")` is what was POSTed to `/hook`, in order."""

    def __init__(self) -> None:
        self._bodies: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with receiver._lock:
                    receiver._bodies.setdefault(self.path.partition("?")[0], []).append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def bodies(self, path: str = "/hook") -> list[dict[str, Any]]:
        with self._lock:
            return list(self._bodies.get(path, []))

    def texts(self, path: str = "/hook") -> list[str]:
        """The `text` of each announcement POSTed to `path` (a JSON or Slack-style webhook)."""
        return [str(body["text"]) for body in self.bodies(path)]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
