"""A real HTTP SMS gateway on 127.0.0.1 that records the messages, for tests and demos of
kiosk/sms.py (the API is described there).

Plain HTTP, a stdlib ThreadingHTTPServer on its own thread (kiosk/httpsim.py, as the
top-up and wallet simulators). Port 0 picks a free port; `.url` is where it listens.

    sim = SmsGatewaySimulator().start()
    ...  HttpSmsGateway(base_url=sim.url, api_key=sim.api_key)
    sim.texts_to("+639171234567")       # what that phone received
    sim.set_mode("down")
    sim.stop()

Admin API (no authentication; `kiosk sim sms`, the demo and tests use it):

    GET  /_sim/messages             {"messages": [{"id", "to", "from", "text", "client_ref",
                                    "ts"}], "attempts": n}
    POST /_sim/mode                 {"mode": ...} -> {"mode"}

Modes (every POST /v1/messages until changed; the admin API is never affected):

    ok        accept and record the message
    down      read the request, then close the connection without a word (nothing sent)
    5xx       503 {"error": "unavailable"}, nothing sent
    lost      record (send) the message, then close the connection: the reply is lost,
              the kiosk asks again with the same client_ref and must not send it twice
    refuse    400 {"error": "invalid_number"}, nothing sent

`attempts` counts POST /v1/messages; `messages` holds what was sent, once per client_ref.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import asdict, dataclass
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .httpsim import JsonHandler, serve, shut

MODES = ("ok", "down", "5xx", "lost", "refuse")
E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
MAX_TEXT = 1600                     # ten concatenated parts


@dataclass
class SmsMessage:
    id: str
    to: str
    sender: str
    text: str
    client_ref: str
    ts: float


class SmsGatewaySimulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 api_key: str = "kiosk-sms-key") -> None:
        self.host, self.port = host, port
        self.api_key = api_key
        self.lock = threading.RLock()
        self.mode = "ok"
        self.messages: list[SmsMessage] = []
        self.by_ref: dict[str, SmsMessage] = {}
        self.attempts = 0
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[Any] = set()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SmsGatewaySimulator:
        serve(self, _Handler, "sms-gateway-sim")
        return self

    def stop(self) -> None:
        shut(self)

    def __enter__(self) -> SmsGatewaySimulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ tests and demo
    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (have {', '.join(MODES)})")
        with self.lock:
            self.mode = mode

    def texts_to(self, number: str) -> list[str]:
        with self.lock:
            return [m.text for m in self.messages if m.to == number]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"mode": self.mode, "attempts": self.attempts,
                    "messages": [asdict(m) for m in self.messages]}

    # ------------------------------------------------------------------ the API
    def submit(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Validate and record one message (lock held by the caller or not: takes it)."""
        if not isinstance(body, dict):
            return 400, {"error": "invalid_json"}
        to, text, sender = body.get("to"), body.get("text"), body.get("from")
        ref = body.get("client_ref", "")
        if not isinstance(to, str) or not E164.match(to):
            return 400, {"error": "invalid_number"}
        if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
            return 400, {"error": "invalid_text"}
        if not isinstance(sender, str) or not sender or len(sender) > 15:
            return 400, {"error": "invalid_sender"}
        if not isinstance(ref, str) or len(ref) > 64:
            return 400, {"error": "invalid_client_ref"}
        with self.lock:
            if ref and ref in self.by_ref:
                first = self.by_ref[ref]
                return 200, {"id": first.id, "status": "accepted"}
            msg = SmsMessage(f"SM{next(self._ids):010d}", to, sender, text, ref, time.time())
            self.messages.append(msg)
            if ref:
                self.by_ref[ref] = msg
        return 201, {"id": msg.id, "status": "accepted"}


class _Handler(JsonHandler):
    simulator: SmsGatewaySimulator

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _route(self, method: str) -> None:
        sim = self.simulator
        path = urlsplit(self.path).path.rstrip("/")
        body = self._body()
        if path.startswith("/_sim/"):
            return self._admin(method, path, body)
        if self.headers.get("Authorization") != f"Bearer {sim.api_key}":
            return self._send(401, {"error": "unauthorized"})
        if method == "GET" and path == "/v1/health":
            return self._send(200, {"ok": True})
        if method != "POST" or path != "/v1/messages":
            return self._send(404, {"error": "not_found"})
        with sim.lock:
            sim.attempts += 1
            mode = sim.mode
        if mode == "down":
            return self._drop()
        if mode == "5xx":
            return self._send(503, {"error": "unavailable"})
        if mode == "refuse":
            return self._send(400, {"error": "invalid_number"})
        code, answer = sim.submit(body)
        if mode == "lost":
            return self._drop()
        return self._send(code, answer)

    def _admin(self, method: str, path: str, body: Any) -> None:
        sim = self.simulator
        if method == "GET" and path == "/_sim/messages":
            snap = sim.snapshot()
            return self._send(200, {"messages": snap["messages"], "attempts": snap["attempts"]})
        if method == "POST" and path == "/_sim/mode":
            try:
                sim.set_mode(str((body or {}).get("mode", "")))
            except (ValueError, AttributeError) as exc:
                return self._send(400, {"error": str(exc)})
            return self._send(200, {"mode": sim.mode})
        return self._send(404, {"error": "not_found"})

    def do_GET(self) -> None:   # http.server's naming
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")
