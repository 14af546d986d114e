"""Cash reconciliation and X/Z reports, on real journals written the way the shell writes.

`Kiosk` below appends, through the real `Journal`, the records `runtime.Session` journals
for each flow (the money event, then the engine's money effects, in that order: a note is
NoteEscrowed, StackNote, NoteCredited; a note with no open transaction is NoteCredited then
OrphanNote; a late wallet payment is QrPaid, LatePayment, VoucherIssued ...), and keeps
its own books of what physically happened, which the reports must reproduce.

`Kiosk(journal, keyed=True)` writes notes the way the money gate does (each note named by
the acceptor: the journal books it to the transaction whose StackNote named it, or to
nobody; a jam is NoteInDoubt); `keyed=False` writes them as journals before keys did
(NoteCredited then OrphanNote for the same note, CashFault.in_doubt). Both must give the
same figures. A note in doubt is always listed as a discrepancy, for the cash count.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import events as ev
from kiosk import reports, vouchers
from kiosk.config import DEFAULT_CONFIG, load_catalog
from kiosk.engine import Engine, Policy, State, Txn
from kiosk.journal import Journal
from kiosk.reports import Count, Group, OutcomeGroup

MSISDN = "09171234567"
CATALOG = load_catalog(DEFAULT_CONFIG.parent / "catalog.toml")


@dataclass(frozen=True)
class _VoucherRedeemed(ev.Record):
    """A voucher used as payment, for an events module that does not have it yet (the
    journal stores records by their kind name: "VoucherRedeemed")."""
    money = True
    ref: str
    code: str
    amount: int

    @classmethod
    def kind(cls) -> str:
        return "VoucherRedeemed"


VoucherRedeemed = getattr(ev, "VoucherRedeemed", _VoucherRedeemed)


class Kiosk:
    """Journals flows shaped like the engine's, and keeps the physical books."""

    def __init__(self, journal: Journal, keyed: bool = False) -> None:
        self.j = journal
        self.keyed = keyed
        self._keys = itertools.count(1)
        self._receipts = itertools.count(1)     # a terminal's receipt number: one per sale
        self.stacked: list[int] = []        # every note that went into a cash box
        self.box: list[int] = []            # notes in the box in the kiosk now
        self.box_out = False
        self.qr = 0                         # wallet payments (distinct)
        self.card = 0
        self.reversed = 0
        self.credited = 0
        self.late = 0
        self.pending: list[tuple[str, str, int, int]] = []   # ref, held code, paid, amount
        self._codes = itertools.count(1000_0000_0000_0001)
        self._pay = itertools.count(1)
        self.last_ref: str | None = None

    def code(self) -> str:
        return str(next(self._codes))

    def key(self) -> str:
        """The acceptor's name for the next note ("" in a journal from before keys)."""
        return f"e1:{next(self._keys)}" if self.keyed else ""

    def open(self, method: str, amount: int, product: str = "globe-load",
             operator: str = "globe") -> str:
        ref = self.j.open_transaction(Txn(msisdn=MSISDN, operator=operator, product_id=product,
                                          amount=amount, method=method))
        self.last_ref = ref
        return ref

    def a(self, ref: str | None, rec: ev.Record) -> None:
        self.j.append(ref, rec)

    def repeat(self, ref: str, paid: ev.QrPaid, amount: int, pay: str) -> None:
        """A wallet payment reported again. The journal enters a money fact once and the
        session does not step a repeat; a journal from before keys has the repeat and the
        engine's LatePayment for it (no voucher: the shell saw the payment before)."""
        if self.j.enter(ref, paid).new:
            self.a(ref, ev.LatePayment(ref, amount, f"qr:{pay}"))

    # ------------------------------------------------------------------ cash
    def note(self, ref: str | None, v: int) -> None:
        """A note escrowed, stacked on the engine's order, credited (vend valid)."""
        k = self.key()
        self.a(ref, ev.NoteEscrowed(v, k))
        self.a(ref, ev.StackNote(v, k))
        self.a(ref, ev.NoteCredited(v, k))
        self.stacked.append(v)
        self.box.append(v)

    def _close(self, ref: str, outcome: str, paid: int, credited: int, voucher: int,
               refunded: int) -> None:
        self.a(ref, ev.CloseTransaction(ref, outcome, paid, credited, voucher, refunded))
        self.credited += credited

    def _voucher(self, ref: str, amount: int, reason: str) -> None:
        self.a(ref, ev.IssueVoucher(ref, amount, reason))
        self.a(ref, ev.VoucherIssued(ref, self.code(), amount))

    def _topup(self, ref: str, amount: int, product: str = "globe-load") -> None:
        self.a(ref, ev.TopUp(ref, MSISDN, "globe", product, amount))

    def _finish(self, ref: str, paid: int, amount: int, result: str) -> None:
        """After the top-up was asked: success (change as a voucher), failure, pending."""
        if result == "success":
            self.a(ref, ev.TopUpSucceeded(ref, "OP1"))
            if paid > amount:
                self._voucher(ref, paid - amount, "change")
            self._close(ref, "success", paid, amount, paid - amount, 0)
        elif result == "failed":
            self.a(ref, ev.TopUpFailed(ref, "backend.rejected"))
            self._voucher(ref, paid, "backend.rejected")
            self._close(ref, "failed_voucher", paid, 0, paid, 0)
        else:                                   # pending: a held voucher, left open
            for n in (1, 2):
                self.a(ref, ev.TopUpUnknown(ref, "timeout"))
                self.a(ref, ev.QueryTopUp(ref, n))
            self.a(ref, ev.TopUpUnknown(ref, "timeout"))
            self.a(ref, ev.IssueVoucher(ref, paid, "pending", held=True))
            code = self.code()
            self.a(ref, ev.VoucherIssued(ref, code, paid, held=True))
            self.pending.append((ref, code, paid, amount))

    def cash(self, amount: int, notes: list[int], result: str = "success",
             product: str = "globe-load") -> str:
        """Pay with notes until paid >= amount, then the top-up (or cancel partway)."""
        ref = self.open("cash", amount, product)
        paid = 0
        for v in notes:
            self.note(ref, v)
            paid += v
            if paid >= amount:
                break
        if paid < amount or result == "cancel":
            if paid == 0:
                self._close(ref, "cancelled", 0, 0, 0, 0)
                return ref
            self.a(ref, ev.Cancel())
            self._voucher(ref, paid, "cancelled")
            self._close(ref, "cancelled", paid, 0, paid, 0)
            return ref
        self._topup(ref, amount, product)
        self._finish(ref, paid, amount, result)
        return ref

    def cash_fault(self, amount: int, before: list[int], in_doubt: int) -> str:
        """The acceptor jams while stacking a note: that note counts as paid (in the box)."""
        ref = self.open("cash", amount)
        paid = 0
        for v in before:
            if paid + v >= amount:
                break
            self.note(ref, v)
            paid += v
        k = self.key()
        self.a(ref, ev.NoteEscrowed(in_doubt, k))
        self.a(ref, ev.StackNote(in_doubt, k))
        if self.keyed:
            self.a(ref, ev.CashFault("acceptor_jam"))
            self.a(ref, ev.NoteInDoubt(in_doubt, k, "acceptor_jam"))
        else:
            self.a(ref, ev.CashFault("acceptor_jam", in_doubt))
        self.stacked.append(in_doubt)
        self.box.append(in_doubt)
        paid += in_doubt
        if paid >= amount:
            self._topup(ref, amount)
            self._finish(ref, paid, amount, "success")
        else:
            self._voucher(ref, paid, "cash_fault")
            self._close(ref, "cancelled", paid, 0, paid, 0)
        return ref

    def orphan(self, v: int, ref: str | None = None) -> None:
        """A note credited with no open transaction (idle, or the result screen of `ref`);
        the engine journals an OrphanNote after it (with keys, a plain log record)."""
        self.a(ref, ev.NoteCredited(v, self.key()))
        self.a(ref, ev.OrphanNote(v))
        self.stacked.append(v)
        self.box.append(v)

    def remove_box(self, by: str = "tech1", delta: int | None = 0) -> None:
        counted = None if delta is None else sum(self.box) + delta
        self.a(None, ev.CashBoxRemoved(by, counted=counted))
        self.box_out = True

    def insert_box(self, by: str = "tech1") -> None:
        self.a(None, ev.CashBoxInserted(by))
        self.box, self.box_out = [], False

    # ------------------------------------------------------------------ QR and card
    def qr_pay(self, amount: int, result: str = "success", repeat: bool = False,
               note_meanwhile: int = 0) -> str:
        ref = self.open("qr", amount)
        pay = f"W{next(self._pay)}"
        self.a(ref, ev.CreateQrOrder(ref, amount))
        self.a(ref, ev.QrOrderCreated(ref, "000201...", 1e10))
        self.a(ref, ev.QrPaid(ref, amount, pay))
        self.qr += amount
        self._topup(ref, amount)
        if note_meanwhile:
            # A note stacked while this QR top-up runs: never this customer's (orphan).
            self.orphan(note_meanwhile, ref)
        if repeat:
            # The order close reports the same payment again: entered once, not stepped.
            self.repeat(ref, ev.QrPaid(ref, amount, pay), amount, pay)
        self._finish(ref, amount, amount, result)
        return ref

    def qr_late(self, amount: int, repeat: bool = False) -> str:
        """Cancelled on screen, then the wallet pays: kept as a voucher (LatePayment)."""
        ref = self.open("qr", amount)
        pay = f"W{next(self._pay)}"
        self.a(ref, ev.CreateQrOrder(ref, amount))
        self.a(ref, ev.QrOrderCreated(ref, "000201...", 1e10))
        self.a(ref, ev.Cancel())
        self.a(ref, ev.CloseQrOrder(ref))
        self._close(ref, "cancelled", 0, 0, 0, 0)
        self.a(ref, ev.QrPaid(ref, amount, pay))
        self.a(ref, ev.LatePayment(ref, amount, f"qr:{pay}"))
        self.a(ref, ev.VoucherIssued(ref, self.code(), amount))
        self.qr += amount
        self.late += amount
        if repeat:
            self.repeat(ref, ev.QrPaid(ref, amount, pay), amount, pay)
        return ref

    def card_pay(self, amount: int, result: str = "success") -> str:
        """Card approved; the top-up succeeds, or fails and the payment is reversed."""
        ref = self.open("card", amount)
        self.a(ref, ev.AuthoriseCard(ref, amount))
        rno = f"R{next(self._receipts)}"
        self.a(ref, ev.CardApproved(ref, amount, "A1", "T1", rno, "Mastercard", "TID1"))
        self.a(ref, ev.CardReceipt(ref, ("APPROVED",)))
        self.card += amount
        self._topup(ref, amount)
        if result == "success":
            self.a(ref, ev.TopUpSucceeded(ref, "OP1"))
            self._close(ref, "success", amount, amount, 0, 0)
        else:
            self.a(ref, ev.TopUpFailed(ref, "backend.rejected"))
            self.a(ref, ev.ReverseCard(ref, amount, rno))
            self.a(ref, ev.CardReversed(ref))
            self.reversed += amount
            self._close(ref, "failed_refunded", amount, 0, 0, amount)
        return ref

    def card_cancelled(self, amount: int) -> str:
        """Cancel pressed while the terminal works; it approves anyway: reversed at once."""
        ref = self.open("card", amount)
        self.a(ref, ev.AuthoriseCard(ref, amount))
        rno = f"R{next(self._receipts)}"
        self.a(ref, ev.CardApproved(ref, amount, "A2", "T2", rno))
        self.a(ref, ev.ReverseCard(ref, amount, rno))
        self.a(ref, ev.CardReversed(ref))
        self.card += amount
        self.reversed += amount
        self._close(ref, "cancelled", amount, 0, 0, amount)
        return ref

    def resolve_pending(self, success: bool) -> None:
        """The oldest PENDING top-up finally answers (a background session)."""
        ref, code, paid, amount = self.pending.pop(0)
        if success:
            self.a(ref, ev.TopUpSucceeded(ref, "OP9"))
            change = paid - amount
            if change:
                self.a(ref, ev.SetVoucherStatus(ref, code, "active", amount=change))
            else:
                self.a(ref, ev.SetVoucherStatus(ref, code, "void"))
            self._close(ref, "success", paid, amount, change, 0)
        else:
            self.a(ref, ev.TopUpFailed(ref, "backend.rejected"))
            self.a(ref, ev.SetVoucherStatus(ref, code, "active", amount=paid))
            self._close(ref, "failed_voucher", paid, 0, paid, 0)


def fast(j: Journal) -> Journal:
    """Tests do not need the power-cut durability (fsync per append): it is only slow here."""
    j.db.execute("PRAGMA synchronous=OFF")
    return j


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = fast(Journal(tmp_path / "journal.sqlite3", "K0007", "PHP"))
    yield j
    j.close()


def real(discrepancies: list[str]) -> list[str]:
    """The discrepancies other than notes in doubt (those are listed for the cash count)."""
    return [d for d in discrepancies if " in doubt on " not in d]


def scenario(k: Kiosk) -> dict[str, str]:
    """One of each flow the brief names."""
    refs = {}
    refs["cash"] = k.cash(7000, [2000, 5000])                  # 2 notes, change 0
    refs["change"] = k.cash(4000, [2000, 5000])                # paid 7000, change voucher 3000
    refs["qr"] = k.qr_pay(5000)
    refs["card_fail"] = k.card_pay(10000, "failed")            # approved, reversed
    refs["cash_fail"] = k.cash(2000, [2000], "failed")         # failed, voucher
    k.orphan(10000)                                            # idle: no transaction
    refs["fault"] = k.cash_fault(5000, [2000], in_doubt=5000)  # jam: 5000 in doubt, paid 7000
    refs["late"] = k.qr_late(3000)
    return refs


# ====================================================================== X report
@pytest.mark.parametrize("keyed", [False, True], ids=["before-keys", "keyed"])
def test_x_report_figures(journal: Journal, keyed: bool) -> None:
    k = Kiosk(journal, keyed)
    refs = scenario(k)
    rep = reports.x_report(journal, now=1_900_000_000.0, catalog=CATALOG)

    (in_doubt,) = rep.discrepancies                  # the jam's note, for the cash count
    assert in_doubt.startswith(f"note of PHP 50.00 in doubt on {refs['fault']} (acceptor_jam")
    assert (rep.kind, rep.number, rep.kiosk_id, rep.currency) == ("X", 1, "K0007", "PHP")
    assert rep.from_seq == 0 and rep.to_seq == len(journal.events())
    assert rep.to_ts == 1_900_000_000.0 and rep.closed_by is None and not rep.closed
    # Cash: 2000+5000, 2000+5000, 2000, orphan 10000, 2000 + 5000 in doubt.
    assert rep.cash.notes == {2000: 4, 5000: 3, 10000: 1}
    assert (rep.cash.count, rep.cash.total) == (8, 33000) == (len(k.stacked), sum(k.stacked))
    assert rep.cash.orphan == Count(1, 10000)
    assert rep.cash.in_doubt == Count(1, 5000)
    assert rep.cash.to_transactions == Count(7, 23000)
    assert rep.qr == Count(2, 8000)                              # one on time, one late
    assert rep.card_approved == Count(1, 10000)
    assert rep.card_reversed == Count(1, 10000)
    assert rep.card_reversal_failed == Count()
    assert rep.late_payments == Count(1, 3000)
    assert rep.money_in == 33000 + 8000
    # Vouchers: change 3000, failed 2000, fault change 2000, late 3000.
    assert rep.vouchers.issued == Count(4, 10000)
    assert rep.vouchers.held == Count() and rep.vouchers.redeemed == Count()
    t = rep.topups
    assert (t.count, t.credited) == (4, 7000 + 4000 + 5000 + 5000)
    assert t.by_outcome == (
        OutcomeGroup("cancelled", 1, 0, 0, 0, 0),
        OutcomeGroup("failed_refunded", 1, 10000, 0, 0, 10000),
        OutcomeGroup("failed_voucher", 1, 2000, 0, 2000, 0),
        OutcomeGroup("success", 4, 7000 + 7000 + 5000 + 7000, 21000, 5000, 0))
    assert t.by_operator == (Group("globe", 4, 21000),)
    assert t.by_product == (Group("globe-load", 4, 21000),)
    assert t.by_kind == (Group("airtime", 4, 21000),)
    assert (rep.transactions.opened, rep.transactions.closed) == (7, 7)
    assert rep.transactions.open_refs == ()
    assert rep.cash_box.total == 33000 and rep.cash_box.notes == rep.cash.notes
    assert not rep.cash_box.removed_pending and rep.box_events == ()
    assert set(refs.values()) == {r.ref for r in journal.transactions(limit=100)}


def test_x_report_changes_nothing(journal: Journal, tmp_path: Path) -> None:
    scenario(Kiosk(journal))
    events = len(journal.events())
    a = reports.x_report(journal, now=100.0)
    b = reports.x_report(journal, now=100.0)
    assert a == b and a.to_dict() == b.to_dict()
    assert len(journal.events()) == events
    # Not even a period row (the ledger's tables are created when the journal is opened).
    assert journal.db.execute("SELECT COUNT(*) FROM report_periods").fetchone()[0] == 0
    assert journal.db.execute("SELECT COUNT(*) FROM period_totals").fetchone()[0] == 0
    assert reports.history(journal, 10) == [] and reports.report(journal, 1) is None
    assert not journal.db.in_transaction


def test_report_never_shows_phone_numbers(journal: Journal) -> None:
    scenario(Kiosk(journal))
    rep = reports.x_report(journal)
    text = json.dumps(rep.to_dict()) + reports.format_report(rep)
    assert MSISDN not in text and "1234567" not in text and "msisdn" not in text


# ====================================================================== Z report
def test_z_closes_the_period_and_the_next_x_starts_at_zero(journal: Journal) -> None:
    k = Kiosk(journal)
    scenario(k)
    x = reports.x_report(journal, now=1000.0)
    z1 = reports.z_report(journal, "manager1", now=1000.0)
    assert (z1.kind, z1.number, z1.closed_by) == ("Z", 1, "manager1") and z1.closed
    # The Z has the X's figures.
    assert {**z1.to_dict(), "kind": "X", "closed_by": None} == x.to_dict()

    after = reports.x_report(journal, now=1100.0)
    assert (after.number, after.from_seq, after.to_seq) == (2, z1.to_seq, z1.to_seq)
    assert after.from_ts == 1000.0
    assert after.cash.total == 0 and after.cash.notes == {} and after.qr == Count()
    assert after.card_approved == Count() and after.vouchers.issued == Count()
    assert after.topups.by_outcome == () and after.transactions.closed == 0
    # The box is not a period counter: its notes stay until it is emptied.
    assert after.cash_box.total == sum(k.stacked) == z1.cash_box.total

    ref = k.cash(2000, [2000])
    z2 = reports.z_report(journal, "manager2", now=2000.0)
    assert (z2.number, z2.from_seq, z2.from_ts) == (2, z1.to_seq, 1000.0)
    assert z2.cash.notes == {2000: 1} and z2.transactions.closed == 1
    assert z2.discrepancies == []
    hist = reports.history(journal, 10)
    assert [h.number for h in hist] == [2, 1]
    assert hist == [z2, z1]                                  # stored and read back exactly
    assert reports.report(journal, 1) == z1 and reports.report(journal, 3) is None
    assert reports.history(journal, 1) == [z2]
    # Stored Z reports still agree with the journal.
    assert reports.check(z1, journal) == [] and reports.check(z2, journal) == []
    # The periods cover the journal with no gap and no overlap.
    rows = journal.db.execute("SELECT number, opened_seq, closed_seq, by FROM report_periods"
                              " ORDER BY number").fetchall()
    assert [tuple(r) for r in rows] == [(1, 0, z1.to_seq, "manager1"),
                                        (2, z1.to_seq, z2.to_seq, "manager2")]
    assert journal.transaction(ref) is not None


def test_z_on_an_empty_period_is_allowed(journal: Journal) -> None:
    z1 = reports.z_report(journal, "tech1", now=10.0)
    assert (z1.number, z1.from_seq, z1.to_seq) == (1, 0, 0)
    assert z1.cash.total == 0 and z1.discrepancies == [] and z1.from_ts is None
    z2 = reports.z_report(journal, "tech1", now=20.0)
    assert (z2.number, z2.from_seq, z2.to_seq, z2.from_ts) == (2, 0, 0, 10.0)
    assert "Z REPORT #2" in reports.format_report(z2)
    with pytest.raises(reports.ReportError):
        reports.z_report(journal, "  ")


def test_two_connections_never_share_a_z_number(tmp_path: Path) -> None:
    a = fast(Journal(tmp_path / "j.sqlite3"))
    b = fast(Journal(tmp_path / "j.sqlite3"))
    try:
        Kiosk(a).cash(2000, [2000])
        za = reports.z_report(a, "one")
        Kiosk(b).cash(5000, [5000])
        zb = reports.z_report(b, "two")
        assert (za.number, zb.number) == (1, 2) and zb.from_seq == za.to_seq
        assert (za.cash.total, zb.cash.total) == (2000, 5000)
    finally:
        a.close()
        b.close()


# ====================================================================== the cash box
def test_cash_box_follows_removal_and_insertion(journal: Journal) -> None:
    k = Kiosk(journal)
    assert reports.cash_box(journal).total == 0
    k.cash(7000, [2000, 5000])
    k.orphan(2000)
    box = reports.cash_box(journal)
    assert box.notes == {2000: 2, 5000: 1} and (box.count, box.total) == (3, 9000)
    assert (box.since_seq, box.since_ts, box.removed_pending) == (0, None, False)

    k.remove_box("tech1", delta=-2000)          # the technician counts 2000 less
    box = reports.cash_box(journal)
    assert box.removed_pending and box.removed_by == "tech1" and box.total == 9000
    rep = reports.x_report(journal)
    (removed,) = rep.box_events
    assert (removed.kind, removed.by, removed.expected, removed.counted,
            removed.difference) == ("removed", "tech1", 9000, 7000, -2000)
    assert rep.cash_box.removed_pending
    text = reports.format_report(rep)
    assert "BOX REMOVED" in text and "PHP -20.00" in text and "(short)" in text

    k.insert_box("tech1")
    box = reports.cash_box(journal)
    assert not box.removed_pending and box.total == 0 and box.notes == {}
    assert box.since_seq == len(journal.events()) and box.since_ts is not None
    k.cash(5000, [5000])
    assert reports.cash_box(journal).notes == {5000: 1}
    rep = reports.x_report(journal)
    assert [e.kind for e in rep.box_events] == ["removed", "inserted"]
    assert rep.cash.total == 14000 and rep.cash_box.total == 5000 and rep.discrepancies == []

    # Counted exactly, or not entered.
    k.remove_box("tech2", delta=0)
    k.insert_box("tech2")
    k.remove_box("tech3", delta=None)
    events = reports.x_report(journal).box_events
    assert (events[2].expected, events[2].counted, events[2].difference) == (5000, 5000, 0)
    assert (events[4].expected, events[4].counted, events[4].difference) == (0, None, None)


def test_box_counts_span_z_reports(journal: Journal) -> None:
    """The box is counted from its insertion even when Z reports closed periods since."""
    k = Kiosk(journal)
    k.insert_box()
    k.cash(2000, [2000])
    reports.z_report(journal, "m")
    k.cash(5000, [5000])
    reports.z_report(journal, "m")
    k.remove_box(delta=1000)
    rep = reports.x_report(journal)
    assert rep.cash.total == 0
    assert (rep.box_events[0].expected, rep.box_events[0].difference) == (7000, 1000)
    assert rep.cash_box.total == 7000 and rep.cash_box.removed_pending


def test_orphan_note_is_counted_once(journal: Journal) -> None:
    k = Kiosk(journal)
    ref = k.cash(2000, [2000])
    k.orphan(5000, ref)                        # on the result screen of a closed transaction
    k.orphan(5000)                             # idle
    k.qr_pay(3000, note_meanwhile=10000)       # during an open QR transaction's top-up
    rep = reports.x_report(journal)
    assert rep.discrepancies == []
    assert rep.cash.notes == {2000: 1, 5000: 2, 10000: 1}
    assert rep.cash.orphan == Count(3, 20000)
    assert rep.cash.to_transactions == Count(1, 2000)
    assert reports.cash_box(journal).total == 22000


@pytest.mark.parametrize("keyed", [False, True], ids=["before-keys", "keyed"])
def test_cash_fault_in_doubt_is_in_the_box(journal: Journal, keyed: bool) -> None:
    k = Kiosk(journal, keyed)
    ref = k.cash_fault(10000, [2000], in_doubt=5000)  # paid 7000 < 10000: a voucher
    rep = reports.x_report(journal)
    # The technician is told which note, of how much, for which customer.
    (line,) = rep.discrepancies
    assert "note of PHP 50.00 in doubt on " + ref in line and "acceptor_jam" in line
    assert ("note e1:2" in line) == keyed
    assert "DISCREPANCIES (1)" in reports.format_report(rep)
    assert rep.cash.notes == {2000: 1, 5000: 1} and rep.cash.in_doubt == Count(1, 5000)
    assert rep.vouchers.issued == Count(1, 7000)
    assert reports.cash_box(journal).total == 7000


def test_note_at_power_up_is_shown_not_counted(journal: Journal) -> None:
    k = Kiosk(journal)
    k.cash(2000, [2000])
    k.a(None, ev.NoteAtPowerUp("stacker", 5000))
    k.a(None, ev.NoteAtPowerUp("acceptor", 2000))      # given back: not in the box
    rep = reports.x_report(journal)
    assert rep.cash.total == 2000 and rep.cash.at_power_up == Count(1, 5000)
    assert rep.cash_box.total == 2000 and rep.cash_box.at_power_up == Count(1, 5000)
    k.remove_box(delta=5000)
    (removed,) = reports.x_report(journal).box_events
    assert (removed.difference, removed.power_up_notes) == (5000, 1)
    assert "power-up notes" in reports.format_report(reports.x_report(journal))


def test_box_anomalies_are_discrepancies(journal: Journal) -> None:
    k = Kiosk(journal)
    k.cash(2000, [2000])
    k.insert_box()                             # the full box was never journaled as removed
    k.remove_box()
    k.orphan(5000)                             # a note while no box is in
    rep = reports.x_report(journal)
    assert len(rep.discrepancies) == 2
    assert "no removal journaled" in rep.discrepancies[0]
    assert "while the cash box was out" in rep.discrepancies[1]


# ====================================================================== cross-checks
def test_totals_equal_the_transactions_table(journal: Journal) -> None:
    k = Kiosk(journal)
    scenario(k)
    k.card_cancelled(5000)
    k.qr_pay(2000, repeat=True)
    k.qr_late(1000, repeat=True)
    rep = reports.x_report(journal)
    assert real(rep.discrepancies) == []
    assert reports.check(rep, journal) == []
    closed = journal.transactions("closed", limit=1000)
    assert len(closed) == rep.transactions.closed
    paid_on_time_qr = rep.qr.amount - rep.late_payments.amount
    assert sum(r.paid for r in closed) == (rep.cash.to_transactions.amount + paid_on_time_qr
                                           + rep.card_approved.amount)
    assert sum(r.credited for r in closed) == rep.topups.credited == k.credited
    assert sum(r.refunded for r in closed) == rep.card_reversed.amount == k.reversed
    assert rep.qr.amount == k.qr and rep.late_payments.amount == k.late
    assert rep.card_approved.amount == k.card
    # Every voucher of the vouchers table is in the report.
    assert sum(v["amount"] for v in journal.vouchers()) == rep.vouchers.issued.amount


def test_a_mismatch_is_listed_never_hidden(journal: Journal) -> None:
    k = Kiosk(journal)
    ref = k.cash(7000, [2000, 5000])
    journal.db.execute("UPDATE transactions SET paid = 9000, credited = 9000 WHERE ref=?",
                       (ref,))
    # The transactions table edited behind the journal's back: an X report reads the ledger
    # only (a few rows); the audit (`check`, O(period)) compares every closed row with it.
    rep = reports.x_report(journal)
    problems = reports.check(rep, journal)
    assert any(f"{ref}: paid PHP 90.00 in the transactions table" in d for d in problems)
    assert any("credited in the period" in d for d in problems)

    # A close that does not match its events (a note the journal never saw).
    other = k.open("cash", 4000)
    k.note(other, 2000)
    k.a(other, ev.CloseTransaction(other, "cancelled", 4000, 0, 4000, 0))
    rep = reports.x_report(journal)
    assert any(f"{other}: closed with paid PHP 40.00, its events paid PHP 20.00" in d
               for d in rep.discrepancies)
    assert "DISCREPANCIES" in reports.format_report(rep)


def test_check_finds_an_edited_z(journal: Journal) -> None:
    scenario(Kiosk(journal))
    z = reports.z_report(journal, "m")
    assert reports.check(z, journal) == []
    stored = json.loads(journal.db.execute("SELECT totals FROM report_periods").fetchone()[0])
    stored["cash"]["total"] -= 2000
    journal.db.execute("UPDATE report_periods SET totals=?", (json.dumps(stored),))
    edited = reports.report(journal, 1)
    assert edited is not None
    assert [d.split(":")[0] for d in reports.check(edited, journal)] == ["cash"]


def test_pending_resolved_in_a_later_period(journal: Journal) -> None:
    k = Kiosk(journal)
    pending = k.cash(4000, [5000], "pending")
    z1 = reports.z_report(journal, "m")
    assert z1.transactions.open_refs == (pending,) and z1.vouchers.held == Count(1, 5000)
    assert z1.discrepancies == []
    k.resolve_pending(success=True)                  # change 1000 becomes valid
    z2 = reports.z_report(journal, "m")
    assert z2.discrepancies == [] and z2.transactions.open_refs == ()
    assert z2.vouchers.activated == Count(1, 1000) and z2.cash.total == 0
    assert z2.topups.by_outcome == (OutcomeGroup("success", 1, 5000, 4000, 1000, 0),)
    k.cash(2000, [2000], "pending")
    k.resolve_pending(success=False)
    z3 = reports.z_report(journal, "m")
    assert z3.discrepancies == [] and z3.vouchers.activated == Count(1, 2000)
    k.cash(2000, [2000], "pending")
    k.resolve_pending(success=True)                  # no change: the held voucher is void
    assert reports.x_report(journal).vouchers.voided == Count(1, 2000)


def test_voucher_redeemed_counts_as_paid_by_voucher(journal: Journal) -> None:
    k = Kiosk(journal)
    ref = k.open("voucher", 3000)
    k.a(ref, VoucherRedeemed(ref, "1000000000000001", 3000))
    k.a(ref, ev.TopUp(ref, MSISDN, "globe", "globe-load", 3000))
    k.a(ref, ev.TopUpSucceeded(ref, "OP1"))
    k.a(ref, ev.CloseTransaction(ref, "success", 3000, 3000, 0, 0))
    rep = reports.x_report(journal)
    assert rep.discrepancies == []
    assert rep.vouchers.redeemed == Count(1, 3000) and rep.cash.total == 0
    assert rep.money_in == 0 and rep.topups.credited == 3000


# ====================================================================== printing
def test_format_fits_the_receipt_printer(journal: Journal) -> None:
    k = Kiosk(journal)
    scenario(k)
    k.cash(2000, [2000], "pending")
    k.remove_box(delta=-500)
    x = reports.x_report(journal, catalog=CATALOG)
    text = reports.format_report(x, tz="Asia/Manila")
    lines = text.splitlines()
    assert all(len(line) <= reports.WIDTH for line in lines), [
        line for line in lines if len(line) > reports.WIDTH]
    assert text.isascii()
    assert "X REPORT (not closed)" in text and "PHP 350.00" in text
    assert "PHP 20.00 x 5" in text and k.pending[0][0] in text
    z = reports.z_report(journal, "manager1")
    ztext = reports.format_report(z)
    assert "Z REPORT #1" in ztext and "manager1" in ztext
    assert all(len(line) <= reports.WIDTH for line in ztext.splitlines())
    # Money is never printed as a float.
    assert "330.0 " not in text and "e+" not in text


# ====================================================================== property
FLOWS = ("cash", "cash_change", "cash_failed", "cash_cancel", "cash_pending", "fault",
         "qr", "qr_repeat", "qr_note", "qr_late", "card", "card_failed", "card_cancelled",
         "orphan", "orphan_after", "resolve", "remove", "insert", "z")
NOTES = (2000, 5000, 10000, 20000, 50000, 100000)
AMOUNTS = (1500, 2000, 3300, 5000, 9900)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_flows_always_reconcile(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        j = fast(Journal(Path(tmp) / "j.sqlite3"))
        try:
            _random_flows(j, data)
        finally:
            j.close()


def _random_flows(j: Journal, data: st.DataObject) -> None:
    k = Kiosk(j, keyed=data.draw(st.booleans(), label="keyed"))
    zs: list[reports.Report] = []
    steps = data.draw(st.lists(st.sampled_from(FLOWS), max_size=25), label="flows")
    for step in steps:
        amount = data.draw(st.sampled_from(AMOUNTS))
        notes = data.draw(st.lists(st.sampled_from(NOTES), min_size=1, max_size=4))
        cash_ok = not k.box_out                  # without a box, cash stays disabled
        match step:
            case "cash" | "cash_change" if cash_ok:
                k.cash(amount, notes)
            case "cash_failed" if cash_ok:
                k.cash(amount, notes, "failed")
            case "cash_cancel" if cash_ok:
                k.cash(amount, notes, "cancel")
            case "cash_pending" if cash_ok:
                k.cash(amount, notes, "pending")
            case "fault" if cash_ok:
                k.cash_fault(amount, notes[:-1], in_doubt=notes[-1])
            case "qr":
                k.qr_pay(amount, data.draw(st.sampled_from(("success", "failed", "pending"))))
            case "qr_repeat":
                k.qr_pay(amount, repeat=True)
            case "qr_note" if cash_ok:
                k.qr_pay(amount, note_meanwhile=notes[0])
            case "qr_late":
                k.qr_late(amount, repeat=data.draw(st.booleans()))
            case "card":
                k.card_pay(amount)
            case "card_failed":
                k.card_pay(amount, "failed")
            case "card_cancelled":
                k.card_cancelled(amount)
            case "orphan" if cash_ok:
                k.orphan(notes[0])
            case "orphan_after" if cash_ok and k.last_ref:
                k.orphan(notes[0], k.last_ref)
            case "resolve" if k.pending:
                k.resolve_pending(data.draw(st.booleans()))
            case "remove" if not k.box_out:
                k.remove_box(delta=data.draw(st.sampled_from((0, -2000, 5000, None))))
            case "insert" if k.box_out:
                k.insert_box()
            case "z":
                zs.append(reports.z_report(j, "tech1"))
    x = reports.x_report(j)
    periods = zs + [x]
    for rep in periods:
        assert real(rep.discrepancies) == [], rep.discrepancies
        assert reports.check(rep, j) == []
        assert rep.cash.total == sum(v * n for v, n in rep.cash.notes.items())
        assert rep.cash.total == (rep.cash.to_transactions.amount + rep.cash.orphan.amount)
        for e in rep.box_events:
            if e.counted is not None:
                assert e.difference == e.counted - (e.expected or 0)
    # The periods add up to the whole journal, with nothing counted twice.
    assert sum(r.cash.total for r in periods) == sum(k.stacked)
    assert sum(r.cash.count for r in periods) == len(k.stacked)
    assert sum(r.qr.amount for r in periods) == k.qr
    assert sum(r.card_approved.amount for r in periods) == k.card
    assert sum(r.card_reversed.amount for r in periods) == k.reversed
    assert sum(r.late_payments.amount for r in periods) == k.late
    assert sum(r.topups.credited for r in periods) == k.credited
    assert [z.number for z in zs] == list(range(1, len(zs) + 1))
    assert all(b.from_seq == a.to_seq for a, b in zip(periods, periods[1:]))
    # The box: what went in since the last insertion; removed without a new one: pending.
    box = reports.cash_box(j)
    assert box.total == sum(k.box) and box.count == len(k.box)
    assert box.removed_pending == k.box_out
    assert x.cash_box == box
    assert set(x.transactions.open_refs) == {p[0] for p in k.pending}
    # The transactions table agrees with the sums.
    closed = j.transactions("closed", limit=10_000)
    assert sum(r.credited for r in closed) == k.credited
    assert sum(r.refunded for r in closed) == k.reversed


# ====================================================================== the real engine
class EngineShell:
    """The journaling order of `runtime.Session._step`, around the real engine: journal a
    money event (and Cancel/Back/Timeout while paying), step, journal each money effect,
    then perform the ones that answer at once (reference, voucher, late payment). A money
    fact the journal already has (a device or service repeating itself) is not stepped."""

    PAYING = ("pay_cash", "pay_qr", "pay_card")

    def __init__(self, journal: Journal, keyed: bool = False) -> None:
        self.j = journal
        self.keys = itertools.count(1) if keyed else None
        self.engine = Engine(CATALOG, Policy(max_overpay=0, min_note=2000,
                                             max_unknown_queries=2))
        self.s = State()

    def post(self, e: ev.Record, journaled: bool = False) -> None:
        s = self.s
        if not journaled and (e.money or (
                isinstance(e, (ev.Cancel, ev.Back, ev.Timeout)) and s.txn.ref is not None
                and s.phase.value in self.PAYING)):
            entry = self.j.enter(getattr(e, "ref", None) or s.txn.ref, e)
            if not entry.new:
                return
            e = entry.record
        self.s, effects = self.engine.step(s, e)
        for eff in effects:
            if eff.money and not self.j.enter(getattr(eff, "ref", None) or self.s.txn.ref,
                                              eff).new:
                continue
            match eff:
                case ev.AllocateReference():
                    self.post(ev.ReferenceAllocated(self.j.open_transaction(self.s.txn)),
                              journaled=True)
                case ev.IssueVoucher(ref=ref, amount=a, held=held):
                    self.post(ev.VoucherIssued(ref, vouchers.new_code(), a, held))
                case ev.LatePayment(ref=ref, amount=a, source=src):
                    p = src.partition(":")[2]
                    if sum(1 for x in self.j.events(ref) if x.kind == "QrPaid"
                           and x.data["provider_ref"] == p) <= 1:
                        self.j.append(ref, ev.VoucherIssued(ref, vouchers.new_code(), a))
                case _ if type(eff).__name__ == "RedeemVoucher":
                    redeem = getattr(self.j, "redeem_voucher")
                    answer = redeem(eff.ref, eff.code, "2000-01-01")
                    self.post(answer, journaled=True)

    def choose(self, method: str, amount: int) -> str:
        for e in (ev.Start(), ev.NumberEntered(MSISDN), ev.ConfirmNumber(True),
                  ev.SubscriberChecked(MSISDN, "globe", ("globe-load-any",)),
                  ev.ChooseProduct("globe-load-any", amount), ev.ChoosePayment(method)):
            self.post(e)
        assert self.s.txn.ref is not None
        return self.s.txn.ref

    def key(self) -> str:
        return "" if self.keys is None else f"e7:{next(self.keys)}"

    def note(self, v: int) -> None:
        k = self.key()
        self.post(ev.NoteEscrowed(v, k))
        self.post(ev.NoteCredited(v, k))

    def jam(self, v: int) -> None:
        """The acceptor jams while stacking: the note is in doubt, counted as paid."""
        k = self.key()
        self.post(ev.NoteEscrowed(v, k))
        if self.keys is None:
            self.post(ev.CashFault("acceptor_jam", v))
        else:                           # the driver commits the note's outcome first
            self.post(ev.NoteInDoubt(v, k, "acceptor_jam"))
            self.post(ev.CashFault("acceptor_jam"))


@pytest.mark.parametrize("keyed", [False, True], ids=["before-keys", "keyed"])
def test_a_journal_written_by_the_real_engine_reconciles(journal: Journal, keyed: bool) -> None:
    sh = EngineShell(journal, keyed)
    ref = sh.choose("cash", 7000)                 # two notes, success
    sh.note(2000)
    sh.note(5000)
    sh.post(ev.TopUpSucceeded(ref, "OP1"))
    sh.post(ev.NoteCredited(10000, sh.key()))     # on the result screen: an orphan
    sh.post(ev.Done())
    sh.post(ev.NoteCredited(2000, sh.key()))      # idle: an orphan with no reference
    qr = sh.choose("qr", 5000)
    sh.post(ev.QrPaid(qr, 5000, "W1"))
    sh.post(ev.NoteCredited(5000, sh.key()))      # while the QR top-up runs: an orphan
    sh.post(ev.QrPaid(qr, 5000, "W1"))            # the same payment reported again
    sh.post(ev.TopUpSucceeded(qr, "OP2"))
    sh.post(ev.Done())
    card = sh.choose("card", 5000)
    sh.post(ev.CardApproved(card, 5000, "A1", "T1", "R1"))
    sh.post(ev.CardCompleted(card))
    sh.post(ev.TopUpFailed(card, "backend.rejected"))
    sh.post(ev.CardReversed(card))
    sh.post(ev.Done())
    jam = sh.choose("cash", 5000)
    sh.note(2000)
    sh.jam(5000)                                  # in doubt: paid 7000
    sh.post(ev.TopUpSucceeded(jam, "OP3"))
    sh.post(ev.Done())
    sh.post(ev.DeviceStatus("cash", True))
    late = sh.choose("qr", 3000)
    sh.post(ev.Cancel())
    sh.post(ev.QrPaid(late, 3000, "W2"))          # paid after cancel: a voucher
    pending = sh.choose("cash", 2000)
    sh.note(2000)
    for _ in range(3):
        sh.post(ev.TopUpUnknown(pending, "timeout"))

    rep = reports.x_report(journal)
    (line,) = rep.discrepancies                  # the jam's note, for the cash count
    assert line.startswith(f"note of PHP 50.00 in doubt on {jam} (acceptor_jam")
    assert rep.cash.notes == {2000: 4, 5000: 3, 10000: 1}
    assert rep.cash.orphan == Count(3, 17000) and rep.cash.in_doubt == Count(1, 5000)
    assert rep.qr == Count(2, 8000) and rep.late_payments == Count(1, 3000)
    assert rep.card_approved == rep.card_reversed == Count(1, 5000)
    # The late QR payment's voucher; keyed, the jam's 7000 are all topped up (any amount,
    # as for a credited note); before keys (CashFault.in_doubt) 2000 of it was change.
    issued = Count(1, 3000) if keyed else Count(2, 5000)
    assert rep.vouchers.issued == issued and rep.vouchers.held == Count(1, 2000)
    assert rep.transactions.open_refs == (pending,)
    assert reports.cash_box(journal).total == rep.cash.total == 33000
    closed = journal.transactions("closed", limit=100)
    assert sum(r.paid for r in closed) == (rep.cash.to_transactions.amount - 2000  # pending
                                           + rep.qr.amount - rep.late_payments.amount
                                           + rep.card_approved.amount)
    sh.post(ev.TopUpFailed(pending, "backend.rejected"))
    z = reports.z_report(journal, "tech1")
    assert z.discrepancies == [line] and z.vouchers.activated == Count(1, 2000)
    assert z.transactions.open_refs == ()


def test_voucher_payment_through_the_engine(journal: Journal) -> None:
    """A voucher used as payment (and the rest in cash) is paid by voucher, not cash."""
    sh = EngineShell(journal)
    first = sh.choose("cash", 5000)
    sh.note(2000)
    sh.post(ev.Cancel())                          # 2000 becomes a voucher
    (issued,) = journal.vouchers(first)
    sh.post(ev.Done())
    z1 = reports.z_report(journal, "tech1")
    assert z1.vouchers.issued == Count(1, 2000) and z1.discrepancies == []

    ref = sh.choose("voucher", 5000)
    sh.post(ev.VoucherEntered(issued["code"]))
    sh.post(ev.ChoosePayment("cash"))             # the rest in notes, same reference
    sh.note(5000)
    sh.post(ev.TopUpSucceeded(ref, "OP1"))        # paid 7000: change 2000 as a voucher
    rep = reports.x_report(journal)
    assert rep.discrepancies == [], rep.discrepancies
    assert rep.vouchers.redeemed == Count(1, 2000)
    assert rep.cash.total == 5000 and rep.cash.to_transactions == Count(1, 5000)
    assert rep.vouchers.issued == Count(1, 2000)
    row = journal.transaction(ref)
    assert row is not None and (row.method, row.paid, row.credited, row.voucher) == (
        "voucher", 7000, 5000, 2000)
    assert rep.money_in == 5000                   # a voucher is not new money
