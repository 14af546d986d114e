"""A mobile-wallet QR gateway over HTTP(S) with httpx: dynamic EMVCo orders, polled by reference.

It speaks the project's generic merchant gateway API, documented in
kiosk/payments/gateway_sim.py (which also simulates it on 127.0.0.1). The shape follows the
public gateways in /work/shared/PROTOCOLS.md ("Mobile-wallet QR"): the gateway returns the
string to render as the QR code (WeChat Pay Native `code_url`, Alipay precreate `qr_code`, a
QR Ph P2M dynamic payload), the kiosk polls its own reference until paid, expired or closed,
and closes the order when the customer walks away. Some QR Ph providers cannot refund, so a
payment that arrives after the close is reported as "paid" and the kiosk keeps it as a voucher.

Rules, as the runtime reads them (kiosk/runtime.py `_qr_order`, `_qr_close`):

- Every problem raises WalletError: a timeout, a dropped connection, a 5xx, a body that is
  not JSON or not the expected shape, a refused API key, a reused reference. An exception from
  create_order means "QR unavailable"; from status, "keep polling"; from close, "unknown, ask
  again". Nothing here guesses a state from a failure.
- create_order checks the payload before the kiosk shows it: a valid EMVCo payload (CRC),
  dynamic, the kiosk's currency in tag 53, exactly the ordered amount in tag 54 and the
  kiosk's reference in 62/05. A kiosk must never show a QR code for a different amount.
- status and close read a 404 {"error": "unknown_reference"} as "closed" (the gateway has no
  such order, so nothing can be paid on it). Any other 404 (a wrong base_url, a proxy page)
  raises: it says nothing about the order.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

import httpx

from kiosk.money import CURRENCIES, Money

from ..http_client import bearer_client
from .emvco import Field, QrPayloadError, decode
from .gateway_sim import WalletGatewaySimulator
from .wallet import WalletOrder, WalletProvider, WalletStatus

STATES = frozenset({"pending", "paid", "expired", "closed", "declined"})


class WalletError(Exception):
    """No usable answer from the wallet gateway (or an answer the kiosk must not trust)."""


class HttpWallet(WalletProvider):
    """Options (config table [wallet] with driver = "http"):

    base_url       the gateway, e.g. https://wallet-gateway.example.com (no trailing /v1)
    api_key        sent as `Authorization: Bearer <api_key>`
    timeout_s      read/write timeout of one request (connect: 3 s); keep it below the
                   kiosk's backend.timeout_s, which bounds create_order
    verify         TLS certificate verification (on; off only for a local test server)
    simulator      true: start a WalletGatewaySimulator on 127.0.0.1 and use it (demos); the
                   demo panel reaches it as `wallet.simulator`; base_url and api_key are ignored
    currency, merchant_name, merchant_city
                   filled in by the kiosk from its settings; the currency is sent with each
                   order and checked in the payload; the merchant name and city are used only
                   by the simulator (a real gateway knows its merchant)
    """

    def __init__(self, base_url: str = "", api_key: str = "", timeout_s: float = 10.0,
                 verify: bool = True, currency: str = "PHP",
                 merchant_name: str = "TOPUP KIOSK", merchant_city: str = "MANILA",
                 simulator: bool = False) -> None:
        if currency not in CURRENCIES:
            raise ValueError(f"wallet: unknown currency {currency!r}")
        self.timeout_s = float(timeout_s)
        self.verify = verify
        self.currency = currency
        self.merchant_name = merchant_name
        self.merchant_city = merchant_city
        self.simulator: WalletGatewaySimulator | None = None
        if simulator:
            self.simulator = WalletGatewaySimulator(
                currency=currency, merchant_name=merchant_name,
                merchant_city=merchant_city).start()
            base_url, api_key = self.simulator.url, self.simulator.api_key
        if not base_url:
            raise ValueError('wallet.base_url: required for driver "http" '
                             "(or simulator = true)")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._client: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ plumbing
    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = bearer_client(self.timeout_s, self.verify, self.api_key)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self.simulator is not None:
            self.simulator.stop()

    async def _request(self, method: str, path: str, *,
                       timeout: httpx.Timeout | None = None,
                       **kw: Any) -> tuple[int, Any]:
        """(HTTP status, JSON body). Raises WalletError when there is no answer or the body
        is not JSON."""
        try:
            r = await self._http().request(
                method, self.base_url + path,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout, **kw)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise WalletError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        try:
            return r.status_code, r.json()
        except ValueError as exc:
            raise WalletError(f"{method} {path}: HTTP {r.status_code}, body is not JSON") \
                from exc

    @staticmethod
    def _path(ref: str) -> str:
        return "/v1/orders/" + quote(ref, safe="")

    # ------------------------------------------------------------------ WalletProvider
    async def create_order(self, ref: str, amount: int, expires_in_s: int) -> WalletOrder:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise WalletError(f"order {ref}: amount must be a positive integer, got {amount!r}")
        code, body = await self._request("POST", "/v1/orders", json={
            "reference": ref, "amount": amount, "currency": self.currency,
            "expires_in": expires_in_s})
        if code == 401:
            raise WalletError(f"order {ref}: the gateway refused the API key")
        if code == 409:
            raise WalletError(f"order {ref}: reference already used for another order "
                              f"({_error(body)})")
        if code not in (200, 201):
            raise WalletError(f"order {ref}: HTTP {code} ({_error(body)})")
        if not isinstance(body, dict) or body.get("reference") != ref:
            raise WalletError(f"order {ref}: the answer is not this order")
        payload, expires_at = body.get("qr_payload"), body.get("expires_at")
        if not isinstance(payload, str) or not payload:
            raise WalletError(f"order {ref}: no qr_payload in the answer")
        if (isinstance(expires_at, bool) or not isinstance(expires_at, (int, float))
                or not math.isfinite(expires_at)):
            raise WalletError(f"order {ref}: no expires_at in the answer ({expires_at!r})")
        self._check_payload(ref, amount, payload)
        return WalletOrder(ref, payload, float(expires_at))

    async def status(self, ref: str) -> WalletStatus:
        code, body = await self._request("GET", self._path(ref))
        return self._status(ref, code, body, "status")

    async def close(self, ref: str) -> WalletStatus:
        """Close an unpaid order; returns its final state (paid if the payment won the race)."""
        code, body = await self._request("POST", self._path(ref) + "/close")
        return self._status(ref, code, body, "close")

    async def reachable(self) -> bool:
        try:
            code, body = await self._request(
                "GET", "/v1/health", timeout=httpx.Timeout(min(self.timeout_s, 3.0)))
        except Exception:   # noqa: BLE001 - any failure means unreachable
            return False
        return code == 200 and isinstance(body, dict) and body.get("ok") is True

    # ------------------------------------------------------------------ checks and mapping
    def _check_payload(self, ref: str, amount: int, payload: str) -> None:
        """The QR code must ask for exactly this amount, in this currency, for this order."""
        try:
            fields = decode(payload)
        except QrPayloadError as exc:
            raise WalletError(f"order {ref}: invalid QR payload: {exc}") from exc
        top = {f.tag: f for f in fields}
        want_amount = Money(amount, self.currency).decimal_text().replace(",", "")
        want_currency = f"{CURRENCIES[self.currency][0]:03d}"
        extra: dict[str, str] = {c.tag: c.value for c in _children(top.get("62"))}
        problems = []
        if _value(top.get("01")) != "12":
            problems.append("not a dynamic payload (tag 01 is not 12)")
        if _value(top.get("53")) != want_currency:
            problems.append(f"currency {_value(top.get('53'))!r}, ordered {want_currency}")
        if _value(top.get("54")) != want_amount:
            problems.append(f"amount {_value(top.get('54'))!r}, ordered {want_amount}")
        if extra.get("05") != ref:
            problems.append(f"reference {extra.get('05')!r}, ordered {ref!r}")
        if problems:
            raise WalletError(f"order {ref}: QR payload refused: " + "; ".join(problems))

    @staticmethod
    def _status(ref: str, code: int, body: Any, what: str) -> WalletStatus:
        if code == 404 and isinstance(body, dict) and body.get("error") == "unknown_reference":
            return WalletStatus("closed")
        if code != 200:
            raise WalletError(f"{what} of {ref}: HTTP {code} ({_error(body)})")
        if not isinstance(body, dict) or body.get("reference") != ref:
            raise WalletError(f"{what} of {ref}: the answer is not this order")
        state = body.get("status")
        if state not in STATES:
            raise WalletError(f"{what} of {ref}: unknown status {state!r}")
        provider_ref = body.get("provider_ref") or ""
        if not isinstance(provider_ref, str):
            raise WalletError(f"{what} of {ref}: provider_ref is not a string")
        if state != "paid":
            return WalletStatus(state, 0, provider_ref)
        paid = body.get("paid_amount")
        if isinstance(paid, bool) or not isinstance(paid, int) or paid <= 0:
            raise WalletError(f"{what} of {ref}: paid without a paid_amount ({paid!r})")
        return WalletStatus("paid", paid, provider_ref)


def _value(f: Field | None) -> str | None:
    return f.value if f is not None else None


def _children(f: Field | None) -> tuple[Field, ...]:
    return f.children if f is not None else ()


def _error(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return "no error code"
