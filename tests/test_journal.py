"""The SQLite money journal: durable settings, references, closing, rebuilding, vouchers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kiosk import events as ev
from kiosk.config import DEFAULT_CONFIG, load_catalog
from kiosk.engine import Engine, Phase, Policy, Txn
from kiosk.journal import Journal, JournalError

MSISDN = "09171234567"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "journal.sqlite3"


@pytest.fixture
def journal(path: Path):  # type: ignore[no-untyped-def]
    j = Journal(path, "K0001", "PHP")
    yield j
    j.close()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_catalog(DEFAULT_CONFIG.parent / "catalog.toml"),
                  Policy(max_overpay=0, min_note=2000, max_unknown_queries=2))


def cash_txn(amount: int = 4000, product: str = "globe-load-any") -> Txn:
    return Txn(msisdn=MSISDN, operator="globe", product_id=product, amount=amount, method="cash")


def test_durability_pragmas(journal: Journal, path: Path) -> None:
    assert path.exists()
    assert journal.db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    assert journal.db.execute("PRAGMA synchronous").fetchone()[0] == 2      # FULL
    assert journal.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_references_are_unique_and_sequential(journal: Journal) -> None:
    refs = [journal.open_transaction(cash_txn()) for _ in range(3)]
    tag = journal.ref_tag
    assert len(tag) == 4 and tag.isalnum() and tag.isupper() or tag.isdigit()
    assert refs == [f"K0001-{tag}-000001", f"K0001-{tag}-000002", f"K0001-{tag}-000003"]
    rows = journal.transactions(limit=10)
    assert sorted(r.ref for r in rows) == refs
    assert sorted(r.number for r in rows) == [1, 2, 3]
    row = journal.transaction(refs[1])
    assert row is not None
    assert (row.status, row.method, row.amount, row.currency, row.paid) == (
        "open", "cash", 4000, "PHP", 0)
    # The reference is journaled in the same write that opened the transaction.
    assert [e.kind for e in journal.events(refs[1])] == ["ReferenceAllocated"]
    assert journal.events(refs[1])[0].record() == ev.ReferenceAllocated(refs[1])


def test_two_connections_never_share_a_reference(path: Path) -> None:
    a, b = Journal(path), Journal(path)
    try:
        refs = [(a if i % 2 else b).open_transaction(cash_txn()) for i in range(6)]
    finally:
        a.close()
        b.close()
    assert refs == [f"K0001-{a.ref_tag}-{n:06d}" for n in range(1, 7)]


def test_data_survives_close_and_reopen(path: Path) -> None:
    j = Journal(path)
    ref = j.open_transaction(cash_txn())
    j.append(ref, ev.NoteEscrowed(2000))
    j.append(ref, ev.NoteCredited(2000))
    j.append(ref, ev.VoucherIssued(ref, "1234567890123452", 2000))
    j.append(ref, ev.CloseTransaction(ref, "cancelled", 2000, 0, 2000, 0))
    j.close()

    # Another process reading the file sees everything.
    raw = sqlite3.connect(str(path))
    assert raw.execute("SELECT status, outcome, paid, voucher FROM transactions").fetchall() == [
        ("closed", "cancelled", 2000, 2000)]
    raw.close()

    j = Journal(path)
    try:
        row = j.transaction(ref)
        assert row is not None and row.status == "closed" and row.closed_ts is not None
        assert (row.paid, row.credited, row.voucher, row.refunded) == (2000, 0, 2000, 0)
        assert [e.kind for e in j.events(ref)] == [
            "ReferenceAllocated", "NoteEscrowed", "NoteCredited", "VoucherIssued",
            "CloseTransaction"]
        assert [v["code"] for v in j.vouchers(ref)] == ["1234567890123452"]
        assert j.unresolved() == []
        # Numbering continues after a restart.
        assert j.open_transaction(cash_txn()) == f"K0001-{j.ref_tag}-000002"
        assert j.db.execute("SELECT value FROM meta WHERE key='kiosk_id'").fetchone()[0] == "K0001"
    finally:
        j.close()


def test_closing_twice_is_refused_and_rolled_back(journal: Journal) -> None:
    ref = journal.open_transaction(cash_txn())
    journal.append(ref, ev.CloseTransaction(ref, "cancelled", 0, 0, 0, 0))
    n = len(journal.events())
    with pytest.raises(JournalError):
        journal.append(ref, ev.CloseTransaction(ref, "success", 4000, 4000, 0, 0))
    assert len(journal.events()) == n                 # the refused record is not in the log
    row = journal.transaction(ref)
    assert row is not None and row.outcome == "cancelled" and row.paid == 0


def test_closing_an_unknown_reference_is_refused(journal: Journal) -> None:
    with pytest.raises(JournalError):
        journal.append("K0001-000099", ev.CloseTransaction("K0001-000099", "success", 1, 1, 0, 0))


def test_payments_update_the_open_row(journal: Journal) -> None:
    cash = journal.open_transaction(cash_txn())
    journal.append(cash, ev.NoteCredited(2000))
    journal.append(cash, ev.NoteCredited(2000))
    qr = journal.open_transaction(Txn(msisdn=MSISDN, operator="globe", product_id="globe-load",
                                      amount=5000, method="qr"))
    journal.append(qr, ev.QrPaid(qr, 5000, "W1"))
    card = journal.open_transaction(Txn(msisdn=MSISDN, operator="globe",
                                        product_id="globe-load", amount=2000, method="card"))
    journal.append(card, ev.CardApproved(card, 2000, "A1", "1"))
    paid = {r.ref: r.paid for r in journal.unresolved()}
    assert paid == {cash: 4000, qr: 5000, card: 2000}


def test_money_after_close_keeps_the_closed_row_balanced(journal: Journal) -> None:
    ref = journal.open_transaction(Txn(msisdn=MSISDN, operator="globe", product_id="globe-load",
                                       amount=5000, method="qr"))
    journal.append(ref, ev.CloseTransaction(ref, "cancelled", 0, 0, 0, 0))
    # The customer's wallet pays after the kiosk gave up: kept as a voucher on the reference.
    journal.append(ref, ev.QrPaid(ref, 5000, "W1"))
    journal.append(ref, ev.LatePayment(ref, 5000, "qr:W1"))
    journal.append(ref, ev.VoucherIssued(ref, "1234567890123452", 5000))
    row = journal.transaction(ref)
    assert row is not None
    assert row.paid == row.credited + row.voucher + row.refunded
    assert [(v["amount"], v["status"]) for v in journal.vouchers(ref)] == [(5000, "active")]
    assert "QrPaid" in [e.kind for e in journal.events(ref)]


def test_rebuild_unfinished_cash_transaction(journal: Journal, engine: Engine) -> None:
    txn = cash_txn(4000)
    ref = journal.open_transaction(txn)
    # What the runtime journals for two 20.00 notes paying 40.00, up to the top-up request.
    for rec in (ev.EnableCash(), ev.NoteEscrowed(2000), ev.StackNote(2000), ev.NoteCredited(2000),
                ev.NoteEscrowed(2000), ev.StackNote(2000), ev.NoteCredited(2000),
                ev.DisableCash(),
                ev.TopUp(ref, MSISDN, "globe", "globe-load-any", 4000)):
        if rec.money:
            journal.append(ref, rec)
    state, pending = journal.rebuild(ref, engine)
    assert state.phase is Phase.FULFILLING
    assert state.txn.ref == ref
    assert state.txn.paid == 4000 and state.txn.notes == (2000, 2000)
    assert state.txn.msisdn == MSISDN and state.txn.amount == 4000
    assert state.escrow == 0
    assert pending == [ev.DisableCash(), ev.TopUp(ref, MSISDN, "globe", "globe-load-any", 4000)]
    row = journal.transaction(ref)
    assert row is not None and row.status == "open" and row.paid == 4000
    assert [r.ref for r in journal.unresolved()] == [ref]


def test_rebuild_partly_paid_and_after_unknown(journal: Journal, engine: Engine) -> None:
    ref = journal.open_transaction(cash_txn(4000))
    journal.append(ref, ev.NoteEscrowed(2000))
    journal.append(ref, ev.NoteCredited(2000))
    state, pending = journal.rebuild(ref, engine)
    assert state.phase is Phase.PAY_CASH and state.txn.paid == 2000 and pending == []

    journal.append(ref, ev.NoteEscrowed(2000))
    state, pending = journal.rebuild(ref, engine)
    assert state.escrow == 2000 and state.txn.paid == 2000
    assert pending == [ev.StackNote(2000)]

    journal.append(ref, ev.NoteCredited(2000))
    journal.append(ref, ev.TopUpUnknown(ref, "TimeoutError"))
    state, pending = journal.rebuild(ref, engine)
    assert state.phase is Phase.FULFILLING and state.txn.unknown_queries == 1
    assert pending == [ev.QueryTopUp(ref, 1)]


def test_rebuild_unknown_reference(journal: Journal, engine: Engine) -> None:
    with pytest.raises(JournalError):
        journal.rebuild("K0001-000404", engine)


def test_vouchers_table(journal: Journal) -> None:
    ref = journal.open_transaction(cash_txn())
    journal.append(ref, ev.VoucherIssued(ref, "1111222233334444", 2000))
    journal.append(ref, ev.VoucherIssued(ref, "5555666677778888", 4000, held=True))
    assert {v["code"]: (v["amount"], v["status"], v["currency"]) for v in journal.vouchers(ref)} \
        == {"1111222233334444": (2000, "active", "PHP"),
            "5555666677778888": (4000, "held", "PHP")}
    journal.append(ref, ev.SetVoucherStatus(ref, "5555666677778888", "void"))
    assert {v["code"]: v["status"] for v in journal.vouchers()}["5555666677778888"] == "void"
    journal.append(ref, ev.SetVoucherStatus(ref, "5555666677778888", "active", amount=500))
    v = {v["code"]: v for v in journal.vouchers(ref)}["5555666677778888"]
    assert (v["amount"], v["status"]) == (500, "active")
    assert journal.vouchers("K0001-000404") == []
    with pytest.raises(sqlite3.IntegrityError):
        journal.append(ref, ev.VoucherIssued(ref, "1111222233334444", 1))     # codes are unique


def test_money_events_and_masked_rows(journal: Journal) -> None:
    ref = journal.open_transaction(cash_txn())
    journal.append(ref, ev.NoteCredited(2000))
    journal.append(ref, ev.ReceiptPrinted(ref))
    kinds = [e.kind for e in journal.iter_money_events()]
    assert kinds == ["ReferenceAllocated", "NoteCredited"]
    row = journal.transaction(ref)
    assert row is not None
    d = row.to_dict()
    assert d["msisdn"] == "0917***4567"
    assert row.to_dict(masked=False)["msisdn"] == MSISDN


def test_the_data_folder_and_the_journal_are_private(tmp_path: Path) -> None:
    """Phone numbers and voucher codes live in the journal: the folder is 0700 and the
    database with its WAL and shared-memory files 0600, whatever the umask."""
    import os
    import stat
    old = os.umask(0o022)
    try:
        folder = tmp_path / "data"
        j = Journal(folder / "journal.sqlite3", "K0001", "PHP")
        ref = j.open_transaction(cash_txn())
        j.append(ref, ev.NoteCredited(2000))
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert modes["journal.sqlite3"] == 0o600 and modes["journal.sqlite3-wal"] == 0o600
        assert set(modes.values()) == {0o600}, modes
        j.close()
        # A journal left readable by an earlier version is made private at open.
        os.chmod(folder, 0o755)
        os.chmod(folder / "journal.sqlite3", 0o644)
        Journal(folder / "journal.sqlite3", "K0001", "PHP").close()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "journal.sqlite3").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_shared_folder_is_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import os
    import stat
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)                    # sticky and world-writable, like /tmp
    Journal(shared / "journal.sqlite3", "K0001", "PHP").close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert "is shared" in caplog.text
    assert stat.S_IMODE((shared / "journal.sqlite3").stat().st_mode) == 0o600


def test_a_second_connection_in_the_kiosk_keeps_the_first_ones_locks(path: Path) -> None:
    """The kiosk holds two connections (the loop's and the money gate's). Opening the
    second must not drop the first one's POSIX locks: if it did, a `kiosk report` closing
    its connection in another process would take itself for the last one, checkpoint and
    delete the WAL under the running kiosk, and the money written after that is lost."""
    import subprocess
    import sys
    loop = Journal(path, "K0001", "PHP")
    gate = Journal(path, "K0001", "PHP", any_thread=True)
    loop.db.execute("PRAGMA wal_autocheckpoint=0")      # keep everything in the WAL
    ref = loop.open_transaction(cash_txn())
    loop.append(ref, ev.NoteCredited(2000))
    wal = Path(f"{path}-wal")
    assert wal.exists() and wal.stat().st_size > 0
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
                    " c.execute('SELECT COUNT(*) FROM events').fetchall(); c.close()", str(path)],
                   check=True)
    assert wal.exists(), "another process deleted the WAL of a journal still open here"
    gate.enter(None, ev.NoteCredited(5000, key="1:7"))
    loop.append(ref, ev.NoteCredited(10000))
    loop.close()
    gate.close()
    reopened = Journal(path, "K0001", "PHP")
    try:
        assert reopened.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        values = [r.data.get("value") for r in reopened.events(ref) if r.kind == "NoteCredited"]
        assert values == [2000, 10000]
    finally:
        reopened.close()
