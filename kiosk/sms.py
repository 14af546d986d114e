"""An SMS gateway over HTTP(S) with httpx: how a voucher reaches its customer's phone.

The API is this project's generic SMS gateway, shaped like the public ones (Twilio's
Messages, Vonage's SMS API, Infobip's text endpoint: a JSON POST with the sender, the
number in E.164 and the text; an id back). kiosk/sms_sim.py simulates it on 127.0.0.1.

    POST /v1/messages   {"to": "+639171234567", "from": "TOPUP", "text": "...",
                         "client_ref": "K0001-7KQ2-000042.v118"}
                        header `Authorization: Bearer <api_key>`
                        -> 201 {"id": "SM0000000001", "status": "accepted"}
                        The same client_ref again: 200 and the first message's id; nothing
                        is sent twice (a reply lost on the way is asked for again safely).
                        400 {"error": "invalid_number" | "invalid_text" | "invalid_sender"}:
                        refused for good.  401: the API key is refused.  429, 5xx: later.
    GET  /v1/health     -> 200 {"ok": true}

Rules, as kiosk/voucher_delivery.py reads them:

- `send` returns the gateway's message id once the gateway ACCEPTED the message (201/200).
- SmsRefused: the gateway will never take this message (4xx other than 401/408/429): the
  kiosk journals the refusal and does not retry; a technician can resend it.
- SmsUnavailable: anything else (no connection, a timeout, 401 a refused key, 408, 429,
  5xx, a body that is not JSON or has no id): retry later, with back-off. A refused key is
  not final: the key gets fixed and the messages must still go.

Nothing here logs or raises the text, the number or the API key.

Settings (`settings.sms`, read with `sms_settings`; the configuration loader owns the
`[sms]` table, a missing one means SMS is off):

    driver         "http": send through the gateway at base_url; "none" (default): off
    base_url       the gateway, e.g. https://sms-gateway.example.com (no trailing /v1)
    api_key        sent as `Authorization: Bearer <api_key>` (a secret)
    sender         the sender id the customer sees, e.g. "TOPUP" (1-11 letters/digits)
    timeout_s      read/write timeout of one request (connect: 3 s); default 10
    verify         TLS certificate verification (default true)
    simulator      true: run kiosk/sms_sim.py on 127.0.0.1 in the kiosk and send there
                   (demos); base_url and api_key are then ignored
    retry_first_s  the first wait after a failed send (default 5); doubles each time
    retry_max_s    the longest wait between two tries (default 600)
    language       the language of the texts ("en", "zh_CN"; default: ui.default_language)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

import httpx

from .http_client import bearer_client

SENDER = re.compile(r"^[A-Za-z0-9]{1,11}$|^\+?[0-9]{3,15}$")


class SmsError(Exception):
    """The gateway did not accept a message."""


class SmsUnavailable(SmsError):
    """No acceptance now: try again later."""


class SmsRefused(SmsError):
    """The gateway refuses this message for good (`reason`: its error code)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(detail or reason)


@dataclass(frozen=True)
class SmsSettings:
    driver: str = "none"
    base_url: str = ""
    api_key: str = ""
    sender: str = "TOPUP"
    timeout_s: float = 10.0
    verify: bool = True
    simulator: bool = False
    retry_first_s: float = 5.0
    retry_max_s: float = 600.0
    language: str = ""

    @property
    def enabled(self) -> bool:
        return self.driver == "http" and (self.simulator or bool(self.base_url))


def sms_settings(settings: Any) -> SmsSettings:
    """`settings.sms` (an object with these attributes, or a plain table), else SMS off."""
    raw = getattr(settings, "sms", None)
    if raw is None:
        return SmsSettings()
    if isinstance(raw, SmsSettings):
        return raw
    if isinstance(raw, dict):
        return SmsSettings(**{f.name: raw[f.name] for f in fields(SmsSettings) if f.name in raw})
    return SmsSettings(**{f.name: getattr(raw, f.name) for f in fields(SmsSettings)
                          if hasattr(raw, f.name)})


def e164(country_code: str, trunk_prefix: str, national: str) -> str | None:
    """'09171234567' -> '+639171234567' (the catalog's country code and trunk prefix);
    None if it is not a plausible number."""
    digits = re.sub(r"[^0-9]", "", national)
    if not digits:
        return None
    if digits.startswith(trunk_prefix):     # national form (every form, with no trunk prefix)
        digits = country_code + digits[len(trunk_prefix):]
    elif not digits.startswith(country_code):
        return None
    return "+" + digits if 8 <= len(digits) <= 15 else None


class HttpSmsGateway:
    def __init__(self, base_url: str, api_key: str, sender: str = "TOPUP",
                 timeout_s: float = 10.0, verify: bool = True) -> None:
        if not base_url:
            raise ValueError('sms.base_url: required for driver "http" (or simulator = true)')
        if not SENDER.match(sender):
            raise ValueError(f"sms.sender: 1-11 letters or digits, or a number; got {sender!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.sender = sender
        self.timeout_s = float(timeout_s)
        self.verify = verify
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, conf: SmsSettings, base_url: str | None = None,
                      api_key: str | None = None) -> HttpSmsGateway:
        return cls(base_url if base_url is not None else conf.base_url,
                   api_key if api_key is not None else conf.api_key,
                   conf.sender, conf.timeout_s, conf.verify)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = bearer_client(self.timeout_s, self.verify, self.api_key)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, to: str, text: str, client_ref: str) -> str:
        """Hand one message to the gateway; its id once accepted. The same `client_ref`
        again is the same message (the gateway sends it once)."""
        try:
            r = await self._http().post(self.base_url + "/v1/messages", json={
                "to": to, "from": self.sender, "text": text, "client_ref": client_ref})
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise SmsUnavailable(f"POST /v1/messages: {type(exc).__name__}") from exc
        try:
            body = r.json()
        except ValueError:
            body = None
        code = r.status_code
        if code in (200, 201):
            gid = body.get("id") if isinstance(body, dict) else None
            if not isinstance(gid, str) or not gid:
                raise SmsUnavailable(f"HTTP {code} without a message id")
            return gid
        error = str(body.get("error", "")) if isinstance(body, dict) else ""
        if code == 401:
            raise SmsUnavailable("HTTP 401: the gateway refused the API key")
        if 400 <= code < 500 and code not in (408, 429):
            raise SmsRefused(error or f"http_{code}", f"HTTP {code} ({error or 'no reason'})")
        raise SmsUnavailable(f"HTTP {code}" + (f" ({error})" if error else ""))

    async def reachable(self) -> bool:
        try:
            r = await self._http().get(self.base_url + "/v1/health",
                                       timeout=httpx.Timeout(min(self.timeout_s, 3.0)))
            body = r.json()
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError):
            return False
        return r.status_code == 200 and isinstance(body, dict) and body.get("ok") is True
