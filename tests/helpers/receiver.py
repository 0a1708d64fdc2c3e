"""An HTTP receiver on the test host for what a VPS sends out: webhook notices (JSON POSTs) and
heartbeats (GETs), kept in order."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Listens on ``address`` (the test host as the VPS sees it), on a free port."""

    def __init__(self, address: str) -> None:
        self.notices: list[dict] = []
        self.heartbeats = 0
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.notices.append(json.loads(body))
                self._answer()

            def do_GET(self) -> None:  # noqa: N802
                received.heartbeats += 1
                self._answer()

            def _answer(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://{address}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def states(self) -> list[tuple[str, str]]:
        """``(state, problem)`` of each notice so far."""
        return [(n["state"], n["problem"]) for n in self.notices]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
