"""Payments in progress, each an asyncio task whose answer comes back as an event: the QR
order (create, poll, close, watch for a late payment) and the card terminal (authorise,
resolve an unknown outcome, reverse)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from drivers.base import DeviceError

from . import events as ev
from . import paid_amount
from .engine import Phase
from .payments.wallet import WalletStatus

if TYPE_CHECKING:
    from .runtime import Runtime
    from .session import Session

log = logging.getLogger("kiosk.runtime")


async def qr_order(rt: Runtime, session: Session, ref: str, amount: int) -> None:
    try:
        order = await asyncio.wait_for(
            rt.wallet.create_order(ref, amount, rt.settings.qr_expiry_s),
            rt.settings.backend_timeout_s)
    except Exception as exc:    # noqa: BLE001
        log.warning("QR order %s failed: %s", ref, exc)
        session.post(ev.QrOrderFailed(ref, "unavailable"))
        return
    session.post(ev.QrOrderCreated(ref, order.payload, order.expires_at))
    while session.state.txn.ref == ref and session.state.phase is Phase.PAY_QR:
        await asyncio.sleep(rt.QR_POLL_S)
        try:
            async with asyncio.timeout(rt.settings.backend_timeout_s):   # not wait_for: see
                st = await rt.wallet.status(ref)                         # late_credit.check
        except Exception as exc:    # noqa: BLE001 - keep polling until expiry
            log.warning("QR status %s: %s", ref, exc)
            continue
        if st.state == "paid":
            qr_paid(rt, session, ref, st, amount)
            return
        if st.state == "expired":
            session.post(ev.QrExpired(ref))
            return
        if st.state in ("declined", "closed"):
            session.post(ev.QrOrderFailed(ref, "declined"))
            return


async def qr_close(rt: Runtime, session: Session, ref: str) -> None:
    try:
        try:
            st = await asyncio.wait_for(rt.wallet.close(ref),
                                        rt.settings.backend_timeout_s)
        except Exception as exc:    # noqa: BLE001 - unknown: the watch below asks again
            log.error("closing QR order %s failed: %s", ref, exc)
            st = None
        if st is not None and st.state == "paid":
            qr_paid(rt, session, ref, st)
            return
    finally:
        rt.qr_closing.discard(ref)
    rt.spawn(qr_watch_late(rt, session, ref))


def qr_paid(rt: Runtime, session: Session, ref: str, st: WalletStatus,
            ordered: int | None = None) -> None:
    """The gateway says order `ref` is paid: QrPaid for what the kiosk accepts of it
    (kiosk/paid_amount.py: the order's amount at most; less than it is not a payment).
    A payment screen still waiting for it is ended when nothing is accepted."""
    if ordered is None:
        ordered = paid_amount.ordered_amount(rt, ref)
    take = paid_amount.accepted(rt, ref, st.amount, st.provider_ref, ordered)
    if take:
        session.post(ev.QrPaid(ref, take, st.provider_ref))
    elif session.state.txn.ref == ref and session.state.phase is Phase.PAY_QR:
        session.post(ev.QrOrderFailed(ref, "amount_mismatch"))


def rewatch_closed_qr_orders(rt: Runtime) -> None:
    """After a restart: QR orders closed within the watch window, with nothing paid,
    are watched again (the watch that was running died with the process)."""
    since = time.time() - rt.LATE_WATCH_S
    rows = rt.journal.db.execute(
        "SELECT ref FROM transactions WHERE method='qr' AND status='closed' AND paid=0"
        " AND closed_ts > ? AND ref NOT IN (SELECT ref FROM events WHERE"
        " kind='LatePayment' AND ref IS NOT NULL)", (since,)).fetchall()
    for (ref,) in rows:
        rt.spawn(qr_watch_late(rt, rt.main, ref))


async def qr_watch_late(rt: Runtime, session: Session, ref: str) -> None:
    """A payment arriving after cancel or expiry is never lost: it is reported as QrPaid,
    which the engine turns into a LatePayment voucher (or, on the payment screen, a
    credit)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + rt.LATE_WATCH_S
    wait = rt.LATE_POLL_S
    while loop.time() < deadline:
        await asyncio.sleep(wait)
        wait = min(wait * 1.5, 30.0)
        try:
            async with asyncio.timeout(rt.settings.backend_timeout_s):   # a loop: a cancel
                st = await rt.wallet.status(ref)                         # must never be lost
        except Exception:   # noqa: BLE001 - keep watching
            continue
        if st.state == "paid":
            log.warning("QR order %s paid after it was closed", ref)
            qr_paid(rt, session, ref, st)
            return
        if st.state == "declined":
            return


async def card_authorise(rt: Runtime, session: Session, ref: str, amount: int) -> None:
    card = rt.devices["card"]
    try:
        r = await card.authorise(ref, amount)
    except DeviceError as exc:
        log.error("card terminal: %s", exc)
        session.post(ev.CardDeclined(ref, "unavailable"))
        return
    committed = rt.card_committed.pop(ref, None)
    if committed is not None:
        # Booked before it was confirmed to the terminal (the engine counts it paid); the
        # top-up waits for the terminal's completion. A confirmation that came too late is
        # reversed by the terminal itself: then the payment never completes.
        session.post(committed, journaled=True)
        completed = r.approved
        if not completed:
            log.warning("card payment %s: approval confirmed, no completion: asking the"
                        " terminal", ref)
            found = await _ask_terminal(rt, card, ref, committed.amount)
            completed = (found is not None and found.approved
                         and found.receipt_no == committed.receipt_no)
        if completed:
            session.post(ev.CardCompleted(ref))
        else:
            log.error("ALERT card payment %s (receipt %s) approved but not completed at the"
                      " terminal: reversing it, no top-up", ref, committed.receipt_no or "?")
            session.post(ev.CardNotCompleted(ref, r.reason or "not_completed"))
        if r.lines:
            session.post(ev.CardReceipt(ref, tuple(r.lines)))
        return
    if r.reason in ("unknown", "not_completed"):
        # Sent, no final answer: ask the terminal what its last transaction was.
        log.warning("card payment %s: no final answer, asking the terminal", ref)
        found = await _ask_terminal(rt, card, ref, amount)
        if found is not None:
            r = found if found.approved else replace(found, reason="timeout")
        else:
            log.error("ALERT card payment %s: outcome unknown after %d enquiries; the "
                      "terminal reverses an unconfirmed payment, check its journal",
                      ref, rt.CARD_RESOLVE_TRIES)
            r = replace(r, reason="timeout")
    if r.approved:
        session.post(ev.CardApproved(ref, r.amount, r.auth_code, r.trace, r.receipt_no,
                                     r.card_name, r.terminal_id))
        session.post(ev.CardCompleted(ref))
        if r.lines:
            session.post(ev.CardReceipt(ref, tuple(r.lines)))
    else:
        session.post(ev.CardDeclined(ref, r.reason or "declined", r.result_code))


async def _ask_terminal(rt: Runtime, card: Any, ref: str, amount: int) -> Any:
    """The terminal's last transaction, if it can tell within the tries (else None)."""
    for _ in range(rt.CARD_RESOLVE_TRIES):
        await asyncio.sleep(rt.CARD_RESOLVE_WAIT_S)
        try:
            found = await card.last_result(ref, amount)
        except DeviceError:
            found = None
        if found is not None:
            return found
    return None


async def card_reverse(rt: Runtime, session: Session, ref: str, amount: int,
                        receipt_no: str) -> None:
    ok = False
    for attempt in range(rt.REVERSE_TRIES):
        try:
            r = await rt.devices["card"].reverse(ref, amount, receipt_no)
        except DeviceError as exc:
            log.error("card reversal %s: %s", ref, exc)
            r = None
        if r is not None and (r.approved or r.reason not in ("offline", "unknown")):
            ok = r.approved
            break
        # The terminal is not there or gave no final answer: ask again, never give up
        # the customer's money on a transient fault.
        await asyncio.sleep(rt.REVERSE_WAIT_S * (attempt + 1))
    if not ok:
        log.error("ALERT card reversal of %s (receipt %s) refused: a voucher is issued; "
                  "reverse it at the terminal or refund the customer", ref,
                  receipt_no or "?")
    session.post(ev.CardReversed(ref) if ok else ev.CardReversalFailed(ref, "refused"))

