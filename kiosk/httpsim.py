"""What the HTTP simulators (kiosk/backend/http_sim.py, kiosk/payments/gateway_sim.py)
share: a quiet JSON request handler on a stdlib ThreadingHTTPServer that tracks its open
connections, so the simulator's stop() can close keep-alive sockets at once."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """`simulator` (set by a subclass) must have `lock` and a `_connections` set."""

    simulator: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:   # noqa: A002 - quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.simulator.lock:
            self.simulator._connections.add(self.connection)

    def finish(self) -> None:
        with self.simulator.lock:
            self.simulator._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:             # the client gave up (timeout) or stop() closed it
            self.close_connection = True

    def _raw(self, code: int, content_type: str, data: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send(self, code: int, body: Any) -> None:
        self._raw(code, "application/json", json.dumps(body).encode())

    def _drop(self) -> None:
        """Close the connection without a word (the reply is lost)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(2)
        except OSError:
            pass


def serve(sim: Any, handler: type[JsonHandler], name: str) -> None:
    """Start `sim` listening on (sim.host, sim.port) with its own handler subclass bound
    to it; port 0 picks a free port (written back to sim.port)."""
    import threading
    from http.server import ThreadingHTTPServer

    bound = type("Handler", (handler,), {"simulator": sim})
    sim._server = ThreadingHTTPServer((sim.host, sim.port), bound)
    sim._server.daemon_threads = True
    sim._server.block_on_close = False
    sim.port = sim._server.server_address[1]
    sim._thread = threading.Thread(target=sim._server.serve_forever,
                                   kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    sim._thread.start()


def shut(sim: Any) -> None:
    """Stop serving and close every open (keep-alive) connection at once."""
    if sim._server is not None:
        sim._server.shutdown()
        sim._server.server_close()
        sim._server = None
    with sim.lock:
        conns, sim._connections = list(sim._connections), set()
    for c in conns:
        try:
            c.shutdown(2)
        except OSError:
            pass
    if sim._thread is not None:
        sim._thread.join(2)
        sim._thread = None
