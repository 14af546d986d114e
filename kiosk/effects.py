"""The effect table: how the shell performs each effect the engine asks for.

One small function per effect type; the session has already journaled a money effect
before its function runs (Session.carry_out). Long work (a backend call, a payment, a
print) is spawned as an asyncio task whose answer comes back as an event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from drivers.base import DeviceError

from . import calls_backend as backend
from . import calls_payment as payment
from . import events as ev
from . import receipts, voucher_delivery, vouchers

if TYPE_CHECKING:
    from .runtime import Runtime
    from .session import Session

log = logging.getLogger("kiosk.runtime")

Handler = Callable[["Runtime", "Session", Any], object]


def today(rt: Runtime) -> str:
    return datetime.now(ZoneInfo(rt.settings.timezone)).date().isoformat()


def voucher_expiry(rt: Runtime) -> str:
    """The last day a voucher issued now can be used (local date)."""
    return (date.fromisoformat(today(rt))
            + timedelta(days=rt.settings.voucher_expiry_days)).isoformat()


def _allocate(rt: Runtime, s: Session, eff: ev.AllocateReference) -> None:
    ref = rt.journal.open_transaction(s.state.txn)
    s.post(ev.ReferenceAllocated(ref), journaled=True)


def _redeem(rt: Runtime, s: Session, eff: ev.RedeemVoucher) -> None:
    guard = rt.voucher_guard
    if guard.wait_left() > 0:                   # too many refusals: the journal is not asked
        s.post(ev.VoucherRefused(eff.ref, eff.code, "slow_down"),
               journaled=True)
        return
    answer = rt.journal.redeem_voucher(eff.ref, eff.code, today(rt))
    if isinstance(answer, ev.VoucherRedeemed):
        guard.redeemed()
        log.info("voucher ...%s redeemed on %s: %d", eff.code[-4:], eff.ref, answer.amount)
    elif isinstance(answer, ev.VoucherRefused):
        guard.refused(eff.code, answer.reason)
    s.post(answer, journaled=True)


def _issue(rt: Runtime, s: Session, eff: ev.IssueVoucher) -> None:
    s.post(ev.VoucherIssued(eff.ref, vouchers.new_code(), eff.amount, eff.held,
                            voucher_expiry(rt)))
    # By SMS to the customer's number, once journaled (a task: never in the money step).
    voucher_delivery.issued(rt, eff.ref)


def _late_payment(rt: Runtime, s: Session, eff: ev.LatePayment) -> None:
    # The customer paid after leaving the payment screen (the payment itself was entered
    # once, under its key): the money is kept as a voucher on that reference, for the
    # technician to hand over or refund.
    code = vouchers.new_code()
    log.warning("late payment %s on %s (%s): voucher ...%s", eff.amount, eff.ref, eff.source,
                code[-4:])
    rt.journal.append(eff.ref, ev.VoucherIssued(eff.ref, code, eff.amount,
                                                expires=voucher_expiry(rt)))
    voucher_delivery.issued(rt, eff.ref)        # nobody is at the kiosk for it: by SMS


def _voucher_status(rt: Runtime, s: Session, eff: ev.SetVoucherStatus) -> None:
    """Journaled (the journal write applied it); a held voucher made valid goes by SMS."""
    if eff.status == "active":
        voucher_delivery.issued(rt, eff.ref)


def _close_qr(rt: Runtime, s: Session, eff: ev.CloseQrOrder) -> None:
    rt.qr_closing.add(eff.ref)
    rt.spawn(payment.qr_close(rt, s, eff.ref))


async def _print(rt: Runtime, session: Session, ref: str) -> None:
    st = rt.settings
    rt.receipt = receipts.build(session.state.txn, st.catalog, kiosk_id=st.kiosk_id,
                                site=st.site, tz=st.timezone, now=time.time(),
                                support=st.support_in(receipts.paper_language(
                                    session.state.lang or "en")),
                                lang=session.state.lang or "en",
                                voucher_expires=voucher_delivery.expires(
                                    rt.journal, session.state.txn.voucher_code))
    rt.notify(session)
    try:
        await rt.devices["printer"].print_receipt(rt.receipt.lines, rt.receipt.qr)
    except DeviceError as exc:
        # The top-up stands; the customer gets the receipt on screen (with its QR).
        log.error("ALERT printer: receipt %s not printed: %s", ref, exc)
        session.post(ev.DeviceStatus("printer", False, str(exc)))
        session.post(ev.PrinterFailed(ref, str(exc)))
        return
    session.post(ev.ReceiptPrinted(ref))


HANDLERS: dict[type[ev.Record], Handler] = {
    ev.AllocateReference: _allocate,
    ev.LookupSubscriber: lambda rt, s, e: rt.spawn(backend.lookup(rt, s, e.iccid)),
    ev.CheckSubscriber: lambda rt, s, e: rt.spawn(
        backend.check_subscriber(rt, s, e.msisdn, e.operator, e.chosen)),
    ev.QueryBalance: lambda rt, s, e: rt.spawn(
        backend.balance_after(rt, s, e.ref, e.msisdn, e.operator)),
    ev.EnableCash: lambda rt, s, e: rt.devices["cash"].enable(),
    ev.DisableCash: lambda rt, s, e: rt.devices["cash"].disable(),
    ev.StackNote: lambda rt, s, e: rt.devices["cash"].stack(e.value, e.key),
    ev.ReturnNote: lambda rt, s, e: rt.devices["cash"].return_note(e.value, e.key),
    ev.CreateQrOrder: lambda rt, s, e: rt.spawn(payment.qr_order(rt, s, e.ref, e.amount)),
    ev.CloseQrOrder: _close_qr,
    ev.AuthoriseCard: lambda rt, s, e: rt.spawn(
        payment.card_authorise(rt, s, e.ref, e.amount)),
    ev.AbortCard: lambda rt, s, e: rt.spawn(rt.devices["card"].abort()),
    ev.ReverseCard: lambda rt, s, e: rt.spawn(
        payment.card_reverse(rt, s, e.ref, e.amount, e.receipt_no)),
    ev.TopUp: lambda rt, s, e: rt.spawn(backend.topup(rt, s, e)),
    ev.QueryTopUp: lambda rt, s, e: rt.spawn(backend.query(rt, s, e.ref, e.attempt)),
    ev.IssueVoucher: _issue,
    ev.RedeemVoucher: _redeem,
    ev.PrintReceipt: lambda rt, s, e: rt.spawn(_print(rt, s, e.ref)),
    ev.LatePayment: _late_payment,
    ev.CloseTransaction: lambda rt, s, e: log.info("transaction %s closed: %s", e.ref,
                                                   e.outcome),
    ev.OrphanNote: lambda rt, s, e: log.warning("note of %d credited with no open"
                                                " transaction", e.value),
    ev.SetVoucherStatus: _voucher_status,
}


def perform(rt: Runtime, session: Session, eff: ev.Record) -> None:
    handler = HANDLERS.get(type(eff))
    if handler is None:
        raise TypeError(f"no handler for effect {eff.kind()}")
    handler(rt, session, eff)
