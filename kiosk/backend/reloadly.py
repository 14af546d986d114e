"""A top-up backend on Reloadly's Airtime API (an aggregator), over HTTPS with httpx.

What was taken from where (public material, read for the API shape, nothing copied):

- /work/shared/PROTOCOLS.md, "Top-up aggregators": one unique client reference per top-up
  (Reloadly `customIdentifier`); statuses PROCESSING / SUCCESSFUL / FAILED / REFUNDED; look the
  reference up when the reply never came; a Ding client saw a replayed reference paid twice, so
  the kiosk never relies on the aggregator to de-duplicate; typical errors (operator not
  detected, invalid amount, insufficient balance, number recently recharged).
- Reloadly docs (docs.reloadly.com, "Get the status of a top-up"; blog.reloadly.com "How does
  the Get Top-up Status endpoint work?"): `GET /topups/{transactionId}/status`; the transaction
  object has transactionId, status, operatorTransactionId, customIdentifier, recipientPhone,
  operatorId, requestedAmount, deliveredAmount, transactionDate. SUCCESSFUL = made; PROCESSING
  = still being verified with the operator; REFUNDED = not made, funds returned; FAILED = not
  made, funds not debited.
- Reloadly OpenAPI / request examples (api-evangelist/reloadly): `POST /topups` with
  operatorId, amount, useLocalAmount, customIdentifier, recipientPhone {countryCode, number};
  `Accept: application/com.reloadly.topups-v1+json`; bearer token from OAuth2 client
  credentials at https://auth.reloadly.com/oauth/token with audience
  https://topups.reloadly.com (sandbox: https://topups-sandbox.reloadly.com).
- Error bodies: a 4xx with JSON {"errorCode": ..., "message": ...}; codes INSUFFICIENT_BALANCE,
  PHONE_RECENTLY_RECHARGED, INVALID_AMOUNT_FOR_OPERATOR, COULD_NOT_AUTO_DETECT_OPERATOR,
  PROVIDER_INTERNAL_ERROR (from the brief; the exact list should be checked against Reloadly's
  current error reference before going live).
- The look-up by the kiosk's reference uses the transactions report,
  `GET /topups/reports/transactions?customIdentifier=...` (paged: {"content": [...]}).

Outcome rules (kiosk/backend/base.py): this class returns FAILED only for an answer that
says the top-up was not made (status FAILED/REFUNDED, or a 4xx business error with an error
code). A timeout, a dropped connection, a 5xx, an unparseable body or any answer it does not
understand RAISES: the runtime turns every exception into UNKNOWN and looks the reference up
before anything else. PROVIDER_INTERNAL_ERROR is treated as "no final answer" too (raise): an
internal error on the provider's side does not prove that nothing was sent to the operator.

Subscriber look-up: aggregators have no ICCID -> number service. `lookup_subscriber` calls
`GET /subscribers/{iccid}` on the same base URL: the operator's (or a partner aggregator's)
SIM-registry endpoint. It is not part of Reloadly's API; kiosk/backend/http_sim.py simulates it.
"""

from __future__ import annotations

import asyncio
import math
import time
from decimal import Decimal
from typing import Any, TypeGuard

import httpx

from .base import Balance, Offer, TopUpAnswer, TopUpBackend, TopUpStatus

ACCEPT = "application/com.reloadly.topups-v1+json"

# Reloadly error code -> kiosk message key (kiosk/i18n.py NOTICES). Anything else: rejected.
ERROR_REASONS: dict[str, str] = {
    "INSUFFICIENT_BALANCE": "backend.insufficient_balance",
    "PHONE_RECENTLY_RECHARGED": "backend.recently_recharged",
    "INVALID_AMOUNT_FOR_OPERATOR": "backend.invalid_amount",
    "INVALID_AMOUNT": "backend.invalid_amount",
    "COULD_NOT_AUTO_DETECT_OPERATOR": "backend.unknown_operator",
    "OPERATOR_NOT_FOUND": "backend.unknown_operator",
}
# Error codes that do not prove the top-up was not made: no final answer (raise -> UNKNOWN).
NOT_FINAL_ERRORS = {"PROVIDER_INTERNAL_ERROR", "SERVICE_UNAVAILABLE"}
# HTTP 4xx statuses that are not a business answer about this top-up.
NOT_FINAL_HTTP = {401, 403, 404, 405, 408, 409, 425, 429}


class ReloadlyError(Exception):
    """No usable answer from the aggregator (the runtime reads it as UNKNOWN)."""


class ReloadlyBackend(TopUpBackend):
    """Options (config table [backend] with driver = "reloadly"):

    base_url       the Airtime API, e.g. https://topups.reloadly.com (sandbox:
                   https://topups-sandbox.reloadly.com)
    auth_url       the OAuth2 token endpoint
    audience       the token's audience (the production Airtime API by default)
    client_id, client_secret   OAuth2 client credentials
    timeout_s      read/write timeout of one request (connect: 3 s); keep it below the
                   kiosk's backend.timeout_s
    verify         TLS certificate verification (on; off only for a local test server)
    operator_ids   kiosk operator id -> Reloadly operatorId, or a list of them (its airtime
                   operator first, then its bundle/data operators); when given, an operator
                   missing from it is refused before anything is sent (FAILED,
                   backend.unknown_operator), auto-detect maps Reloadly's answer back to a
                   kiosk operator and products are checked against what Reloadly sells; when
                   not given the kiosk's operator id is sent as it is and the number plan and
                   catalog decide alone
    balance_inquiry  ask the operator's balance (GET /subscribers/by-phone/{n}/balance on
                   the same base URL: an operator extension, not Reloadly's API)
    offers_ttl_s   how long what an operator sells is cached
    simulator      demo and tests: start kiosk/backend/http_sim.py on 127.0.0.1 and use it
                   (plain HTTP; the other options are set to match it)
    country_iso    ISO 3166 alpha-2 country of the recipients (recipientPhone.countryCode)
    minor_units    decimals of the local currency: the kiosk's minor units -> `amount`, sent
                   with useLocalAmount = true
    """

    def __init__(self, base_url: str = "https://topups.reloadly.com",
                 auth_url: str = "https://auth.reloadly.com/oauth/token",
                 audience: str = "https://topups.reloadly.com",
                 client_id: str = "", client_secret: str = "",
                 timeout_s: float = 10.0, verify: bool = True,
                 operator_ids: dict[str, Any] | None = None,
                 country_iso: str = "PH", minor_units: int = 2,
                 balance_inquiry: bool = True, offers_ttl_s: float = 300.0,
                 simulator: bool = False) -> None:
        self.simulator: Any = None
        if simulator:
            from .http_sim import ReloadlySimulator
            self.simulator = ReloadlySimulator(minor_units=minor_units).start()
            base_url, auth_url = self.simulator.url, self.simulator.url + "/oauth/token"
            client_id, client_secret = self.simulator.client_id, self.simulator.client_secret
            verify = False
            if operator_ids is None:
                operator_ids = dict(self.simulator.operator_ids)
        self.base_url = base_url.rstrip("/")
        self.auth_url = auth_url
        self.audience = audience
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout_s = float(timeout_s)
        self.verify = verify
        self.operator_ids: dict[str, list[Any]] | None = None
        if operator_ids is not None:
            self.operator_ids = {k: list(v) if isinstance(v, (list, tuple)) else [v]
                                 for k, v in operator_ids.items()}
        self.country_iso = country_iso
        self.minor_units = minor_units
        self.balance_inquiry = balance_inquiry
        self.offers_ttl_s = offers_ttl_s
        self._offers: dict[str, tuple[float, list[Offer]]] = {}   # operator -> (when, offers)
        self._client: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._token_expires = 0.0          # monotonic
        self._token_lock: asyncio.Lock | None = None
        self.token_fetches = 0             # for tests and diagnostics

    # ------------------------------------------------------------------ plumbing
    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s, connect=3.0),
                verify=self.verify, headers={"Accept": ACCEPT})
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None

    async def _get_token(self, force: bool = False) -> str:
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        async with self._token_lock:
            if not force and self._token and time.monotonic() < self._token_expires:
                return self._token
            r = await self._http().post(self.auth_url, json={
                "client_id": self.client_id, "client_secret": self.client_secret,
                "grant_type": "client_credentials", "audience": self.audience},
                headers={"Accept": "application/json"})
            self.token_fetches += 1
            if r.status_code != 200:
                raise ReloadlyError(f"token request refused: HTTP {r.status_code}")
            body = _json(r)
            token = body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise ReloadlyError("token response without access_token")
            expires_in = body.get("expires_in", 3600)
            expires_in = expires_in if isinstance(expires_in, (int, float)) else 3600
            # Renew a little early (10 % of the lifetime, at most 60 s) so a token does not
            # expire between here and the request that carries it.
            self._token = token
            self._token_expires = time.monotonic() + expires_in - min(60.0, expires_in / 10)
            return token

    async def _request(self, method: str, path: str, *, timeout: httpx.Timeout | None = None,
                       **kw: Any) -> httpx.Response:
        """One authenticated request; on 401 the token is renewed and the request sent once
        more (a 401 means the request was refused before it was processed)."""
        for attempt in (0, 1):
            token = await self._get_token(force=attempt == 1)
            r = await self._http().request(
                method, self.base_url + path, headers={"Authorization": f"Bearer {token}"},
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout, **kw)
            if r.status_code != 401:
                return r
            self._token = None
        return r

    # ------------------------------------------------------------------ TopUpBackend
    async def lookup_subscriber(self, iccid: str) -> str | None:
        r = await self._request("GET", f"/subscribers/{iccid}")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise ReloadlyError(f"subscriber look-up: HTTP {r.status_code}")
        body = _json(r)
        number = body.get("msisdn") if isinstance(body, dict) else None
        return number if isinstance(number, str) and number else None

    async def topup(self, ref: str, msisdn: str, operator: str, product_id: str,
                    amount: int, kind: str = "airtime") -> TopUpAnswer:
        if self.operator_ids is not None:
            if operator not in self.operator_ids:
                # Refused before anything is sent: a final answer.
                return TopUpAnswer(TopUpStatus.FAILED, reason="backend.unknown_operator")
            operator_id: Any = await self._operator_for(operator, kind, amount)
        else:
            operator_id = operator
        payload = {
            "operatorId": operator_id,
            "amount": float(Decimal(amount) / (10 ** self.minor_units)),
            "useLocalAmount": True,
            "customIdentifier": ref,
            "recipientPhone": {"countryCode": self.country_iso, "number": msisdn},
        }
        r = await self._request("POST", "/topups", json=payload)
        if 200 <= r.status_code < 300:
            return self._answer(_json(r))
        if 400 <= r.status_code < 500 and r.status_code not in NOT_FINAL_HTTP:
            body = _json(r)
            code = body.get("errorCode") if isinstance(body, dict) else None
            if not isinstance(code, str) or not code or code in NOT_FINAL_ERRORS:
                raise ReloadlyError(f"top-up {ref}: HTTP {r.status_code} {code!r}")
            return TopUpAnswer(TopUpStatus.FAILED, reason=ERROR_REASONS.get(code,
                                                                            "backend.rejected"))
        raise ReloadlyError(f"top-up {ref}: HTTP {r.status_code}")

    async def status(self, ref: str) -> TopUpAnswer:
        """Looks the kiosk's reference up (customIdentifier), never the aggregator's id:
        the kiosk may not have received that id at all."""
        r = await self._request("GET", "/topups/reports/transactions",
                                params={"customIdentifier": ref, "page": 1, "size": 50})
        if r.status_code != 200:
            raise ReloadlyError(f"status of {ref}: HTTP {r.status_code}")
        body = _json(r)
        items = body.get("content") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ReloadlyError(f"status of {ref}: no transaction list")
        mine = [t for t in items if isinstance(t, dict) and t.get("customIdentifier") == ref]
        if not mine:
            return TopUpAnswer(TopUpStatus.NOT_FOUND)
        answers = [self._answer(t) for t in mine]
        # One success is a success (the number was credited); any PROCESSING: not final yet.
        for want in (TopUpStatus.SUCCESSFUL, TopUpStatus.UNKNOWN):
            for a in answers:
                if a.status is want:
                    return a
        return answers[0]

    async def _operator_for(self, operator: str, kind: str, amount: int) -> Any:
        """The Reloadly operator that sells this kind of product at this amount: the airtime
        operator for airtime, a bundle operator for packs (the first listed when what they
        sell is not known)."""
        assert self.operator_ids is not None
        ids = self.operator_ids[operator]
        want = "airtime" if kind == "airtime" else "bundle"
        try:
            offers = await self.offers(operator) or []
        except Exception:   # noqa: BLE001 - the listing is a hint; the top-up decides
            offers = []
        for o in offers:
            if o.kind == want and o.covers_amount(amount):
                return _as_sent(o.provider_id)
        if want == "bundle" and len(ids) > 1:
            return ids[1]
        return ids[0]

    async def detect_operator(self, msisdn: str) -> str | None:
        if self.operator_ids is None:
            return None
        r = await self._request("GET", f"/operators/auto-detect/phone/{msisdn}"
                                       f"/countries/{self.country_iso}",
                                params={"suggestedAmounts": "false"})
        if r.status_code == 404:
            return None                      # not detected: the number plan decides
        if r.status_code != 200:
            raise ReloadlyError(f"operator auto-detect: HTTP {r.status_code}")
        body = _json(r)
        found = body.get("operatorId", body.get("id")) if isinstance(body, dict) else None
        for op, ids in self.operator_ids.items():
            if found in ids or str(found) in map(str, ids):
                return op
        return ""                            # an operator this kiosk does not sell

    async def offers(self, operator: str) -> list[Offer] | None:
        if self.operator_ids is None or operator not in self.operator_ids:
            return None
        cached = self._offers.get(operator)
        if cached and time.monotonic() - cached[0] < self.offers_ttl_s:
            return cached[1]
        out = []
        for oid in self.operator_ids[operator]:
            r = await self._request("GET", f"/operators/{oid}")
            if r.status_code == 404:
                continue                     # withdrawn: sells nothing
            if r.status_code != 200:
                raise ReloadlyError(f"operator {oid}: HTTP {r.status_code}")
            out.append(self._offer(_json(r), oid))
        self._offers[operator] = (time.monotonic(), out)
        return out

    def _offer(self, o: Any, oid: Any) -> Offer:
        if not isinstance(o, dict):
            raise ReloadlyError(f"operator {oid}: not an object")
        scale = 10 ** self.minor_units
        kind = "bundle" if o.get("bundle") or o.get("data") else "airtime"

        def minor(v: Any) -> int:
            if not _finite(v) or v < 0:
                raise ReloadlyError(f"operator {oid}: bad amount {v!r}")
            return int((Decimal(str(v)) * scale).to_integral_value())
        if o.get("denominationType") == "RANGE":
            lo = o.get("localMinAmount", o.get("minAmount"))
            hi = o.get("localMaxAmount", o.get("maxAmount"))
            return Offer(kind, range_min=minor(lo), range_max=minor(hi), provider_id=str(oid))
        amounts = o.get("localFixedAmounts") or o.get("fixedAmounts") or []
        if not isinstance(amounts, list):
            raise ReloadlyError(f"operator {oid}: bad fixed amounts")
        return Offer(kind, tuple(sorted(minor(a) for a in amounts)), provider_id=str(oid))

    async def balance(self, msisdn: str, operator: str) -> Balance | None:
        if not self.balance_inquiry:
            return None
        r = await self._request("GET", f"/subscribers/by-phone/{msisdn}/balance")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise ReloadlyError(f"balance inquiry: HTTP {r.status_code}")
        b = _json(r)
        if not isinstance(b, dict):
            raise ReloadlyError("balance inquiry: not an object")
        air, data, until = b.get("airtime"), b.get("dataMb"), b.get("validUntil")
        return Balance(
            airtime=int((Decimal(str(air)) * 10 ** self.minor_units).to_integral_value())
            if _finite(air) else None,
            data_mb=int(data) if _finite(data) else None,
            valid_until=until if isinstance(until, str) else "")

    async def reachable(self) -> bool:
        try:
            r = await self._request("GET", "/accounts/balance",
                                    timeout=httpx.Timeout(min(self.timeout_s, 3.0)))
            return r.status_code == 200
        except Exception:   # noqa: BLE001 - any failure means unreachable
            return False

    # ------------------------------------------------------------------ mapping
    @staticmethod
    def _answer(txn: Any) -> TopUpAnswer:
        if not isinstance(txn, dict):
            raise ReloadlyError("transaction is not an object")
        status = txn.get("status")
        op_ref = txn.get("operatorTransactionId") or txn.get("transactionId") or ""
        if status == "SUCCESSFUL":
            return TopUpAnswer(TopUpStatus.SUCCESSFUL, str(op_ref))
        if status in ("FAILED", "REFUNDED"):
            return TopUpAnswer(TopUpStatus.FAILED, str(op_ref), "backend.rejected")
        if status == "PROCESSING":
            return TopUpAnswer(TopUpStatus.UNKNOWN, str(op_ref))
        raise ReloadlyError(f"unknown transaction status {status!r}")


def _as_sent(provider_id: str) -> Any:
    return int(provider_id) if provider_id.isascii() and provider_id.isdigit() else provider_id


def _finite(v: Any) -> TypeGuard[int | float]:
    """A JSON number that is an amount: not a bool, not NaN or Infinity (json takes both)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError as exc:
        raise ReloadlyError(f"HTTP {r.status_code}: body is not JSON") from exc
