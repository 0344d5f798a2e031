"""A slow (or failing) stand-in push service for `bench/run.py --push-standin MS`.

It answers every POST after MS milliseconds with a fixed status (201 by default, or e.g. 503 to
exercise retries) and counts what it got. It checks nothing: tests/support/push_service.py does
that; here it only has to be slow, so that the bench shows the send path does not wait for it.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PushStandIn:
    def __init__(self, delay_ms: float, status: int = 201) -> None:
        self.delay_s = delay_ms / 1000
        self.status = status
        self.requests = 0
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with standin._lock:
                    standin.requests += 1
                time.sleep(standin.delay_s)
                self.send_response(standin.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="push-standin", daemon=True)

    def start(self) -> PushStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
