"""A real HTTP server on 127.0.0.1 that behaves like Reloadly's Airtime API, with faults.

For tests and demos of kiosk/backend/reloadly.py: plain HTTP, a stdlib ThreadingHTTPServer on
its own thread. Port 0 picks a free port; `.url` is where it listens.

    sim = ReloadlySimulator().start()
    ...  ReloadlyBackend(base_url=sim.url, auth_url=sim.url + "/oauth/token", verify=False)
    sim.set_mode("timeout_after_commit")
    sim.stop()

Endpoints (shapes as in reloadly.py's docstring):

    POST /oauth/token                         client credentials -> access_token, expires_in
    POST /topups                              the top-up (customIdentifier = kiosk reference)
    GET  /topups/reports/transactions?customIdentifier=...   {"content": [transactions]}
    GET  /subscribers/{iccid}                 the SIM registry (kiosk/backend/simulated.py
                                              DEMO_SIMS): {"msisdn": ...} or 404
    GET  /accounts/balance                    {"balance": ..., "currencyCode": ...}
    GET  /operators/{operatorId}              what an operator sells (FIXED/RANGE, local amounts)
    GET  /operators/auto-detect/phone/{phone}/countries/{iso}   the operator of a number
    GET  /subscribers/by-phone/{phone}/balance   the operator's balance inquiry (not
                                              Reloadly's: an operator extension the kiosk
                                              uses where the operator offers it)

Operators come from a kiosk catalog (config/catalog.toml by default): kiosk operator number i
(from 1) is Reloadly operator i*1000+1 (airtime: RANGE when the catalog sells a RANGE of
airtime, else the FIXED amounts) and i*1000+2 (bundles: the FIXED prices of its data, monthly,
quarterly and validity packs). `operator_ids` is the matching kiosk config table. Numbers are
detected by the catalog's prefixes, except those in `ported` (number -> kiosk operator). Tests
and the demo change `withdrawn` (Reloadly operator id -> amounts no longer sold) and
`detect_down` (auto-detect answers 503).
    POST /_sim/mode                           admin: {"mode": ..., "delay_s": ...,
                                              "processing_lookups": ..., "error_code": ...,
                                              "dedupe": ..., "expire_tokens": true}
    GET  /_sim/state                          admin: the ledger as JSON

Modes (for the next POST /topups, until changed):

    succeed               credit, answer SUCCESSFUL
    slow                  credit, wait `delay_s`, then answer SUCCESSFUL
    5xx                   credit, then answer 500 (the worst case: the credit went through)
    timeout_after_commit  credit, then close the connection without an answer
    processing            credit, answer PROCESSING; the look-up says PROCESSING
                          `processing_lookups` times, then SUCCESSFUL
    fail / refunded       no credit, answer status FAILED / REFUNDED
    insufficient_balance  HTTP 400 errorCode INSUFFICIENT_BALANCE, no credit
    recently_recharged    HTTP 400 errorCode PHONE_RECENTLY_RECHARGED, no credit
    error                 HTTP 400 with `error_code`, no credit
    garbage               credit, then a 200 with a body that is not JSON
    lost                  no credit, the connection is closed without an answer (the request
                          never reached the operator: the look-up finds nothing)

Ledger: `credits[customIdentifier]` sums what was credited, `attempts[customIdentifier]`
counts POST /topups, `credit_count[customIdentifier]` counts credits. By default
(`dedupe=False`) a replayed customIdentifier is credited AGAIN, like the Ding client that saw
a replayed reference paid twice (/work/shared/PROTOCOLS.md): tests then prove that the kiosk
itself never sends a top-up twice.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kiosk.catalog import Catalog
from kiosk.httpsim import JsonHandler, serve, shut

from .simulated import DEMO_SIMS

_ROOT = Path(__file__).resolve().parents[2]

MODES = ("succeed", "slow", "5xx", "timeout_after_commit", "processing", "fail", "refunded",
         "insufficient_balance", "recently_recharged", "error", "garbage", "lost")
_ERROR_MODES = {"insufficient_balance": "INSUFFICIENT_BALANCE",
                "recently_recharged": "PHONE_RECENTLY_RECHARGED"}


class ReloadlySimulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, client_id: str = "kiosk",
                 client_secret: str = "secret", token_ttl_s: int = 3600, dedupe: bool = False,
                 minor_units: int = 2, currency: str = "PHP",
                 catalog: Catalog | None = None) -> None:
        self.host, self.port = host, port
        if catalog is None:
            from kiosk.config import load_catalog
            catalog = load_catalog(_ROOT / "config" / "catalog.toml")
        self.catalog = catalog
        self.operators, self.operator_ids = _operators(catalog, minor_units)
        self.ported: dict[str, str] = {}           # international number -> kiosk operator
        self.withdrawn: dict[int, set[int]] = {}   # operatorId -> amounts (minor) not sold
        self.detect_down = False
        self.subscriber_delay_s = 0.0              # SIM registry answers after this
        self.topup_delay_s = 0.0                   # every POST /topups answers after this
        # international number -> {"airtime": minor, "data_mb": n, "valid_until": iso date}
        self.balances: dict[str, dict[str, Any]] = {}
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl_s = token_ttl_s
        self.dedupe = dedupe
        self.minor_units = minor_units
        self.currency = currency
        self.lock = threading.RLock()
        self.mode = "succeed"
        self.delay_s = 2.0
        self.processing_lookups = 1
        self.error_code = "INVALID_AMOUNT_FOR_OPERATOR"
        self.credits: dict[str, int] = {}          # customIdentifier -> minor units credited
        self.credit_count: dict[str, int] = {}
        self.attempts: dict[str, int] = {}         # customIdentifier -> POST /topups seen
        self.transactions: list[dict[str, Any]] = []
        self._pending_lookups: dict[int, int] = {}  # transactionId -> PROCESSING answers left
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._ids = itertools.count(26001)
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[Any] = set()        # open sockets, closed by stop()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ReloadlySimulator:
        serve(self, _Handler, "reloadly-sim")
        return self

    def stop(self) -> None:
        shut(self)

    def __enter__(self) -> ReloadlySimulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults (thread-safe)
    def set_mode(self, mode: str, *, delay_s: float | None = None,
                 processing_lookups: int | None = None, error_code: str | None = None,
                 dedupe: bool | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (have {', '.join(MODES)})")
        with self.lock:
            self.mode = mode
            if delay_s is not None:
                self.delay_s = float(delay_s)
            if processing_lookups is not None:
                self.processing_lookups = int(processing_lookups)
            if error_code is not None:
                self.error_code = error_code
            if dedupe is not None:
                self.dedupe = bool(dedupe)

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (HTTP 401)."""
        with self.lock:
            self.tokens.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"mode": self.mode, "credits": dict(self.credits),
                    "credit_count": dict(self.credit_count), "attempts": dict(self.attempts),
                    "token_requests": self.token_requests,
                    "transactions": [dict(t) for t in self.transactions]}

    # ------------------------------------------------------------------ operators
    def kiosk_operator(self, operator_id: Any) -> str | None:
        for op, ids in self.operator_ids.items():
            if operator_id in ids:
                return op
        return None

    def operator(self, operator_id: int) -> dict[str, Any] | None:
        with self.lock:
            o = self.operators.get(operator_id)
            if o is None:
                return None
            o = dict(o)
            gone = self.withdrawn.get(operator_id, set())
            scale = 10 ** self.minor_units
            if o["denominationType"] == "FIXED":
                o["localFixedAmounts"] = [a for a in o["localFixedAmounts"]
                                          if round(a * scale) not in gone]
                o["fixedAmounts"] = list(o["localFixedAmounts"])
            return o

    def detect(self, phone: str) -> dict[str, Any] | None:
        with self.lock:
            op = self.ported.get(phone)
        if op is None:
            cc, trunk = self.catalog.country_code, self.catalog.trunk_prefix
            national = trunk + phone[len(cc):] if phone.startswith(cc) else phone
            check = self.catalog.check_number(national)
            op = check.operator if check.ok else None
        if op is None:
            return None
        return self.operator(self.operator_ids[op][0])

    def balance_of(self, phone: str) -> dict[str, Any] | None:
        op = self.detect(phone)
        if op is None:
            return None
        kiosk_op = self.kiosk_operator(op["operatorId"])
        if kiosk_op is None or not self.catalog.operator(kiosk_op).has_balance_inquiry:
            return None
        with self.lock:
            b = self.balances.setdefault(phone, {"airtime": 1250, "data_mb": 300,
                                                 "valid_until": "2026-12-05"})
            return dict(b)

    def _apply_to_balance(self, phone: str, operator_id: Any, minor: int) -> None:
        """A successful top-up changes the subscriber's balance as the operator would."""
        kiosk_op = self.kiosk_operator(operator_id)
        if kiosk_op is None or not phone:
            return
        b = self.balances.setdefault(phone, {"airtime": 1250, "data_mb": 300,
                                             "valid_until": "2026-12-05"})
        if operator_id % 1000 == 1:
            b["airtime"] += minor
            return
        for p in self.catalog.offers(kiosk_op):
            if p.kind.value != "airtime" and minor in p.amounts:
                b["data_mb"] += p.data_mb or 0
                if p.validity_days:
                    import datetime as _dt
                    today = _dt.datetime.now().astimezone().date()   # the local date
                    until = max(_dt.date.fromisoformat(b["valid_until"]), today)
                    b["valid_until"] = (until + _dt.timedelta(days=p.validity_days)).isoformat()
                return

    # ------------------------------------------------------------------ the API
    def issue_token(self, body: Any) -> tuple[int, Any]:
        with self.lock:
            self.token_requests += 1
            if not isinstance(body, dict) or body.get("grant_type") != "client_credentials" \
                    or body.get("client_id") != self.client_id \
                    or body.get("client_secret") != self.client_secret:
                return 401, {"errorCode": "INVALID_CREDENTIALS", "message": "Access Denied"}
            token = secrets.token_urlsafe(24)
            self.tokens.add(token)
            return 200, {"access_token": token, "scope": "send-topups read-topups-history",
                         "expires_in": self.token_ttl_s, "token_type": "Bearer"}

    def authorised(self, header: str | None) -> bool:
        with self.lock:
            return header is not None and header.startswith("Bearer ") \
                and header[len("Bearer "):] in self.tokens

    def topup(self, body: Any) -> tuple[str, int, Any, float]:
        """-> (what to do: "json" / "garbage" / "drop", HTTP status, body, delay)."""
        if not isinstance(body, dict) or not isinstance(body.get("customIdentifier"), str) \
                or not isinstance(body.get("amount"), (int, float)):
            return "json", 400, {"errorCode": "INVALID_REQUEST", "message": "bad request"}, 0
        cid = body["customIdentifier"]
        minor = round(body["amount"] * 10 ** self.minor_units)
        with self.lock:
            mode, delay = self.mode, self.delay_s
            self.attempts[cid] = self.attempts.get(cid, 0) + 1
            if self.dedupe:
                done = [t for t in self.transactions if t["customIdentifier"] == cid
                        and t["status"] in ("SUCCESSFUL", "PROCESSING")]
                if done:
                    return "json", 200, dict(done[0]), 0
            op = self.operators.get(body.get("operatorId"))   # type: ignore[arg-type]
            if op is not None and not _sells(self.operator(op["operatorId"]) or op, minor,
                                             self.minor_units):
                mode = "error_invalid_amount"
            if mode == "lost":
                return "drop", 0, None, 0
            if mode in _ERROR_MODES or mode in ("error", "error_invalid_amount"):
                if mode == "error_invalid_amount":
                    mode = "error"
                    self_code = "INVALID_AMOUNT_FOR_OPERATOR"
                else:
                    self_code = ""
                code = self_code or _ERROR_MODES.get(mode, self.error_code)
                return "json", 400, {"timeStamp": _now(), "errorCode": code,
                                     "message": code.replace("_", " ").capitalize(),
                                     "path": "/topups", "infoLink": None, "details": []}, 0
            status = {"fail": "FAILED", "refunded": "REFUNDED",
                      "processing": "PROCESSING"}.get(mode, "SUCCESSFUL")
            tid = next(self._ids)
            txn = {"transactionId": tid, "status": status,
                   "operatorTransactionId": f"OP{tid}" if status == "SUCCESSFUL" else None,
                   "customIdentifier": cid,
                   "recipientPhone": (body.get("recipientPhone") or {}).get("number"),
                   "countryCode": (body.get("recipientPhone") or {}).get("countryCode"),
                   "operatorId": body.get("operatorId"),
                   "requestedAmount": body["amount"],
                   "requestedAmountCurrencyCode": self.currency,
                   "deliveredAmount": body["amount"],
                   "deliveredAmountCurrencyCode": self.currency,
                   "transactionDate": _now()}
            self.transactions.append(txn)
            if status in ("SUCCESSFUL", "PROCESSING"):
                self.credits[cid] = self.credits.get(cid, 0) + minor
                self.credit_count[cid] = self.credit_count.get(cid, 0) + 1
                number = (body.get("recipientPhone") or {}).get("number")
                if isinstance(number, str) and isinstance(body.get("operatorId"), int):
                    self._apply_to_balance(number, body["operatorId"], minor)
            if status == "PROCESSING":
                self._pending_lookups[tid] = self.processing_lookups
            answer = dict(txn)
        if mode == "5xx":
            return "json", 500, {"errorCode": "INTERNAL_SERVER_ERROR",
                                 "message": "Internal error"}, 0
        if mode == "timeout_after_commit":
            return "drop", 0, None, 0
        if mode == "garbage":
            return "garbage", 200, None, 0
        return "json", 200, answer, delay if mode == "slow" else 0

    def report(self, cid: str) -> dict[str, Any]:
        with self.lock:
            out = []
            for t in self.transactions:
                if t["customIdentifier"] != cid:
                    continue
                if t["status"] == "PROCESSING":
                    left = self._pending_lookups.get(t["transactionId"], 0)
                    if left > 0:
                        self._pending_lookups[t["transactionId"]] = left - 1
                    else:
                        t["status"] = "SUCCESSFUL"
                        t["operatorTransactionId"] = f"OP{t['transactionId']}"
                out.append(dict(t))
            return {"content": out, "totalElements": len(out), "totalPages": 1,
                    "number": 0, "size": len(out)}


def _operators(catalog: Catalog, minor_units: int
               ) -> tuple[dict[int, dict[str, Any]], dict[str, list[int]]]:
    """Reloadly-shaped operator objects for what a kiosk catalog sells (see the docstring)."""
    scale = 10 ** minor_units
    ops: dict[int, dict[str, Any]] = {}
    ids: dict[str, list[int]] = {}
    for i, op in enumerate(catalog.operators, start=1):
        products = catalog.offers(op.id)
        airtime = [p for p in products if p.kind.value == "airtime"]
        bundles = [p for p in products if p.kind.value != "airtime"]
        base = {"country": {"isoName": "PH", "name": "Philippines"}, "pin": False,
                "fx": {"rate": 1.0, "currencyCode": catalog.currency},
                "destinationCurrencyCode": catalog.currency}
        ranges = [p for p in airtime if p.is_range]
        fixed = sorted({a for p in airtime for a in p.amounts})
        air: dict[str, Any] = {**base, "operatorId": i * 1000 + 1, "id": i * 1000 + 1,
                               "name": op.name, "bundle": False, "data": False}
        if ranges:
            air.update(denominationType="RANGE", localFixedAmounts=[], fixedAmounts=[],
                       localMinAmount=min(p.range_min or 0 for p in ranges) / scale,
                       localMaxAmount=max(p.range_max or 0 for p in ranges) / scale)
        else:
            air.update(denominationType="FIXED", localMinAmount=None, localMaxAmount=None,
                       localFixedAmounts=[a / scale for a in fixed],
                       fixedAmounts=[a / scale for a in fixed])
        ops[i * 1000 + 1] = air
        prices = sorted({a for p in bundles for a in p.amounts})
        ops[i * 1000 + 2] = {**base, "operatorId": i * 1000 + 2, "id": i * 1000 + 2,
                             "name": f"{op.name} Bundles", "bundle": True, "data": True,
                             "denominationType": "FIXED", "localMinAmount": None,
                             "localMaxAmount": None,
                             "localFixedAmounts": [a / scale for a in prices],
                             "fixedAmounts": [a / scale for a in prices],
                             "fixedAmountsDescriptions": {
                                 f"{a / scale:.2f}": p.name for p in bundles for a in p.amounts}}
        ids[op.id] = [i * 1000 + 1, i * 1000 + 2]
    return ops, ids


def _sells(op: dict[str, Any], minor: int, minor_units: int) -> bool:
    scale = 10 ** minor_units
    if op["denominationType"] == "RANGE":
        return round(op["localMinAmount"] * scale) <= minor <= round(op["localMaxAmount"] * scale)
    return minor in {round(a * scale) for a in op["localFixedAmounts"]}


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


class _Handler(JsonHandler):
    simulator: ReloadlySimulator

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _route(self, method: str) -> None:
        sim = self.simulator
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        with sim.lock:
            sim.requests.append((method, path))
        body = self._body() if method == "POST" else None
        if method == "POST" and path == "/oauth/token":
            return self._send(*sim.issue_token(body))
        if path.startswith("/_sim/"):
            if method == "POST" and path == "/_sim/mode" and isinstance(body, dict):
                try:
                    if body.get("expire_tokens"):
                        sim.expire_tokens()
                    if "mode" in body:
                        sim.set_mode(body["mode"], delay_s=body.get("delay_s"),
                                     processing_lookups=body.get("processing_lookups"),
                                     error_code=body.get("error_code"),
                                     dedupe=body.get("dedupe"))
                except (ValueError, TypeError) as exc:
                    return self._send(400, {"message": str(exc)})
                return self._send(200, {"mode": sim.mode})
            if method == "GET" and path == "/_sim/state":
                return self._send(200, sim.snapshot())
            return self._send(404, {"message": "no such admin endpoint"})
        if not sim.authorised(self.headers.get("Authorization")):
            return self._send(401, {"errorCode": "TOKEN_EXPIRED", "message": "Unauthorized"})
        if method == "POST" and path == "/topups":
            what, code, answer, delay = sim.topup(body)
            delay += sim.topup_delay_s
            if delay:
                time.sleep(delay)
            if what == "drop":
                return self._drop()
            if what == "garbage":
                self._raw(code, "text/html", b"<html><body>Bad Gateway</body></html>")
                return None
            return self._send(code, answer)
        if method == "GET" and path == "/topups/reports/transactions":
            cid = parse_qs(url.query).get("customIdentifier", [""])[0]
            return self._send(200, sim.report(cid))
        if method == "GET" and path.startswith("/subscribers/") and path.count("/") == 2:
            if sim.subscriber_delay_s:
                time.sleep(sim.subscriber_delay_s)
            number = DEMO_SIMS.get(path.rsplit("/", 1)[1])
            if number is None:
                return self._send(404, {"errorCode": "SUBSCRIBER_NOT_FOUND",
                                        "message": "Unknown SIM"})
            return self._send(200, {"iccid": path.rsplit("/", 1)[1], "msisdn": number})
        if method == "GET" and path.startswith("/operators/auto-detect/phone/"):
            parts = path.split("/")   # ['', operators, auto-detect, phone, N, countries, ISO]
            if sim.detect_down:
                return self._send(503, {"errorCode": "SERVICE_UNAVAILABLE",
                                        "message": "Service unavailable"})
            found = sim.detect(parts[4]) if len(parts) == 7 else None
            if found is None:
                return self._send(404, {"errorCode": "COULD_NOT_AUTO_DETECT_OPERATOR",
                                        "message": "Could not auto detect operator"})
            return self._send(200, found)
        if method == "GET" and path.startswith("/operators/"):
            tail = path.rsplit("/", 1)[1]
            found = sim.operator(int(tail)) if tail.isdigit() else None
            if found is None:
                return self._send(404, {"errorCode": "OPERATOR_NOT_FOUND",
                                        "message": "Operator not found"})
            return self._send(200, found)
        if method == "GET" and path.startswith("/subscribers/by-phone/") \
                and path.endswith("/balance"):
            b = sim.balance_of(path.split("/")[3])
            if b is None:
                return self._send(404, {"errorCode": "BALANCE_INQUIRY_NOT_SUPPORTED",
                                        "message": "No balance inquiry for this number"})
            scale = 10 ** sim.minor_units
            return self._send(200, {"airtime": b["airtime"] / scale,
                                    "currencyCode": sim.currency, "dataMb": b["data_mb"],
                                    "validUntil": b["valid_until"]})
        if method == "GET" and path == "/accounts/balance":
            return self._send(200, {"balance": 100000.0, "currencyCode": sim.currency,
                                    "currencyName": "Philippine Peso",
                                    "updatedAt": _now()})
        return self._send(404, {"errorCode": "NOT_FOUND", "message": "Not found"})

    def do_GET(self) -> None:   # http.server's naming
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")
