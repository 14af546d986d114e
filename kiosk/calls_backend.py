"""Calls to the top-up provider, each an asyncio task whose answer comes back as an event:
the subscriber look-up and check before money, the balance, the top-up and its status.
A timeout, a dropped connection or a 5xx is TopUpUnknown, never a failure.

"Not found" is not final at once: a provider may commit a top-up it received late (a
queue, a slow operator link), and a failure would give the customer a voucher (or a card
reversal) for a number that is then credited. A look-up answering NOT_FOUND stays
TopUpUnknown("not_found") until `not_found_window_s` (setting, default 900 s) has passed
since the top-up was first sent (its journaled TopUp); the status queries go on with their
back-off (the customer gets the PENDING receipt after max_unknown_queries, a background
session keeps asking). Only after the window is NOT_FOUND the failure
"backend.not_received"; a late credit even after that is reconciled by
kiosk/late_credit.py."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from . import events as ev
from .backend.base import TopUpStatus
from .backend.base import offered as offered_ids
from .catalog import mask_number

if TYPE_CHECKING:
    from .runtime import Runtime
    from .session import Session

log = logging.getLogger("kiosk.runtime")


async def lookup(rt: Runtime, session: Session, iccid: str) -> None:
    try:
        msisdn = await asyncio.wait_for(rt.backend.lookup_subscriber(iccid),
                                        rt.settings.backend_timeout_s)
    except Exception as exc:    # noqa: BLE001 - any failure: the customer types instead
        log.warning("subscriber lookup failed: %s", exc)
        msisdn = None
    if msisdn:
        log.info("SIM identified as %s", mask_number(msisdn, "*"))
        session.post(ev.SubscriberFound(iccid, msisdn))
    else:
        session.post(ev.SubscriberNotFound(iccid))


async def check_subscriber(rt: Runtime, session: Session, msisdn: str, operator: str,
                           chosen: bool = False) -> None:
    """Before any money: the operator as the provider routes the number (unless the
    customer `chosen` it), what it sells this number now, and the balance where the
    operator offers an inquiry. Any failure to ask means payment is not offered
    ("top-up temporarily unavailable")."""
    catalog = rt.settings.catalog
    international = catalog.international(msisdn)
    timeout = rt.settings.backend_timeout_s
    try:
        detected = None if chosen else await asyncio.wait_for(
            rt.backend.detect_operator(international), timeout)
        if detected == "" or (detected is not None and detected not in
                              {o.id for o in catalog.operators}):
            session.post(ev.SubscriberCheckFailed(msisdn, "unknown_operator"))
            return
        if detected and detected != operator:
            log.info("number %s is with %s, not %s (ported)", mask_number(msisdn, "*"),
                     detected, operator)
            operator = detected
        offers = await asyncio.wait_for(rt.backend.offers(operator), timeout)
    except Exception as exc:    # noqa: BLE001 - cannot ask: do not take money
        log.warning("number check failed: %s", exc or type(exc).__name__)
        session.post(ev.SubscriberCheckFailed(msisdn, "unavailable"))
        return
    products = catalog.offers(operator)
    ids = offered_ids(products, offers)
    missing = [p.id for p in products if p.id not in ids]
    if missing:
        log.warning("provider does not sell %s now: not offered", ", ".join(missing))
    found = await balance(rt, international, operator)
    session.post(ev.SubscriberChecked(
        msisdn, operator, ids, found.airtime if found else None,
        found.data_mb if found else None, found.valid_until if found else ""))


async def balance(rt: Runtime, international: str, operator: str) -> Any:
    try:
        if not rt.settings.catalog.operator(operator).has_balance_inquiry:
            return None
        return await asyncio.wait_for(rt.backend.balance(international, operator),
                                      min(rt.settings.backend_timeout_s, 5))
    except Exception as exc:    # noqa: BLE001 - a balance is a courtesy: never blocks a sale
        log.info("balance inquiry failed: %s", exc or type(exc).__name__)
        return None


async def balance_after(rt: Runtime, session: Session, ref: str, msisdn: str,
                         operator: str) -> None:
    b = await balance(rt, rt.settings.catalog.international(msisdn), operator)
    if b is not None:
        session.post(ev.BalanceReported(ref, b.airtime, b.data_mb, b.valid_until))


async def topup(rt: Runtime, session: Session, eff: ev.TopUp) -> None:
    international = rt.settings.catalog.international(eff.msisdn)
    try:
        kind = rt.settings.catalog.product(eff.product_id).kind.value
    except KeyError:
        kind = "airtime"
    try:
        answer = await asyncio.wait_for(
            rt.backend.topup(eff.ref, international, eff.operator, eff.product_id,
                             eff.amount, kind=kind), rt.settings.backend_timeout_s)
    except Exception as exc:    # noqa: BLE001 - timeout, drop, 5xx: never a failure
        log.warning("top-up %s: no final answer (%s)", eff.ref, type(exc).__name__)
        session.post(ev.TopUpUnknown(eff.ref, type(exc).__name__))
        return
    session.post(answer_event(rt, eff.ref, answer))




def answer_event(rt: Runtime, ref: str, answer: Any) -> ev.Record:
    if answer.status is TopUpStatus.SUCCESSFUL:
        return ev.TopUpSucceeded(ref, answer.operator_ref)
    if answer.status is TopUpStatus.FAILED:
        return ev.TopUpFailed(ref, answer.reason or "backend.rejected")
    if answer.status is TopUpStatus.NOT_FOUND:
        return not_found(rt, ref)
    return ev.TopUpUnknown(ref, "status unknown")


def first_sent(rt: Runtime, ref: str) -> float | None:
    """When the top-up of `ref` was first sent: its journaled TopUp (None: never)."""
    row = rt.journal.db.execute("SELECT MIN(ts) FROM events INDEXED BY events_ref"
                                " WHERE ref = ? AND kind = 'TopUp'", (ref,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def not_found(rt: Runtime, ref: str) -> ev.Record:
    """The provider has no top-up `ref`: unknown within the window since it was sent (it
    may still commit it), the failure "backend.not_received" after it (or if it was never
    sent at all)."""
    window = rt.settings.not_found_window_s
    sent = first_sent(rt, ref)
    if sent is not None:
        age = time.time() - sent
        if age < window:
            log.info("top-up %s not found at the provider %.1f s after it was sent: asking"
                     " again (final after %g s)", ref, age, window)
            return ev.TopUpUnknown(ref, "not_found")
    log.warning("top-up %s not found at the provider %s: failed (not received)", ref,
                "and never sent" if sent is None else f"{window:g} s after it was sent")
    return ev.TopUpFailed(ref, "backend.not_received")


async def query(rt: Runtime, session: Session, ref: str, attempt: int) -> None:
    base = rt.settings.query_interval_s
    wait = base * min(2 ** max(attempt - 1, 0), 30) if session.background else base
    await asyncio.sleep(wait)
    try:
        answer = await asyncio.wait_for(rt.backend.status(ref),
                                        rt.settings.backend_timeout_s)
    except Exception as exc:    # noqa: BLE001
        log.warning("status of %s: no answer (%s)", ref, type(exc).__name__)
        session.post(ev.TopUpUnknown(ref, type(exc).__name__))
        return
    session.post(answer_event(rt, ref, answer))

