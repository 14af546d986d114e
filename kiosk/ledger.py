"""The postings ledger: the journal's money facts as typed money movements.

`postings(rec, ref, asked)` is the one place that says which money fact moves what: a pure
function. Where they are kept (the postings table, running totals, the cash box, the
issues a technician must see) is `kiosk/books.py`, which the journal calls in the same SQL
transaction as each fact, so a posting is durable exactly when its fact is.

Kinds (`amount` in minor units; `denom` = the note's value for notes, else 0; `method` =
the payment means for money in, the outcome for `closed*`, the source for late payments):

  money in, on transaction `ref`:
    cash_in            NoteCredited: a note into the box, credited to `ref`
    note_in_doubt      NoteInDoubt (CashFault.in_doubt before keys): neither credited nor
                       returned; paid for `ref`, counted in the box, flagged for the count
    card_in            CardApproved
    wallet_in          QrPaid (on time or late)
    voucher_redeemed   VoucherRedeemed
  money out of transaction `ref`:
    credited           TopUpSucceeded: the provider topped up what its TopUp asked
    voucher_issued     VoucherIssued valid at once (change, failure, cancel, late payment)
    voucher_activated  SetVoucherStatus active: a held voucher made valid (final value)
    reversed           CardReversed: the card refunded what its ReverseCard asked
  after a transaction closed as failed, when the provider credits it late (LateCredit):
    credited           the late credit (method "late")
    voucher_cancelled  the value of the transaction's unused voucher cancelled by it (the
                       voucher voided, or reduced to the change): less money out
    to_recover         what the customer got back as well (a voucher already redeemed, a
                       card payment reversed): the operator recovers it or writes it off
  memo (not money of a transaction):
    orphan_note        a note into the box credited to nobody (ref None)
    note_at_power_up   in the stacker at power-up, credited to nobody; count only (value 0
                       if unknown); NOT in the box total
    voucher_held       a held voucher (valid only if its PENDING top-up fails)
    voided             a held voucher voided (the top-up succeeded), or an unused one
                       voided by a late credit (its value is in the LateCredit's postings)
    voucher_voided     VoucherVoided: an active voucher voided by a technician (method =
                       its status before); not money of its transaction
    reversal_failed    CardReversalFailed (the amount asked; the money becomes a voucher)
    late_payment       LatePayment: money after the customer left (kept as a voucher)
    opened             ReferenceAllocated (amount 0)
    closed, closed_credited, closed_voucher, closed_refunded
                       what CloseTransaction says: paid and its split (method = outcome)
    cash_box_removed   (amount = what the technician counted, 0 if not entered)
    cash_box_inserted

Conservation: for each closed transaction, once its late money has come in,
    cash_in + note_in_doubt + card_in + wallet_in + voucher_redeemed + to_recover
        = credited + voucher_issued + voucher_activated + reversed - voucher_cancelled
(`imbalance` computes the difference from a transaction's summed postings).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from . import events as ev


class Kind(str, Enum):
    CASH_IN = "cash_in"
    NOTE_IN_DOUBT = "note_in_doubt"
    CARD_IN = "card_in"
    WALLET_IN = "wallet_in"
    VOUCHER_REDEEMED = "voucher_redeemed"
    CREDITED = "credited"
    VOUCHER_ISSUED = "voucher_issued"
    VOUCHER_ACTIVATED = "voucher_activated"
    REVERSED = "reversed"
    ORPHAN_NOTE = "orphan_note"
    NOTE_AT_POWER_UP = "note_at_power_up"
    VOUCHER_HELD = "voucher_held"
    VOIDED = "voided"
    REVERSAL_FAILED = "reversal_failed"
    LATE_PAYMENT = "late_payment"
    OPENED = "opened"
    CLOSED = "closed"
    CLOSED_CREDITED = "closed_credited"
    CLOSED_VOUCHER = "closed_voucher"
    CLOSED_REFUNDED = "closed_refunded"
    CASH_BOX_REMOVED = "cash_box_removed"
    CASH_BOX_INSERTED = "cash_box_inserted"
    VOUCHER_CANCELLED = "voucher_cancelled"
    TO_RECOVER = "to_recover"
    VOUCHER_VOIDED = "voucher_voided"          # technician_void (memo)


K = Kind
MONEY_IN = (K.CASH_IN, K.NOTE_IN_DOUBT, K.CARD_IN, K.WALLET_IN, K.VOUCHER_REDEEMED)
MONEY_OUT = (K.CREDITED, K.VOUCHER_ISSUED, K.VOUCHER_ACTIVATED, K.REVERSED)
NOTES = (K.CASH_IN, K.ORPHAN_NOTE, K.NOTE_IN_DOUBT)      # physically into the cash box


@dataclass(frozen=True)
class Posting:
    kind: Kind
    ref: str | None
    amount: int
    denom: int = 0
    method: str = ""


def postings(rec: ev.Record, ref: str | None, asked: int = 0) -> list[Posting]:
    """The money movements of one journaled record (pure). `ref` is the journal's reference
    column; `asked` is what the request a fact answers asked for (the TopUp's amount for
    TopUpSucceeded, the ReverseCard's for CardReversed/CardReversalFailed, the held
    voucher's value for SetVoucherStatus without an amount)."""
    P = Posting
    match rec:
        case ev.NoteCredited(value=v, key=key, ref=owner):
            to = owner if key else (owner or ref)      # keyed: the gate named the owner
            return [P(K.CASH_IN, to, v, v, "cash") if to else P(K.ORPHAN_NOTE, None, v, v, "cash")]
        case ev.NoteInDoubt(value=v, ref=owner):
            return [P(K.NOTE_IN_DOUBT, owner, v, v, "cash")]
        case ev.CashFault(in_doubt=v) if v > 0:
            return [P(K.NOTE_IN_DOUBT, ref, v, v, "cash")]
        case ev.NoteAtPowerUp(where="stacker", value=v):
            return [P(K.NOTE_AT_POWER_UP, None, v, v)]
        case ev.CardApproved(ref=r, amount=a):
            return [P(K.CARD_IN, r, a, 0, "card")]
        case ev.QrPaid(ref=r, amount=a):
            return [P(K.WALLET_IN, r, a, 0, "qr")]
        case ev.VoucherRedeemed(ref=r, amount=a):
            return [P(K.VOUCHER_REDEEMED, r, a, 0, "voucher")]
        case ev.TopUpSucceeded(ref=r):
            return [P(K.CREDITED, r, asked)]
        case ev.CardReversed(ref=r):
            return [P(K.REVERSED, r, asked, 0, "card")]
        case ev.CardReversalFailed(ref=r):
            return [P(K.REVERSAL_FAILED, r, asked, 0, "card")]
        case ev.VoucherIssued(ref=r, amount=a, held=held):
            return [P(K.VOUCHER_HELD if held else K.VOUCHER_ISSUED, r, a)]
        case ev.SetVoucherStatus(ref=r, status="active", amount=a):
            return [P(K.VOUCHER_ACTIVATED, r, asked if a is None else a)]
        case ev.SetVoucherStatus(ref=r, status="void"):
            return [P(K.VOIDED, r, asked)]
        case ev.LatePayment(ref=r, amount=a, source=src):
            return [P(K.LATE_PAYMENT, r, a, 0, src.partition(":")[0])]
        case ev.ReferenceAllocated(ref=r):
            return [P(K.OPENED, r, 0)]
        case ev.CloseTransaction(ref=r, outcome=o, paid=p, credited=c, voucher=v, refunded=f):
            return [P(K.CLOSED, r, p, 0, o)] + [
                P(k, r, a, 0, o) for k, a in ((K.CLOSED_CREDITED, c), (K.CLOSED_VOUCHER, v),
                                              (K.CLOSED_REFUNDED, f)) if a]
        case ev.CashBoxRemoved(counted=c):
            return [P(K.CASH_BOX_REMOVED, None, c or 0)]
        case ev.CashBoxInserted():
            return [P(K.CASH_BOX_INSERTED, None, 0)]
        case ev.VoucherVoided():
            return technician_void(rec)
        case ev.LateCredit(ref=r, amount=a, cancelled=c, to_recover=owed):
            return [P(K.CREDITED, r, a, 0, "late")] + [
                P(k, r, v, 0, "late") for k, v in ((K.VOUCHER_CANCELLED, c),
                                                   (K.TO_RECOVER, owed)) if v]
    return []


def revalued(rec: ev.SetVoucherStatus, asked: int) -> list[Posting]:
    """A voucher's status set after a LateCredit of its transaction (kiosk/late_credit.py):
    the money moved with the LateCredit (voucher_cancelled); a void is noted (memo), a
    reduction to the change moves nothing more."""
    return [Posting(K.VOIDED, rec.ref, asked)] if rec.status == "void" else []


def imbalance(sums: dict[str, int]) -> int:
    """Money in minus money accounted for, from one transaction's postings summed by kind
    (books.ref_sums): 0 when every unit is accounted for (late payments are their own:
    their money in and their voucher both count)."""
    def total(*kinds: Kind) -> int:
        return sum(sums.get(k.value, 0) for k in kinds)
    return (total(*MONEY_IN, K.TO_RECOVER) - total(*MONEY_OUT)
            + total(K.VOUCHER_CANCELLED))


# Records `post` looks at (everything else is skipped before any SQL).
HANDLED: frozenset[type] = frozenset({
    ev.NoteCredited, ev.NoteReturned, ev.NoteInDoubt, ev.CashFault, ev.NoteAtPowerUp,
    ev.CardApproved, ev.QrPaid, ev.VoucherRedeemed, ev.TopUpSucceeded, ev.TopUpFailed,
    ev.CardReversed, ev.CardReversalFailed, ev.VoucherIssued, ev.SetVoucherStatus,
    ev.LatePayment, ev.ReferenceAllocated, ev.CloseTransaction, ev.CashBoxRemoved,
    ev.CashBoxInserted, ev.OrphanNote, ev.LateCredit,
    ev.VoucherVoided})
HANDLED_NAMES = frozenset(t.__name__ for t in HANDLED)


def technician_void(rec: ev.VoucherVoided) -> list[Posting]:
    """A voucher voided by a technician (`kiosk voucher void`, kiosk/cli_voucher.py): a memo
    of the value that can no longer be redeemed (method = the status it had). It is not
    money of its transaction (that closed with the voucher issued): the voucher liability
    (issued + activated - redeemed) shrinks by it."""
    return [Posting(K.VOUCHER_VOIDED, rec.ref, rec.amount, 0, rec.was)]
