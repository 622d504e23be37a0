"""A push gateway on loopback for the tests: it answers Synapse's HTTP
pusher (`POST /_matrix/push/v1/notify`) and keeps every notification it
got, so that a test can tell whether a phone would have been woken."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOTIFY_PATH = "/_matrix/push/v1/notify"


class PushGateway:
    def __init__(self):
        self.notifications: list[dict] = []
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path == NOTIFY_PATH:
                    with gateway._lock:
                        gateway.notifications.append(json.loads(body or b"{}").get("notification", {}))
                answer = json.dumps({"rejected": []}).encode()
                self.send_response(200 if self.path == NOTIFY_PATH else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{NOTIFY_PATH}"

    def event_ids(self) -> set[str]:
        with self._lock:
            return {n.get("event_id") for n in self.notifications}

    def __enter__(self) -> "PushGateway":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
