"""The postings ledger (kiosk/ledger.py): which money fact moves what, and only once.

- the pure rules, fact by fact;
- conservation over postings for every closed transaction of random flows, in journals
  written before keys and with keys: money in = credited + vouchers + card reversed; the
  running totals are the sums of the postings;
- a repeated fact adds nothing; an orphan note is counted once;
- a journal that had no ledger is back-filled at open into the ledger live posting gives;
- a Z report reads without the write lock and closes exactly what it read.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import books, ledger, reports
from kiosk import events as ev
from kiosk.journal import Journal
from kiosk.ledger import Kind as K
from kiosk.ledger import Posting as P
from kiosk.reports import Count
from tests.test_reports import Kiosk, _random_flows, fast, scenario

R = "K0001-000001"
LEDGER_TABLES = ("postings", "totals", "period_totals", "cash_box", "box_state", "box_events",
                 "issues", "ledger_keys")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = fast(Journal(tmp_path / "journal.sqlite3", "K0001", "PHP"))
    yield j
    j.close()


# ====================================================================== the rules
RULES: list[tuple[ev.Record, str | None, int, list[P]]] = [
    # Keyed notes: the gate named the owner (None: an orphan), whatever was on screen.
    (ev.NoteCredited(2000, "a1:1", R), R, 0, [P(K.CASH_IN, R, 2000, 2000, "cash")]),
    (ev.NoteCredited(2000, "a1:2", None), R, 0, [P(K.ORPHAN_NOTE, None, 2000, 2000, "cash")]),
    # Before keys: the journal's reference (an OrphanNote may move it, see below).
    (ev.NoteCredited(2000), R, 0, [P(K.CASH_IN, R, 2000, 2000, "cash")]),
    (ev.NoteCredited(2000), None, 0, [P(K.ORPHAN_NOTE, None, 2000, 2000, "cash")]),
    (ev.NoteReturned(2000, "a1:3", R), R, 0, []),
    (ev.NoteInDoubt(5000, "a1:4", "jam", R), R, 0, [P(K.NOTE_IN_DOUBT, R, 5000, 5000, "cash")]),
    (ev.CashFault("acceptor_jam", 5000), R, 0, [P(K.NOTE_IN_DOUBT, R, 5000, 5000, "cash")]),
    (ev.CashFault("acceptor_jam"), R, 0, []),
    (ev.NoteAtPowerUp("stacker", 5000), None, 0, [P(K.NOTE_AT_POWER_UP, None, 5000, 5000)]),
    (ev.NoteAtPowerUp("stacker"), None, 0, [P(K.NOTE_AT_POWER_UP, None, 0, 0)]),
    (ev.NoteAtPowerUp("acceptor", 5000), None, 0, []),          # handed back
    (ev.OrphanNote(2000), R, 0, []),                             # a log record
    (ev.CardApproved(R, 5000, "A1", "T1", "R9", "Visa", "TID"), R, 0,
     [P(K.CARD_IN, R, 5000, 0, "card")]),
    (ev.QrPaid(R, 5000, "W1"), R, 0, [P(K.WALLET_IN, R, 5000, 0, "qr")]),
    (ev.VoucherRedeemed(R, "1000000000000009", 3000), R, 0,
     [P(K.VOUCHER_REDEEMED, R, 3000, 0, "voucher")]),
    (ev.TopUpSucceeded(R, "OP1"), R, 4000, [P(K.CREDITED, R, 4000)]),
    (ev.TopUpFailed(R, "backend.rejected"), R, 0, []),
    (ev.TopUpUnknown(R, "timeout"), R, 0, []),
    (ev.CardReversed(R), R, 5000, [P(K.REVERSED, R, 5000, 0, "card")]),
    (ev.CardReversalFailed(R, "refused"), R, 5000, [P(K.REVERSAL_FAILED, R, 5000, 0, "card")]),
    (ev.VoucherIssued(R, "c1", 1000), R, 0, [P(K.VOUCHER_ISSUED, R, 1000)]),
    (ev.VoucherIssued(R, "c2", 1000, held=True), R, 0, [P(K.VOUCHER_HELD, R, 1000)]),
    (ev.SetVoucherStatus(R, "c2", "active", 300), R, 1000, [P(K.VOUCHER_ACTIVATED, R, 300)]),
    (ev.SetVoucherStatus(R, "c2", "active"), R, 1000, [P(K.VOUCHER_ACTIVATED, R, 1000)]),
    (ev.SetVoucherStatus(R, "c2", "void"), R, 1000, [P(K.VOIDED, R, 1000)]),
    (ev.LatePayment(R, 3000, "qr:W2"), R, 0, [P(K.LATE_PAYMENT, R, 3000, 0, "qr")]),
    (ev.ReferenceAllocated(R), R, 0, [P(K.OPENED, R, 0)]),
    (ev.CloseTransaction(R, "success", 7000, 5000, 2000, 0), R, 0,
     [P(K.CLOSED, R, 7000, 0, "success"), P(K.CLOSED_CREDITED, R, 5000, 0, "success"),
      P(K.CLOSED_VOUCHER, R, 2000, 0, "success")]),
    (ev.CashBoxRemoved("tech1", 9000), None, 0, [P(K.CASH_BOX_REMOVED, None, 9000)]),
    (ev.CashBoxRemoved("tech1"), None, 0, [P(K.CASH_BOX_REMOVED, None, 0)]),
    (ev.CashBoxInserted("tech1"), None, 0, [P(K.CASH_BOX_INSERTED, None, 0)]),
    # Requests and screens move no money.
    (ev.TopUp(R, "09171234567", "globe", "globe-load", 4000), R, 0, []),
    (ev.ReverseCard(R, 5000, "R9"), R, 0, []),
    (ev.StackNote(2000, "a1:1"), R, 0, []),
    (ev.IssueVoucher(R, 1000, "change"), R, 0, []),
    (ev.Cancel(), R, 0, []),
]


@pytest.mark.parametrize(("rec", "ref", "asked", "expected"), RULES,
                         ids=[f"{i}-{r[0].kind()}" for i, r in enumerate(RULES)])
def test_which_fact_moves_what(rec: ev.Record, ref: str | None, asked: int,
                               expected: list[P]) -> None:
    assert ledger.postings(rec, ref, asked) == expected
    if expected:
        assert type(rec) in ledger.HANDLED
    assert all(isinstance(p.amount, int) for p in expected)


# ====================================================================== conservation
def _unbalanced(j: Journal) -> list[str]:
    """Closed transactions whose postings do not balance: money in != out."""
    bad = []
    for row in j.transactions("closed", limit=1_000_000):
        s = books.ref_sums(j.db, row.ref)
        money_in = sum(s.get(k.value, 0) for k in ledger.MONEY_IN)
        out = sum(s.get(k.value, 0) for k in ledger.MONEY_OUT)
        if money_in != out:
            bad.append(f"{row.ref} ({row.outcome}): in {money_in}, out {out}: {s}")
    return bad


def _nonzero(t: reports.Totals) -> reports.Totals:
    return {k: v for k, v in t.items() if v != (0, 0)}


def _running_totals_are_sums(j: Journal) -> None:
    top = int(j.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
    running = _nonzero(reports._totals(j.db, reports._TOTALS_NOW))
    assert running == _nonzero(reports._range_totals(j.db, 0, top))
    box = {int(d): (int(n), int(a)) for d, n, a in j.db.execute(
        "SELECT denom, count, amount FROM cash_box WHERE count != 0")}
    assert all(a == d * n for d, (n, a) in box.items())


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_conservation_per_closed_transaction(data: st.DataObject) -> None:
    """Random flows (cash, change, failures, pending resolved later, jams, QR on time and
    late, cards approved and reversed, orphans, box changes, Z reports), old and keyed."""
    with tempfile.TemporaryDirectory() as tmp:
        j = fast(Journal(Path(tmp) / "j.sqlite3"))
        try:
            _random_flows(j, data)          # its own report assertions, then ours:
            assert _unbalanced(j) == []
            _running_totals_are_sums(j)
            for row in j.transactions("closed", limit=1_000_000):
                said = books.ref_sums(j.db, row.ref)
                assert said.get("closed", 0) == row.paid       # the close, as journaled
        finally:
            j.close()


@pytest.mark.parametrize("keyed", [False, True], ids=["before-keys", "keyed"])
def test_scenario_balances(journal: Journal, keyed: bool) -> None:
    k = Kiosk(journal, keyed)
    refs = scenario(k)
    assert _unbalanced(journal) == []
    s = books.ref_sums(journal.db, refs["change"])          # 7000 paid for 4000
    assert (s["cash_in"], s["credited"], s["voucher_issued"]) == (7000, 4000, 3000)
    s = books.ref_sums(journal.db, refs["late"])             # closed, then paid: a voucher
    assert (s["closed"], s["wallet_in"], s["voucher_issued"], s["late_payment"]) == (
        0, 3000, 3000, 3000)
    s = books.ref_sums(journal.db, refs["card_fail"])
    assert (s["card_in"], s["reversed"]) == (10000, 10000)


# ====================================================================== once
def _legacy(j: Journal, ref: str | None, rec: ev.Record) -> list[P]:
    """Write `rec` the way a journal from before keys did (no fact key, so a repeat was
    written again) and post it."""
    now = time.time()
    with j._tx() as db:
        cur = db.execute("INSERT INTO events (ts, ref, kind, data) VALUES (?, ?, ?, ?)",
                         (now, ref, rec.kind(), json.dumps(rec.to_dict(), sort_keys=True)))
        return books.post(db, int(cur.lastrowid or 0), now, ref, rec)


def _state(j: Journal) -> tuple[object, ...]:
    q = j.db.execute
    return (q("SELECT COUNT(*) FROM postings").fetchone()[0],
            sorted(map(tuple, q("SELECT * FROM totals"))),
            sorted(map(tuple, q("SELECT * FROM cash_box"))))


def test_a_repeated_fact_adds_nothing(journal: Journal) -> None:
    k = Kiosk(journal, keyed=True)
    qr = k.open("qr", 5000)
    k.a(qr, ev.QrPaid(qr, 5000, "W1"))
    card = k.open("card", 5000)
    k.a(card, ev.CardApproved(card, 5000, "A1", "T1", "0042", "Visa", "TID1"))
    cash = k.open("cash", 9000)
    k.a(cash, ev.StackNote(2000, "e1:1"))
    k.a(cash, ev.NoteCredited(2000, "e1:1"))
    k.a(cash, ev.TopUp(cash, "09171234567", "globe", "globe-load", 2000))
    k.a(cash, ev.TopUpSucceeded(cash, "OP1"))
    k.a(cash, ev.VoucherIssued(cash, "1000000000000001", 700, held=True))
    k.a(cash, ev.SetVoucherStatus(cash, "1000000000000001", "active", amount=700))
    k.a(card, ev.ReverseCard(card, 5000, "0042"))
    k.a(card, ev.CardReversed(card))
    late = k.open("qr", 3000)
    k.a(late, ev.CloseTransaction(late, "cancelled", 0, 0, 0, 0))
    k.a(late, ev.QrPaid(late, 3000, "W2"))
    k.a(late, ev.LatePayment(late, 3000, "qr:W2"))
    before = _state(journal)
    events = len(journal.events())

    # Through the journal: a keyed fact is entered once (nothing written, nothing posted).
    for ref, rec in ((qr, ev.QrPaid(qr, 5000, "W1")),
                     (cash, ev.NoteCredited(2000, "e1:1")),
                     (cash, ev.NoteInDoubt(2000, "e1:1", "restart")),   # the slot is taken
                     (cash, ev.TopUpSucceeded(cash, "OP1"))):
        assert not journal.enter(ref, rec).new
    assert len(journal.events()) == events and _state(journal) == before

    # Written again anyway (journals from before keys have such rows): the ledger adds
    # nothing either, and a late payment named by a repeated report is no money.
    for ref, rec in ((qr, ev.QrPaid(qr, 5000, "W1")),
                     (qr, ev.LatePayment(qr, 5000, "qr:W1")),
                     (card, ev.CardApproved(card, 5000, "A1", "T1", "0042", "Visa", "TID1")),
                     (cash, ev.NoteCredited(2000, "e1:1", cash)),
                     (cash, ev.NoteReturned(2000, "e1:1", cash)),
                     (cash, ev.TopUpSucceeded(cash, "OP1")),
                     (cash, ev.SetVoucherStatus(cash, "1000000000000001", "active", 700)),
                     (card, ev.CardReversed(card)),
                     (late, ev.LatePayment(late, 3000, "qr:W2"))):
        assert _legacy(journal, ref, rec) == [], rec
    assert _state(journal) == before
    repeats = dict(((s, key), n) for s, key, n in journal.db.execute(
        "SELECT source, key, repeats FROM ledger_keys WHERE repeats > 0"))
    assert repeats[("qr", "W1")] == 1 and repeats[("note", "e1:1")] == 2
    # The same receipt number on another sale (the terminal's counter wrapped) is money.
    other = k.open("card", 4000)
    assert _legacy(journal, other, ev.CardApproved(other, 4000, "A2", "T2", "0042", "Visa",
                                                   "TID1")) == [P(K.CARD_IN, other, 4000, 0,
                                                                  "card")]
    rep = reports.x_report(journal)
    assert rep.qr == Count(2, 8000) and rep.late_payments == Count(1, 3000)
    assert rep.card_approved == Count(2, 9000) and rep.cash.total == 2000
    assert rep.vouchers.activated == Count(1, 700)


def test_an_orphan_note_is_counted_once(journal: Journal) -> None:
    keyed, old = Kiosk(journal, keyed=True), Kiosk(journal)
    ref = keyed.cash(2000, [2000])
    keyed.orphan(5000, ref)          # keyed, on the result screen: NoteCredited(ref=None)
    keyed.orphan(10000)              # keyed, idle
    old.orphan(2000, ref)            # before keys, on the result screen: moved by OrphanNote
    old.orphan(5000)                 # before keys, idle
    rep = reports.x_report(journal)
    assert rep.cash.orphan == Count(4, 22000) and rep.cash.to_transactions == Count(1, 2000)
    assert rep.cash.notes == {2000: 2, 5000: 2, 10000: 1} and rep.cash.total == 24000
    assert reports.cash_box(journal).total == 24000
    s = books.ref_sums(journal.db, ref)
    assert s["cash_in"] == 2000                  # +2000 -2000 for the note that was nobody's
    assert journal.db.execute("SELECT COUNT(*) FROM postings WHERE kind='orphan_note'"
                              ).fetchone()[0] == 4
    assert _unbalanced(journal) == []
    # A keyed orphan's OrphanNote never moves the transaction's own keyed note.
    assert journal.db.execute("SELECT COUNT(*) FROM postings WHERE amount < 0").fetchone()[0] == 1


def test_a_note_in_doubt_is_for_the_technician(journal: Journal) -> None:
    k = Kiosk(journal, keyed=True)
    ref = k.cash_fault(9900, [2000], in_doubt=5000)
    k.a(None, ev.NoteInDoubt(2000, "e9:1", "power_loss", None))     # nobody's note
    lines = reports.x_report(journal).discrepancies
    assert lines == [
        (f"note of PHP 50.00 in doubt on {ref} (acceptor_jam, note e1:2): counted as paid and"
         " in the cash box -- check it at the cash count"),
        ("note of PHP 20.00 in doubt on no transaction (power_loss, note e9:1): counted as"
         " paid and in the cash box -- check it at the cash count")]
    assert reports.cash_box(journal).total == 9000


def test_cash_box_removed_reads_one_row(journal: Journal) -> None:
    k = Kiosk(journal)
    assert not books.cash_box_removed(journal.db)
    k.cash(2000, [2000])
    k.remove_box()
    assert books.cash_box_removed(journal.db)
    k.insert_box()
    assert not books.cash_box_removed(journal.db)


# ====================================================================== back-fill
def _dump(j: Journal) -> dict[str, list[tuple[object, ...]]]:
    return {t: sorted(map(tuple, j.db.execute(f"SELECT * FROM {t}"))) for t in LEDGER_TABLES}


def _forget_ledger(j: Journal) -> None:
    """The journal as the version before the ledger left it (report_periods kept)."""
    j.db.executescript("".join(f"DROP TABLE {t};" for t in LEDGER_TABLES)
                       + "DELETE FROM meta WHERE key LIKE 'ledger%';")


def test_backfill_gives_what_live_posting_gave(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.sqlite3"
    j = fast(Journal(path))
    old, keyed = Kiosk(j), Kiosk(j, keyed=True)
    keyed._codes = itertools.count(2000_0000_0000_0001)      # its own voucher codes
    scenario(old)
    z1 = reports.z_report(j, "m1")
    qr = old.qr_pay(2000)
    _legacy(j, qr, ev.QrPaid(qr, 2000, "W1"))                # a repeat, before keys
    _legacy(j, qr, ev.LatePayment(qr, 2000, "qr:W1"))
    old.remove_box(delta=-500)
    old.insert_box()
    z2 = reports.z_report(j, "m2")
    z3 = reports.z_report(j, "m3")                           # an empty period
    scenario(keyed)
    old.cash(2000, [2000], "pending")
    old.resolve_pending(success=True)
    live, x_live = _dump(j), reports.x_report(j, now=5.0)
    _forget_ledger(j)
    j.close()

    monkeypatch.setattr(books, "CHUNK", 7)                  # many chunks, Zs inside them
    j = fast(Journal(path))
    try:
        assert _dump(j) == live
        assert reports.x_report(j, now=5.0) == x_live
        assert [reports.check(z, j) for z in (z1, z2, z3)] == [[], [], []]
        assert j.db.execute("SELECT value FROM meta WHERE key='ledger_backfill'"
                            ).fetchone() is None
    finally:
        j.close()


def test_records_written_during_a_backfill_are_posted_by_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.sqlite3"
    j = fast(Journal(path))
    scenario(Kiosk(j))
    _forget_ledger(j)
    j.close()
    monkeypatch.setattr(books, "backfill_step", lambda db: False)   # opened, not yet run
    j = fast(Journal(path))
    monkeypatch.undo()
    try:
        Kiosk(j).orphan(20000)               # another process writes meanwhile
        assert j.db.execute("SELECT COUNT(*) FROM postings").fetchone()[0] == 0
        while books.backfill_step(j.db):
            pass
        rep = reports.x_report(j)
        assert rep.cash.orphan == Count(2, 30000) and rep.cash.total == 53000
        _running_totals_are_sums(j)
    finally:
        j.close()


# ====================================================================== Z without the lock
def test_a_z_closes_exactly_what_it_read(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.sqlite3"
    a = fast(Journal(path))
    b = fast(Journal(path, busy_timeout_s=0.2))     # would fail fast if the Z held the lock
    try:
        Kiosk(a).cash(2000, [2000])
        make = reports._make
        calls: list[int] = []

        def write_while_reading(*args, **kw):  # type: ignore[no-untyped-def]
            out = make(*args, **kw)
            if not calls:
                calls.append(1)
                b.append(None, ev.NoteCredited(5000, "e5:1"))    # the Z is still reading
            return out

        monkeypatch.setattr(reports, "_make", write_while_reading)
        z = reports.z_report(a, "m")
        monkeypatch.undo()
        assert z.cash.total == 2000 and z.to_seq == a.events()[-2].seq
        x = reports.x_report(a)
        assert (x.from_seq, x.cash.total, x.cash.orphan) == (z.to_seq, 5000, Count(1, 5000))
        assert reports.check(z, a) == [] and reports.check(x, a) == []
    finally:
        a.close()
        b.close()


def test_a_z_made_again_when_another_closed_the_period(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.sqlite3"
    a, b = fast(Journal(path)), fast(Journal(path))
    try:
        Kiosk(a).cash(2000, [2000])
        make = reports._make
        other: list[reports.Report] = []

        def another_z_meanwhile(*args, **kw):  # type: ignore[no-untyped-def]
            out = make(*args, **kw)
            if not other:
                monkeypatch.setattr(reports, "_make", make)
                other.append(reports.z_report(b, "other"))    # closes what a just read
                Kiosk(b).cash(5000, [5000])
            return out

        monkeypatch.setattr(reports, "_make", another_z_meanwhile)
        z = reports.z_report(a, "m")
        assert (other[0].number, z.number) == (1, 2) and z.from_seq == other[0].to_seq
        assert (other[0].cash.total, z.cash.total) == (2000, 5000)
    finally:
        a.close()
        b.close()
