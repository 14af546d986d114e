"""Every voucher reaches its owner: by SMS to the number of its transaction.

A voucher issued while the customer stands at the kiosk is printed on the receipt; one
issued by a background session (a PENDING top-up that finally failed, a transaction a
restart resumed) or for a late payment is printed nowhere. So every voucher, once valid, is
sent by SMS to the transaction's number: its code in full (it is the customer's money), its
value, the last day it can be used, the reference and the kiosk's support line.

    issued(rt, ref)      the effect handlers (kiosk/effects.py) call it after a voucher of
                         `ref` was issued or a held one made valid; it only spawns a task,
                         which reads the journal, so nothing is sent before the voucher is
                         journaled and the money step never waits on the gateway
    start(rt)            at start: every active voucher not yet sent (a crash, the gateway
                         down before a stop, vouchers of before SMS was configured) is sent

Each voucher is retried until the gateway accepts it, waiting `retry_first_s`, then twice
as long each time, at most `retry_max_s`. An accepted message is journaled (VoucherSent,
naming the voucher by its VoucherIssued's seq and last four digits, never its code), and
only vouchers without one are sent at the next start. The gateway request carries a
client reference made of the transaction reference and that seq, so a reply lost on the way
(the gateway sent it, the kiosk never heard) is asked for again without a second message.
A message refused for good (an invalid number) is journaled (VoucherSmsRefused) and not
retried; `kiosk voucher resend` sends it again by hand.

Held vouchers (valid only if a PENDING top-up fails) are not sent: the one made valid is.
Log lines name the number masked (0917***4567) and the code by its last four digits.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from . import events as ev
from .catalog import mask_number
from .i18n import N_
from .i18n import load as load_language
from .linebreak import strip_marks
from .money import fmt
from .sms import HttpSmsGateway, SmsRefused, SmsSettings, SmsUnavailable, e164, sms_settings
from .vouchers import pretty

if TYPE_CHECKING:
    from .journal import Journal
    from .runtime import Runtime
    from .sms_sim import SmsGatewaySimulator

log = logging.getLogger("kiosk.sms")

VOUCHER_TEXT = N_("Your top-up voucher {code} is worth {amount}, valid until {expires}. "
                  "Pay with it at any of our kiosks. Ref. {ref}.")
VOUCHER_TEXT_NO_EXPIRY = N_("Your top-up voucher {code} is worth {amount}. "
                            "Pay with it at any of our kiosks. Ref. {ref}.")
HELP_TEXT = N_("Help: {support}")


# ====================================================================== texts
def voucher_text(v: dict[str, Any], *, currency: str, support: str, lang: str = "en") -> str:
    """The SMS of voucher row `v` (Journal.find_vouchers) in language `lang` (English if
    it has no catalog), without the translations' line-break marks (a phone wraps itself)."""
    try:
        gettext: Callable[[str], str] = load_language(lang).gettext
    except FileNotFoundError:
        gettext = str

    def tr(text: str) -> str:
        return strip_marks(gettext(text))

    template = VOUCHER_TEXT if v.get("expires") else VOUCHER_TEXT_NO_EXPIRY
    text = tr(template).format(code=pretty(str(v["code"])),
                               amount=fmt(int(v["amount"]), v.get("currency") or currency),
                               expires=v.get("expires") or "", ref=v["ref"])
    if support:
        text += " " + tr(HELP_TEXT).format(support=support)
    return text


def language(settings: Any, conf: SmsSettings, v: dict[str, Any] | None = None) -> str:
    """The language of a voucher's SMS: the customer's (the voucher row's `lang`, once the
    journal has it), else [sms] language, else the kiosk's default language."""
    customer = (v or {}).get("lang")
    if isinstance(customer, str) and customer:
        return customer
    return conf.language or getattr(getattr(settings, "ui", None), "default_language", "en")


def support_line(settings: Any, lang: str) -> str:
    """The support line in the SMS's language (Settings.support_in when there is one)."""
    pick = getattr(settings, "support_in", None)
    return str(pick(lang)) if pick else str(settings.support)


def client_ref(ref: str, voucher_seq: int) -> str:
    """The gateway's idempotency key of a voucher's (automatic) message."""
    return f"{ref}.v{voucher_seq}"


def recipient(settings: Any, msisdn: str | None) -> str | None:
    if not msisdn:
        return None
    cat = settings.catalog
    return e164(cat.country_code, cat.trunk_prefix, msisdn)


def expires(journal: Journal, code: str) -> str:
    """The last day voucher `code` can be used, as journaled ("" none or unknown)."""
    if not code:
        return ""
    v = journal.voucher(code)
    return str(v.get("expires") or "") if v else ""


def local_today(settings: Any) -> str:
    return datetime.now(ZoneInfo(settings.timezone)).date().isoformat()


# ====================================================================== one attempt
async def attempt(gateway: HttpSmsGateway, journal: Journal, settings: Any, conf: SmsSettings,
                  v: dict[str, Any], *, by: str = "", ref_key: str | None = None
                  ) -> tuple[str, str]:
    """Send voucher row `v` once and journal what the gateway said. Returns ("sent",
    gateway id), ("refused", reason), ("unavailable", why) or ("no_number", "")."""
    ref, seq, last4 = str(v["ref"]), int(v["voucher_seq"]), str(v["code"])[-4:]
    masked = mask_number(v["msisdn"], "*") if v.get("msisdn") else "no number"
    to = recipient(settings, v.get("msisdn"))
    if to is None:
        log.error("ALERT voucher ...%s of %s: no phone number to send it to (%s)", last4, ref,
                  masked)
        return "no_number", ""
    lang = language(settings, conf, v)
    text = voucher_text(v, currency=journal.currency, support=support_line(settings, lang),
                        lang=lang)
    try:
        gid = await gateway.send(to, text, ref_key or client_ref(ref, seq))
    except SmsRefused as exc:
        journal.append(ref, ev.VoucherSmsRefused(ref, last4, seq, exc.reason, by))
        log.error("ALERT voucher ...%s of %s: the SMS gateway refused the text to %s (%s);"
                  " resend it with `kiosk voucher resend`", last4, ref, masked, exc)
        return "refused", exc.reason
    except SmsUnavailable as exc:
        return "unavailable", str(exc)
    journal.append(ref, ev.VoucherSent(ref, last4, seq, gid, by))
    log.info("voucher ...%s of %s sent by SMS to %s (%s)", last4, ref, masked, gid)
    return "sent", gid


# ====================================================================== in the kiosk
class Delivery:
    """The kiosk's sender: one per runtime (`of`), its gateway and (demo) simulator closed
    when the runtime stops (its tasks are the runtime's)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = weakref.ref(rt)             # the runtime keeps its Delivery, not back
        self.conf = sms_settings(rt.settings)
        self.busy: set[int] = set()             # voucher seqs being delivered now
        self.gateway: HttpSmsGateway | None = None
        self.simulator: SmsGatewaySimulator | None = None
        if not self.conf.enabled:
            return
        base_url = api_key = None
        if self.conf.simulator:
            from .sms_sim import SmsGatewaySimulator
            self.simulator = SmsGatewaySimulator().start()
            base_url, api_key = self.simulator.url, self.simulator.api_key
        try:
            self.gateway = HttpSmsGateway.from_settings(self.conf, base_url, api_key)
        except ValueError:
            if self.simulator is not None:
                self.simulator.stop()
            raise
        rt.spawn(self._hold())

    @property
    def rt(self) -> Runtime:
        rt = self._rt()
        if rt is None:
            raise RuntimeError("the runtime of this SMS delivery is gone")
        return rt

    async def _hold(self) -> None:
        """Lives as long as the runtime's tasks: closes the gateway when they are cancelled."""
        try:
            await asyncio.Event().wait()
        finally:
            if self.gateway is not None:
                await self.gateway.aclose()
            if self.simulator is not None:
                self.simulator.stop()

    def send_ref(self, ref: str) -> None:
        if self.gateway is not None:
            self.rt.spawn(self._send_ref(ref))

    async def _send_ref(self, ref: str) -> None:
        # A task: the step that issued the voucher has journaled it (or failed) by now.
        today = local_today(self.rt.settings)
        for v in self.rt.journal.find_vouchers(ref=ref, status="active"):
            if not v["sms"] and not (v["expires"] and v["expires"] < today):
                self._begin(v)

    def send_unsent(self) -> int:
        vs = self.rt.journal.unsent_vouchers(local_today(self.rt.settings))
        if self.gateway is None:
            if vs:
                log.warning("SMS is off ([sms] driver): %d vouchers were never sent to their"
                            " customers (`kiosk voucher find`)", len(vs))
            return 0
        if vs:
            log.info("sending %d vouchers not sent before", len(vs))
        for v in vs:
            self._begin(v)
        return len(vs)

    def _begin(self, v: dict[str, Any]) -> None:
        seq = v["voucher_seq"]
        if seq is None or seq in self.busy:
            return
        self.busy.add(seq)
        self.rt.spawn(self._deliver(str(v["ref"]), int(seq)))

    def _current(self, ref: str, seq: int) -> dict[str, Any] | None:
        """The voucher as the journal has it now, if it is still to be sent (active, not
        expired, no gateway's answer journaled)."""
        today = local_today(self.rt.settings)
        for v in self.rt.journal.find_vouchers(ref=ref, status="active"):
            if v["voucher_seq"] == seq and not v["sms"]:
                return None if v["expires"] and v["expires"] < today else v
        return None

    async def _deliver(self, ref: str, seq: int) -> None:
        assert self.gateway is not None
        wait = max(0.01, self.conf.retry_first_s)
        try:
            while (v := self._current(ref, seq)) is not None:
                outcome, why = await attempt(self.gateway, self.rt.journal, self.rt.settings,
                                             self.conf, v)
                if outcome != "unavailable":
                    return
                log.warning("voucher ...%s of %s: SMS gateway unavailable (%s); next try in"
                            " %.0f s", str(v["code"])[-4:], ref, why, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, max(self.conf.retry_max_s, wait))
        finally:
            self.busy.discard(seq)


_DELIVERIES: weakref.WeakKeyDictionary[Runtime, Delivery] = weakref.WeakKeyDictionary()


def of(rt: Runtime) -> Delivery:
    d = _DELIVERIES.get(rt)
    if d is None:
        d = _DELIVERIES[rt] = Delivery(rt)
    return d


def issued(rt: Runtime, ref: str) -> None:
    """A voucher of `ref` was issued (or a held one made valid): send it once journaled.
    Never raises into the money step that called it."""
    try:
        of(rt).send_ref(ref)
    except Exception:
        log.exception("ALERT vouchers of %s not queued for SMS", ref)


def start(rt: Runtime) -> None:
    """At the kiosk's start: send every active voucher no gateway has accepted yet."""
    try:
        of(rt).send_unsent()
    except Exception:
        log.exception("ALERT SMS delivery of vouchers not started")
