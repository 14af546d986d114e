"""The recovery policy: what to do first for a transaction a restart found unfinished.

A pure function of the journal (its rebuilt state and the effects its last event asked
for); the runtime performs the answer in a background session.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import events as ev
from .engine import Phase, State

# Effects a restart carries out as they were asked (journal first, then perform).
CARRIED = (ev.QueryTopUp, ev.IssueVoucher, ev.ReverseCard, ev.CloseTransaction,
           ev.SetVoucherStatus)


@dataclass(frozen=True)
class Resume:
    state: State                     # the rebuilt state, as the background session starts
    carry: tuple[ev.Record, ...]     # effects asked for before the crash: carry them out,
                                     # in order (until one of them moves the state on)
    first: tuple[ev.Record, ...]     # then post these events


def resume(state: State, pending: list[ev.Record], note_pending: bool) -> Resume:
    """`note_pending`: the acceptor was told to stack this transaction's note in escrow and
    the journal has no outcome for it; the acceptor's start-up (or the note verdict timer)
    will deliver one, so the escrow is kept and a cancel waits for it."""
    if state.escrow and not note_pending:
        # A note in escrow that was never told to stack is the acceptor's to give back.
        state = replace(state, escrow=0, escrow_key="")
    ref = state.txn.ref or ""
    first: list[ev.Record] = []
    carry: list[ev.Record] = []
    for eff in pending:
        if isinstance(eff, ev.TopUp):
            first.append(ev.TopUpUnknown(ref, "restart"))        # ask before any retry
        elif isinstance(eff, CARRIED):
            # Every one the last event asked for: a PENDING top-up that failed asked to
            # make its voucher valid AND to close; carrying only the first left it open.
            carry.append(eff)
    if carry:
        return Resume(state, tuple(carry), tuple(first))
    if not first and state.phase is Phase.PAY_CARD and state.txn.paid:
        # Approved and booked, with no completion and no reversal journaled: whatever was
        # asked before the restart is lost; reverse it (the terminal answers "already
        # reversed" if it did so itself) rather than top up.
        t = state.txn
        return Resume(state, (ev.ReverseCard(ref, t.paid, t.card_receipt_no),), ())
    if not first:
        first = list(_leave(state, ref))
    return Resume(state, (), tuple(first))


def _leave(s: State, ref: str) -> tuple[ev.Record, ...]:
    """The customer is gone: how the payment screen they left ends."""
    if s.phase in (Phase.PAY_CASH, Phase.PAY_VOUCHER):
        return (ev.Timeout(),)
    if s.phase is Phase.PAY_QR:
        return (ev.Cancel(),)
    if s.phase is Phase.PAY_CARD:
        return (ev.CardDeclined(ref, "restart"),)
    if s.phase in (Phase.FULFILLING, Phase.RESULT):
        return (ev.TopUpUnknown(ref, "restart"),)
    return ()
