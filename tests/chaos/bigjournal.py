"""A journal of many closed transactions, written fast: the same records a kiosk journals
for a cash, card or QR top-up (as `kiosk run --headless` writes them), entered through
kiosk.journal.Journal's own insert in ONE SQL transaction instead of one sync per record.

Cash: three 20.00 notes for a 50.00 load, 10.00 change as a voucher; card and QR: 50.00.
Every note, card approval and wallet payment has its own fact key (generation epoch
"gen00000", terminal id "99999999", provider refs "GEN...") so nothing clashes with what
the simulators of a test produce afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

from kiosk import events as ev
from kiosk.journal import Journal


def build(path: Path, n: int, kiosk_id: str = "K0001", currency: str = "PHP") -> int:
    """Write `n` closed transactions into the journal at `path` (created); returns the last
    event seq written."""
    j = Journal(path, kiosk_id, currency)
    db = j.db
    now = time.time() - 86400.0
    note = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        for i in range(1, n + 1):
            ref = f"{kiosk_id}-{i:06d}"
            method = ("cash", "cash", "cash", "card", "qr")[i % 5]
            ts = now + i
            paid, voucher = (6000, 1000) if method == "cash" else (5000, 0)
            db.execute(
                "INSERT INTO transactions (ref, number, opened_ts, msisdn, operator, product_id,"
                " amount, currency, method, status, outcome, paid, credited, voucher, refunded,"
                " closed_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'closed', 'success', ?, 5000, ?,"
                " 0, ?)",
                (ref, i, ts, "09171234567", "globe", "globe-load", 5000, currency, method,
                 paid, voucher, ts + 1))
            recs: list[ev.Record] = [ev.ReferenceAllocated(ref)]
            if method == "cash":
                for _ in range(3):
                    note += 1
                    key = f"gen00000:{note}"
                    recs += [ev.NoteEscrowed(2000, key), ev.StackNote(2000, key),
                             ev.NoteCredited(2000, key, ref)]
            elif method == "card":
                rno = f"{i % 10000:04d}"
                recs += [ev.AuthoriseCard(ref, 5000),
                         ev.CardApproved(ref, 5000, "123456", f"{i:06d}", rno, "Mastercard",
                                         f"9{i:07d}"),
                         ev.CardReceipt(ref, ("GENERATED", f"RECEIPT {rno}"))]
            else:
                recs += [ev.CreateQrOrder(ref, 5000),
                         ev.QrOrderCreated(ref, "000201", ts + 120),
                         ev.QrPaid(ref, 5000, f"GEN{i:09d}")]
            recs += [ev.TopUp(ref, "09171234567", "globe", "globe-load", 5000),
                     ev.TopUpSucceeded(ref, f"GENOP{i}")]
            if voucher:
                code = f"9{i:015d}"
                recs += [ev.IssueVoucher(ref, voucher, "change"),
                         ev.VoucherIssued(ref, code, voucher, False, "2099-12-31")]
                db.execute("INSERT INTO vouchers (code, ref, amount, currency, status, issued_ts,"
                           " expires) VALUES (?, ?, ?, ?, 'active', ?, '2099-12-31')",
                           (code, ref, voucher, currency, ts))
            recs.append(ev.CloseTransaction(ref, "success", paid, 5000, voucher, 0))
            for rec in recs:
                j._insert_event(ts, ref, rec)
        last = int(db.execute("SELECT MAX(seq) FROM events").fetchone()[0])
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    finally:
        j.close()
    return last
