"""A real HTTP mobile-wallet gateway on 127.0.0.1, for tests and demos of kiosk/payments/gateway.py.

Plain HTTP, a stdlib ThreadingHTTPServer on its own thread (the same pattern as
kiosk/backend/http_sim.py). Port 0 picks a free port; `.url` is where it listens.

    sim = WalletGatewaySimulator().start()
    ...  HttpWallet(base_url=sim.url, api_key=sim.api_key)
    sim.pay("K0001-000042")             # the customer's phone pays
    sim.set_mode("down")
    sim.stop()

The API is this project's own "generic merchant gateway", shaped like the public ones in
/work/shared/PROTOCOLS.md ("Mobile-wallet QR"): the gateway returns the string to render as
the QR code (like WeChat Pay Native `code_url` or Alipay precreate `qr_code`; here a QR Ph P2M
dynamic EMVCo payload), the merchant polls its own order number until the order is paid,
expired or closed, and closes orders the customer abandoned. All bodies are JSON; amounts are
integers in minor units; times are unix seconds (float).

Merchant API (header `Authorization: Bearer <api_key>`, else 401 {"error": "unauthorized"}):

    POST /v1/orders                 {"reference", "amount", "currency", "expires_in"}
                                    -> 201 {"reference", "qr_payload", "expires_at",
                                            "status": "pending"}
                                    The same reference again with the same amount and currency:
                                    200 and the same order (its current status). With another
                                    amount: 409 {"error": "reference_reused"}. A bad body:
                                    400 {"error": "invalid_..."}.
    GET  /v1/orders/{reference}     -> 200 {"reference", "status", "amount", "paid_amount",
                                            "provider_ref", "expires_at"}
                                    status: pending | paid | expired | closed | declined;
                                    a pending order past expires_at is expired.
                                    404 {"error": "unknown_reference"}.
    POST /v1/orders/{reference}/close
                                    closes a pending order; -> 200 the final order object
                                    (an order paid before the close stays paid). 404 unknown.
    GET  /v1/health                 -> 200 {"ok": true} (authenticated too, so it also proves
                                    the key is good)

    reference: 1-25 characters of A-Z a-z 0-9 . _ - (it goes into EMVCo tag 62/05, at most
    25 long); amount: an integer > 0; currency: the gateway's (ISO 4217 alpha);
    expires_in: seconds, > 0 and at most 86400.

The QR payload (kiosk/payments/emvco.py merchant_payload): dynamic (01 = 12), merchant account
in tag 28 with scheme id "ph.ppmi.p2m" and the merchant id, MCC 4814 (telecommunication
services), the currency's numeric code in 53, the amount as decimal text in 54 ("1500.00", no
thousands separator), country PH, the merchant name and city, the reference in 62/05 and the
terminal (the reference before its first "-", e.g. "K0001") in 62/07, CRC last.

Admin API (no authentication; the demo panel, the CLI and tests use it):

    POST /_sim/pay/{reference}      the customer's phone pays; body {"late": true} (or
                                    ?late=1) also pays an order that is closed or expired, a
                                    payment that raced the close; {"amount": n} makes the
                                    gateway report n minor units paid instead of the order's
                                    amount (a broken or hostile gateway) -> {"paid": bool,
                                    "provider_ref": str}; 404 unknown reference
    POST /_sim/decline/{reference}  the customer's wallet declines -> {"declined": bool}
    POST /_sim/mode                 {"mode": ..., "delay_s": n} -> {"mode", "delay_s"}
    GET  /_sim/state                orders, ledger, pay counts, mode
    GET  /_sim/pending              {"pending": [references of pending orders, newest last]}

Modes (every merchant API call, /v1/..., until changed; the admin API is never affected):

    ok            answer normally
    down          read the request, then close the connection without a word
    5xx           503 {"error": "unavailable"}, nothing done
    slow          do the work, then wait delay_s (2 s by default) before answering
    garbage       do the work, then answer 200 with an HTML body (not JSON)
    wrong_amount  POST /v1/orders answers with a valid payload for another amount (a broken
                  or hostile gateway: the kiosk must refuse to show it)
    bad_crc       POST /v1/orders answers with a payload whose CRC is wrong

Ledger: `ledger[reference]` sums what customers paid, `pay_count[reference]` counts the
payments. The simulator never accepts a second payment for a paid order, so a count above 1
would be a bug in the simulator itself; tests assert it stays at 1.
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
from urllib.parse import parse_qs, unquote, urlsplit

from kiosk.httpsim import JsonHandler, serve, shut
from kiosk.money import CURRENCIES, Money

from .emvco import merchant_payload

MODES = ("ok", "down", "5xx", "slow", "garbage", "wrong_amount", "bad_crc")
STATES = ("pending", "paid", "expired", "closed", "declined")
REFERENCE = re.compile(r"^[A-Za-z0-9._-]{1,25}$")
MAX_EXPIRES_IN = 86400
SCHEME_TAG, SCHEME_ID, MCC, COUNTRY = 28, "ph.ppmi.p2m", "4814", "PH"


def amount_text(amount: int, currency: str) -> str:
    """The EMVCo tag 54 text of an amount in minor units: 150000 PHP -> "1500.00"."""
    return Money(amount, currency).decimal_text().replace(",", "")


@dataclass
class GatewayOrder:
    reference: str
    amount: int
    currency: str
    qr_payload: str
    expires_at: float
    created_at: float
    status: str = "pending"
    paid_amount: int = 0
    provider_ref: str = ""

    def public(self) -> dict[str, Any]:
        return {"reference": self.reference, "status": self.status, "amount": self.amount,
                "paid_amount": self.paid_amount, "provider_ref": self.provider_ref,
                "expires_at": self.expires_at}


class WalletGatewaySimulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 api_key: str = "kiosk-demo-key", currency: str = "PHP",
                 merchant_name: str = "TOPUP KIOSK", merchant_city: str = "MANILA",
                 merchant_id: str = "KIOSKDEMO0001") -> None:
        if currency not in CURRENCIES:
            raise ValueError(f"unknown currency {currency!r}")
        self.host, self.port = host, port
        self.api_key = api_key
        self.currency = currency
        self.merchant_name = merchant_name
        self.merchant_city = merchant_city
        self.merchant_id = merchant_id
        self.lock = threading.RLock()
        self.mode = "ok"
        self.delay_s = 2.0
        self.orders: dict[str, GatewayOrder] = {}   # insertion order = creation order
        self.ledger: dict[str, int] = {}            # reference -> minor units paid
        self.pay_count: dict[str, int] = {}         # reference -> payments accepted
        self.requests: list[tuple[str, str]] = []   # (method, path) of every request
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[Any] = set()         # open sockets, closed by stop()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()          # wakes handlers sleeping in "slow"

    # ------------------------------------------------------------------ life cycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> WalletGatewaySimulator:
        self._stopping.clear()
        serve(self, _Handler, "wallet-gateway-sim")
        return self

    def stop(self) -> None:
        self._stopping.set()
        shut(self)

    def __enter__(self) -> WalletGatewaySimulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults (thread-safe)
    def set_mode(self, mode: str, delay_s: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (have {', '.join(MODES)})")
        if delay_s is not None and (isinstance(delay_s, bool)
                                    or not isinstance(delay_s, (int, float)) or delay_s < 0):
            raise ValueError(f"delay_s must be a number >= 0, got {delay_s!r}")
        with self.lock:
            self.mode = mode
            if delay_s is not None:
                self.delay_s = float(delay_s)

    # ------------------------------------------------------------------ the customer's phone
    def pay(self, ref: str, late: bool = False, amount: int | None = None) -> bool:
        """Pay the order in full. A pending order that has not expired is paid; with
        late=True a closed or expired one is paid too (a payment that raced the close).
        Never pays an order twice, nor a declined one. `amount`: the gateway reports (and
        books) that many minor units paid instead of the order's amount."""
        with self.lock:
            order = self._order(ref)
            if order is None:
                return False
            allowed = ("pending", "closed", "expired") if late else ("pending",)
            if order.status not in allowed:
                return False
            paid = order.amount if amount is None else int(amount)
            order.status = "paid"
            order.paid_amount = paid
            order.provider_ref = f"WG{next(self._ids):010d}"
            self.ledger[ref] = self.ledger.get(ref, 0) + paid
            self.pay_count[ref] = self.pay_count.get(ref, 0) + 1
            return True

    def decline(self, ref: str) -> bool:
        with self.lock:
            order = self._order(ref)
            if order is None or order.status != "pending":
                return False
            order.status = "declined"
            return True

    def pending_refs(self) -> list[str]:
        """References of the orders still payable, oldest first (newest last)."""
        with self.lock:
            return [r for r in list(self.orders) if (o := self._order(r)) is not None
                    and o.status == "pending"]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            for r in list(self.orders):
                self._order(r)                      # expire what is due
            return {"mode": self.mode, "delay_s": self.delay_s,
                    "orders": [asdict(o) for o in self.orders.values()],
                    "ledger": dict(self.ledger), "pay_count": dict(self.pay_count)}

    # ------------------------------------------------------------------ the merchant API
    def _order(self, ref: str) -> GatewayOrder | None:
        """The order, with a pending one past its expiry turned expired (lock held)."""
        order = self.orders.get(ref)
        if order is not None and order.status == "pending" and time.time() > order.expires_at:
            order.status = "expired"
        return order

    def _payload(self, ref: str, amount: int, *, bad_crc: bool = False) -> str:
        payload = merchant_payload(
            scheme_tag=SCHEME_TAG, scheme_id=SCHEME_ID, merchant_id=self.merchant_id, mcc=MCC,
            currency_numeric=CURRENCIES[self.currency][0],
            amount_text=amount_text(amount, self.currency), country=COUNTRY,
            name=self.merchant_name, city=self.merchant_city,
            reference=ref, terminal=ref.split("-")[0])
        if bad_crc:
            last = payload[-1]
            payload = payload[:-1] + ("0" if last != "0" else "1")
        return payload

    def create(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            return 400, {"error": "invalid_json"}
        ref, amount = body.get("reference"), body.get("amount")
        currency, expires_in = body.get("currency"), body.get("expires_in")
        if not isinstance(ref, str) or not REFERENCE.match(ref):
            return 400, {"error": "invalid_reference"}
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            return 400, {"error": "invalid_amount"}
        if not isinstance(currency, str):
            return 400, {"error": "invalid_currency"}
        if currency != self.currency:
            return 400, {"error": "currency_not_supported"}
        if len(amount_text(amount, currency)) > 13:        # EMVCo tag 54: at most 13
            return 400, {"error": "invalid_amount"}
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) \
                or not 0 < expires_in <= MAX_EXPIRES_IN:
            return 400, {"error": "invalid_expires_in"}
        with self.lock:
            mode = self.mode
            order = self._order(ref)
            if order is not None:
                if order.amount != amount or order.currency != currency:
                    return 409, {"error": "reference_reused"}
                code = 200
            else:
                now = time.time()
                order = GatewayOrder(ref, amount, currency, self._payload(ref, amount),
                                     now + float(expires_in), now)
                self.orders[ref] = order
                code = 201
            answer = {"reference": order.reference, "qr_payload": order.qr_payload,
                      "expires_at": order.expires_at, "status": order.status}
        if mode == "wrong_amount":
            answer["qr_payload"] = self._payload(ref, amount + 100)
        elif mode == "bad_crc":
            answer["qr_payload"] = self._payload(ref, amount, bad_crc=True)
        return code, answer

    def get(self, ref: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            order = self._order(ref)
            if order is None:
                return 404, {"error": "unknown_reference"}
            return 200, order.public()

    def close(self, ref: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            order = self._order(ref)
            if order is None:
                return 404, {"error": "unknown_reference"}
            if order.status == "pending":
                order.status = "closed"
            return 200, order.public()


class _Handler(JsonHandler):
    simulator: WalletGatewaySimulator

    def _body(self) -> tuple[bool, Any]:
        """(parsed, value): the request body as JSON; (True, None) when there is none."""
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return True, None
        try:
            return True, json.loads(raw)
        except ValueError:
            return False, None

    def _garbage(self) -> None:
        self._raw(200, "text/html", b"<html><body>502 Bad Gateway</body></html>")

    def _route(self, method: str) -> None:
        sim = self.simulator
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        with sim.lock:
            sim.requests.append((method, path))
        parsed, body = self._body()
        if path.startswith("/_sim/"):
            return self._admin(method, path, url.query, body)
        with sim.lock:
            mode, delay = sim.mode, sim.delay_s
        if mode == "down":
            return self._drop()
        if mode == "5xx":
            return self._send(503, {"error": "unavailable"})
        auth = self.headers.get("Authorization") or ""
        if auth != f"Bearer {sim.api_key}" or not sim.api_key:
            return self._send(401, {"error": "unauthorized"})
        parts = [unquote(p) for p in path.split("/")[1:]]
        code: int
        answer: dict[str, Any]
        if method == "GET" and parts == ["v1", "health"]:
            code, answer = 200, {"ok": True}
        elif method == "POST" and parts == ["v1", "orders"]:
            code, answer = sim.create(body) if parsed else (400, {"error": "invalid_json"})
        elif method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "orders"]:
            code, answer = sim.get(parts[2])
        elif method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "orders"] \
                and parts[3] == "close":
            code, answer = sim.close(parts[2])
        else:
            code, answer = 404, {"error": "not_found"}
        if mode == "slow":
            sim._stopping.wait(delay)   # delay_s, or until stop()
        if mode == "garbage":
            return self._garbage()
        return self._send(code, answer)

    def _admin(self, method: str, path: str, query: str, body: Any) -> None:
        sim = self.simulator
        parts = [unquote(p) for p in path.split("/")[2:]]
        if method == "POST" and len(parts) == 2 and parts[0] == "pay":
            ref = parts[1]
            late = bool(isinstance(body, dict) and body.get("late")) \
                or parse_qs(query).get("late", ["0"])[0] in ("1", "true", "yes")
            amount = body.get("amount") if isinstance(body, dict) else None
            if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)
                                       or amount <= 0):
                return self._send(400, {"paid": False, "provider_ref": "",
                                        "error": "invalid_amount"})
            with sim.lock:
                if ref not in sim.orders:
                    return self._send(404, {"paid": False, "provider_ref": "",
                                            "error": "unknown_reference"})
                paid = sim.pay(ref, late=late, amount=amount)
                provider_ref = sim.orders[ref].provider_ref if paid else ""
            return self._send(200, {"paid": paid, "provider_ref": provider_ref})
        if method == "POST" and len(parts) == 2 and parts[0] == "decline":
            with sim.lock:
                if parts[1] not in sim.orders:
                    return self._send(404, {"declined": False, "error": "unknown_reference"})
                return self._send(200, {"declined": sim.decline(parts[1])})
        if method == "POST" and parts == ["mode"]:
            if not isinstance(body, dict) or "mode" not in body:
                return self._send(400, {"error": "want {\"mode\": ..., \"delay_s\": ...}"})
            try:
                sim.set_mode(body["mode"], body.get("delay_s"))
            except (ValueError, TypeError) as exc:
                return self._send(400, {"error": str(exc)})
            with sim.lock:
                return self._send(200, {"mode": sim.mode, "delay_s": sim.delay_s})
        if method == "GET" and parts == ["state"]:
            return self._send(200, sim.snapshot())
        if method == "GET" and parts == ["pending"]:
            return self._send(200, {"pending": sim.pending_refs()})
        return self._send(404, {"error": "no such admin endpoint"})

    def do_GET(self) -> None:   # http.server's naming
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")
