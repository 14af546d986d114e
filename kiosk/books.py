"""The ledger's books in the journal: postings, running totals, the cash box, issues.

`Journal._insert_event` calls `post(db, seq, ts, ref, rec)` for every record it writes,
inside the writer's open SQL transaction. `post` applies the pure rules of
`kiosk/ledger.py` and adds only what the journal knows around a fact (the amount its
request asked, a repeat of a fact already entered), and keeps running totals in the same
write, so periodic queries read a few rows whatever the size of the history
(kiosk/reports.py).

A fact is entered once: keyed facts (`events.fact_key`) are remembered in `ledger_keys`
and a repeat adds nothing (the money gate already refuses repeats; this holds for journals
written before it too). A held voucher changes status once; a late payment counts once.

Orphan notes. With the keyed gate a note credited with ref=None is the orphan; the
OrphanNote the engine journals afterwards is a log record. Journals written before keys
have NoteCredited (no key) then OrphanNote for the same note: the credit was posted to the
reference on screen, so the OrphanNote moves it (a correcting cash_in of -value, counted
-1, and an orphan_note). That legacy rule needs the previous record of the reference, so
it lives in `post`, not in `postings`.

A late credit (LateCredit, kiosk/late_credit.py) carries its own money (credited, the
voucher value it cancels, what is left to recover); the SetVoucherStatus written with it
is keyed apart from the held voucher's one change ("voucher-late") and moves no more
money (`ledger.revalued`). Whether a status change follows a LateCredit is read from the
journal, so a back-fill posts it as it was when written.

An existing journal is back-filled once, at open (`install`), in chunks of `CHUNK`
events, each its own short write; records written meanwhile are posted by the back-fill.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable

from . import events as ev
from .ledger import HANDLED, HANDLED_NAMES, MONEY_IN, NOTES, K, Kind, Posting, postings, revalued

VERSION = "1"
CHUNK = 2000            # events per back-fill write

SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    seq INTEGER NOT NULL, n INTEGER NOT NULL, ts REAL NOT NULL, ref TEXT,
    kind TEXT NOT NULL, amount INTEGER NOT NULL, denom INTEGER NOT NULL DEFAULT 0,
    method TEXT NOT NULL DEFAULT '', PRIMARY KEY (seq, n)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_ref ON postings (ref);
CREATE TABLE IF NOT EXISTS totals (
    kind TEXT NOT NULL, denom INTEGER NOT NULL, dim TEXT NOT NULL,
    count INTEGER NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY (kind, denom, dim)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS period_totals (
    number INTEGER NOT NULL, kind TEXT NOT NULL, denom INTEGER NOT NULL, dim TEXT NOT NULL,
    count INTEGER NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY (number, kind, denom, dim)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS report_periods (number INTEGER PRIMARY KEY,
    opened_seq INTEGER NOT NULL, closed_seq INTEGER NOT NULL, opened_ts REAL,
    closed_ts REAL NOT NULL, by TEXT, totals TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cash_box (
    denom INTEGER PRIMARY KEY, count INTEGER NOT NULL, amount INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS box_state (
    id INTEGER PRIMARY KEY CHECK (id = 1), since_seq INTEGER NOT NULL DEFAULT 0,
    since_ts REAL, removed_seq INTEGER, removed_ts REAL, removed_by TEXT,
    power_up_count INTEGER NOT NULL DEFAULT 0, power_up_amount INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS box_events (
    seq INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, by TEXT NOT NULL,
    counted INTEGER, expected INTEGER, power_up_notes INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS issues (
    seq INTEGER NOT NULL, n INTEGER NOT NULL, code TEXT NOT NULL, ref TEXT,
    a INTEGER NOT NULL DEFAULT 0, b INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '', PRIMARY KEY (seq, n)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_keys (
    source TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
    repeats INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (source, key)) WITHOUT ROWID;
-- The journal's open transactions (Journal.unresolved, reports): partial, only those rows.
CREATE INDEX IF NOT EXISTS transactions_open ON transactions (number) WHERE status = 'open';
"""

# What a discrepancy found while posting says (reports format the amounts a and b).
ISSUES: dict[str, str] = {
    "in_doubt": "note of {a} in doubt on {ref} ({detail}): counted as paid and in the cash"
                " box -- check it at the cash count",
    "box_out": "note of {a} credited at seq {seq} while the cash box was out (removed at"
               " seq {b_raw}): where is it?",
    "box_unremoved": "cash box inserted at seq {seq} by {detail} with no removal journaled:"
                     " the box of {a} was never recorded as taken out",
    "unbalanced": "{ref}: closed with paid {a} != credited + voucher + refunded {b}",
    "close_paid": "{ref}: closed with paid {a}, its events paid {b} ({detail})",
    "close_credited": "{ref}: closed with credited {a}, its top-up credited {b}",
    "close_voucher": "{ref}: closed with voucher {a}, its events issued {b}",
    "close_refunded": "{ref}: closed with refunded {a}, its card reversals {b}",
    "no_request": "{ref}: {detail} at seq {seq} with no request journaled before it:"
                  " counted as {a}",
}


def describe(code: str, seq: int, ref: str | None, a: int, b: int, detail: str,
             money: Callable[[int], str]) -> str:
    return ISSUES[code].format(seq=seq, ref=ref or "no transaction", a=money(a), b=money(b),
                               b_raw=b, detail=detail)


# ====================================================================== writing
def post(db: sqlite3.Connection, seq: int, ts: float, ref: str | None,
         rec: ev.Record) -> list[Posting]:
    """Enter the postings of record `seq` in the caller's open write transaction, with the
    running totals. Returns what was posted ([] for a repeat or a record that moves no
    money). While a back-fill is under way it posts nothing: the back-fill will."""
    if type(rec) not in HANDLED:
        return []
    if db.execute("SELECT 1 FROM meta WHERE key = 'ledger_backfill'").fetchone():
        return []
    return _post(db, seq, ts, ref, rec)


def _post(db: sqlite3.Connection, seq: int, ts: float, ref: str | None,
          rec: ev.Record) -> list[Posting]:
    late = isinstance(rec, ev.SetVoucherStatus) and _after_late_credit(db, rec.ref, seq)
    if not _first(db, seq, rec, late):
        return []
    issues: list[tuple[str, str | None, int, int, str]] = []
    ps = _derive(db, seq, ref, rec, issues, late)
    if ps:
        db.executemany(
            "INSERT INTO postings (seq, n, ts, ref, kind, amount, denom, method)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(seq, n, ts, p.ref, p.kind.value, p.amount, p.denom, p.method)
             for n, p in enumerate(ps)])
        _running(db, seq, ts, rec, ps, issues)
    if issues:
        db.executemany("INSERT INTO issues (seq, n, code, ref, a, b, detail)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(seq, n, *i) for n, i in enumerate(issues)])
    return ps


def _ledger_key(rec: ev.Record, late: bool = False) -> tuple[str, str] | None:
    match rec:
        case ev.StackNote() | ev.ReturnNote():
            return None
        case ev.CardApproved(ref=r):
            src, key = ev.fact_key(rec) or ("card", r)
            return (src, f"{key}|{r}")      # receipt numbers wrap: the same one, another sale
        case ev.LatePayment(source=s):
            return ("late", s)
        case ev.SetVoucherStatus(code=c):
            # A held voucher changes status once; a late credit changes it once more.
            return ("voucher-late" if late else "voucher-status", c)
        case ev.LateCredit(ref=r):
            return ("late-credit", r)
    return ev.fact_key(rec)


def _after_late_credit(db: sqlite3.Connection, ref: str, seq: int) -> bool:
    """Is there a LateCredit of `ref` before `seq`? (From the journal, not the vouchers
    table: a back-fill sees each status change as it was when written.)"""
    return db.execute("SELECT 1 FROM events INDEXED BY events_ref WHERE ref = ? AND seq < ?"
                      " AND kind = 'LateCredit' LIMIT 1", (ref, seq)).fetchone() is not None


def _first(db: sqlite3.Connection, seq: int, rec: ev.Record, late: bool = False) -> bool:
    """Remember a keyed fact; False if it was entered before (its repeat is counted)."""
    fk = _ledger_key(rec, late)
    if fk is None:
        return True
    if db.execute("INSERT OR IGNORE INTO ledger_keys (source, key, seq) VALUES (?, ?, ?)",
                  (*fk, seq)).rowcount:
        return True
    db.execute("UPDATE ledger_keys SET repeats = repeats + 1 WHERE source = ? AND key = ?", fk)
    return False


# The lookups of every write, by reference (a handful of rows each). INDEXED BY: the
# transaction's own events, never a walk back through every event of one kind.
_ASKED = ("SELECT json_extract(data, '$.amount') FROM events INDEXED BY events_ref"
          " WHERE ref = ? AND seq < ? AND kind = ? ORDER BY seq DESC LIMIT 1")
_PREVIOUS_NOTE = ("SELECT kind, data FROM events INDEXED BY events_ref WHERE ref = ?"
                  " AND seq < ? AND kind IN ('NoteCredited', 'OrphanNote')"
                  " ORDER BY seq DESC LIMIT 1")
_REF_SUMS = "SELECT kind, SUM(amount) FROM postings WHERE ref = ? AND seq < ? GROUP BY kind"


def _asked(db: sqlite3.Connection, ref: str, kind: str, seq: int) -> int | None:
    row = db.execute(_ASKED, (ref, seq, kind)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _ref_sums(db: sqlite3.Connection, ref: str, seq: int) -> dict[str, int]:
    return {k: int(a) for k, a in db.execute(_REF_SUMS, (ref, seq))}


def _derive(db: sqlite3.Connection, seq: int, ref: str | None, rec: ev.Record,
            issues: list[tuple[str, str | None, int, int, str]],
            late: bool = False) -> list[Posting]:
    """`postings(rec, ref, asked)` with what only the journal knows."""
    asked = 0
    match rec:
        case ev.TopUpSucceeded(ref=r):
            got = _asked(db, r, "TopUp", seq)
            if got is None:
                row = db.execute("SELECT amount FROM transactions WHERE ref = ?",
                                 (r,)).fetchone()
                got = int(row[0]) if row else 0
                issues.append(("no_request", r, got, 0, "TopUpSucceeded"))
            asked = got
        case ev.CardReversed(ref=r) | ev.CardReversalFailed(ref=r):
            got = _asked(db, r, "ReverseCard", seq)
            if got is None:
                got = _ref_sums(db, r, seq).get(K.CARD_IN.value, 0)
                issues.append(("no_request", r, got, 0, type(rec).__name__))
            asked = got
        case ev.SetVoucherStatus(code=c):
            row = db.execute("SELECT amount FROM vouchers WHERE code = ?", (c,)).fetchone()
            asked = int(row[0]) if row else 0
            if late:
                return revalued(rec, asked)
        case ev.LatePayment(source=s) if s.startswith("qr:"):
            row = db.execute("SELECT repeats FROM ledger_keys WHERE source = 'qr' AND key = ?",
                             (s[3:],)).fetchone()
            if row is not None and row[0] > 0:
                return []       # a payment reported again (it came in on time): no money
        case ev.OrphanNote(value=v):
            return _legacy_orphan(db, seq, ref, v)
    return postings(rec, ref, asked)


def _legacy_orphan(db: sqlite3.Connection, seq: int, ref: str | None,
                   value: int) -> list[Posting]:
    """Before keys, the OrphanNote after a NoteCredited (same reference, same value) says
    that note was nobody's: move it from the reference to the orphans."""
    if ref is None:
        return []       # a note credited with no reference was posted as an orphan already
    row = db.execute(_PREVIOUS_NOTE, (ref, seq)).fetchone()
    if row is None or row[0] != "NoteCredited":
        return []
    d = json.loads(row[1])
    if d.get("key") or d.get("ref") or int(d.get("value", 0)) != value:
        return []
    return [Posting(K.CASH_IN, ref, -value, value, "cash"),
            Posting(K.ORPHAN_NOTE, None, value, value, "cash")]


_UPSERT = ("INSERT INTO totals (kind, denom, dim, count, amount) VALUES (?, ?, ?, ?, ?)"
           " ON CONFLICT (kind, denom, dim) DO UPDATE SET count = count + excluded.count,"
           " amount = amount + excluded.amount")


def _running(db: sqlite3.Connection, seq: int, ts: float, rec: ev.Record,
             ps: list[Posting], issues: list[tuple[str, str | None, int, int, str]]) -> None:
    """The running totals of the same write: totals (cumulative), the cash box since its
    insertion, box events, and the discrepancies found now."""
    rows: list[tuple[str, int, str, int, int]] = []
    for p in ps:
        n = -1 if p.amount < 0 else 1
        rows.append((p.kind.value, p.denom, p.method, n, p.amount))
        if p.kind is K.CREDITED and p.ref:
            t = db.execute("SELECT operator, product_id FROM transactions WHERE ref = ?",
                           (p.ref,)).fetchone()
            op, product = (t[0], t[1]) if t else ("", "")
            rows += [("credited@operator", 0, op, n, p.amount),
                     ("credited@product", 0, product, n, p.amount)]
        if p.kind in NOTES:
            db.execute("INSERT INTO cash_box (denom, count, amount) VALUES (?, ?, ?)"
                       " ON CONFLICT (denom) DO UPDATE SET count = count + excluded.count,"
                       " amount = amount + excluded.amount", (p.denom, n, p.amount))
            if p.amount > 0 and not isinstance(rec, ev.OrphanNote):
                removed = db.execute("SELECT removed_seq FROM box_state").fetchone()[0]
                if removed is not None:
                    issues.append(("box_out", p.ref, p.amount, removed, ""))
        if p.kind is K.NOTE_IN_DOUBT:
            key = getattr(rec, "key", "")
            why = getattr(rec, "reason", "cash fault")
            issues.append(("in_doubt", p.ref, p.amount, 0, f"{why}, note {key}" if key else why))
        elif p.kind is K.NOTE_AT_POWER_UP:
            db.execute("UPDATE box_state SET power_up_count = power_up_count + 1,"
                       " power_up_amount = power_up_amount + ?", (p.amount,))
        elif p.kind is K.CASH_BOX_REMOVED:
            _box_removed(db, seq, ts, rec)
        elif p.kind is K.CASH_BOX_INSERTED:
            _box_inserted(db, seq, ts, rec, issues)
    db.executemany(_UPSERT, rows)
    if isinstance(rec, ev.CloseTransaction):
        _close_check(db, seq, rec, issues)


def _box_total(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COALESCE(SUM(amount), 0) FROM cash_box").fetchone()[0])


def _box_removed(db: sqlite3.Connection, seq: int, ts: float, rec: ev.Record) -> None:
    by, counted = getattr(rec, "by", ""), getattr(rec, "counted", None)
    power_up = db.execute("SELECT power_up_count FROM box_state").fetchone()[0]
    db.execute("INSERT INTO box_events (seq, ts, kind, by, counted, expected, power_up_notes)"
               " VALUES (?, ?, 'removed', ?, ?, ?, ?)",
               (seq, ts, by, counted, _box_total(db), power_up))
    db.execute("UPDATE box_state SET removed_seq = ?, removed_ts = ?, removed_by = ?",
               (seq, ts, by))


def _box_inserted(db: sqlite3.Connection, seq: int, ts: float, rec: ev.Record,
                  issues: list[tuple[str, str | None, int, int, str]]) -> None:
    by = getattr(rec, "by", "")
    removed, power_up = db.execute("SELECT removed_seq, power_up_count FROM box_state").fetchone()
    total = _box_total(db)
    has_notes = db.execute("SELECT 1 FROM cash_box WHERE count != 0 LIMIT 1").fetchone()
    if removed is None and (has_notes or power_up):
        issues.append(("box_unremoved", None, total, 0, by))
    db.execute("INSERT INTO box_events (seq, ts, kind, by) VALUES (?, ?, 'inserted', ?)",
               (seq, ts, by))
    db.execute("DELETE FROM cash_box")
    db.execute("UPDATE box_state SET since_seq = ?, since_ts = ?, removed_seq = NULL,"
               " removed_ts = NULL, removed_by = NULL, power_up_count = 0, power_up_amount = 0",
               (seq, ts))


def _close_check(db: sqlite3.Connection, seq: int, rec: ev.CloseTransaction,
                 issues: list[tuple[str, str | None, int, int, str]]) -> None:
    """A close against the postings of its facts (the engine's books against the ledger)."""
    r = rec.ref
    s = _ref_sums(db, r, seq)

    def sum_of(*kinds: Kind) -> int:
        return sum(s.get(k.value, 0) for k in kinds)

    paid = sum_of(*MONEY_IN) - sum_of(K.LATE_PAYMENT)     # late money is not the sale's
    if rec.paid != rec.credited + rec.voucher + rec.refunded:
        issues.append(("unbalanced", r, rec.paid, rec.credited + rec.voucher + rec.refunded, ""))
    if paid != rec.paid:
        detail = ", ".join(f"{k.value} {s.get(k.value, 0)}" for k in MONEY_IN
                           if s.get(k.value, 0))
        issues.append(("close_paid", r, rec.paid, paid, detail or "none"))
    for code, said, got in (
            ("close_credited", rec.credited, sum_of(K.CREDITED)),
            ("close_voucher", rec.voucher, sum_of(K.VOUCHER_ISSUED, K.VOUCHER_ACTIVATED)),
            ("close_refunded", rec.refunded, sum_of(K.REVERSED))):
        if said != got:
            issues.append((code, r, said, got, ""))


# ====================================================================== reading (O(1))
def cash_box_removed(db: sqlite3.Connection) -> bool:
    """A technician journaled the box's removal and no insertion since (one row read)."""
    row = db.execute("SELECT removed_seq FROM box_state WHERE id = 1").fetchone()
    return row is not None and row[0] is not None


def notes_in_doubt(db: sqlite3.Connection, limit: int = 50) -> list[tuple[str | None, int, str]]:
    """Notes neither credited nor returned, newest first: (reference, value, why and key).
    The technician settles each one at the cash count."""
    return [(r[0], int(r[1]), r[2]) for r in db.execute(
        "SELECT ref, a, detail FROM issues WHERE code = 'in_doubt' ORDER BY seq DESC LIMIT ?",
        (limit,))]


def ref_sums(db: sqlite3.Connection, ref: str) -> dict[str, int]:
    """Every posting of one transaction, summed by kind."""
    return _ref_sums(db, ref, 1 << 62)


# ====================================================================== install, back-fill
def _meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(db: sqlite3.Connection, key: str, value: str | None) -> None:
    if value is None:
        db.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def install(db: sqlite3.Connection) -> None:
    """Create the ledger's tables (idempotent); on a journal that has events and no ledger
    yet, post them all once (in chunks). Called by Journal.__init__."""
    db.executescript(SCHEMA)
    if _meta(db, "ledger") == VERSION and _meta(db, "ledger_backfill") is None:
        return                          # the usual open: no write
    db.execute("BEGIN IMMEDIATE")
    try:
        if _meta(db, "ledger") is None:
            db.execute("INSERT OR IGNORE INTO box_state (id) VALUES (1)")
            if db.execute("SELECT MAX(seq) FROM events").fetchone()[0] is not None:
                _set_meta(db, "ledger_backfill", "0")
            _set_meta(db, "ledger", VERSION)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    while backfill_step(db):
        pass


def backfilling(db: sqlite3.Connection) -> bool:
    """Is the ledger still being built from an existing journal (its totals incomplete)?"""
    return _meta(db, "ledger_backfill") is not None


def snapshot(db: sqlite3.Connection, number: int) -> None:
    """Store the cumulative totals as they are now as period `number`'s closing figures."""
    db.execute("DELETE FROM period_totals WHERE number = ?", (number,))
    db.execute("INSERT INTO period_totals (number, kind, denom, dim, count, amount)"
               " SELECT ?, kind, denom, dim, count, amount FROM totals", (number,))


def _records(rows: Iterable[sqlite3.Row | tuple]) -> Iterable[tuple[int, float, str | None,
                                                                    ev.Record | None]]:
    for seq, ts, ref, kind, data in rows:
        rec = None
        if kind in HANDLED_NAMES:
            try:
                rec = ev.from_dict(kind, json.loads(data))
            except (KeyError, TypeError, ValueError):
                rec = None      # a record this version cannot read moves nothing here
        yield int(seq), float(ts), ref, rec


def backfill_step(db: sqlite3.Connection) -> bool:
    """Post the next CHUNK events of a back-fill in one short write; True if more remain.
    Z reports closed before the ledger existed get their closing totals on the way."""
    db.execute("BEGIN IMMEDIATE")
    try:
        upto_text = _meta(db, "ledger_backfill")
        if upto_text is None:
            db.execute("COMMIT")
            return False
        upto = int(upto_text)
        rows = db.execute("SELECT seq, ts, ref, kind, data FROM events WHERE seq > ?"
                          " ORDER BY seq LIMIT ?", (upto, CHUNK)).fetchall()
        periods = db.execute("SELECT number, closed_seq FROM report_periods WHERE closed_seq > ?"
                             " ORDER BY number", (upto if upto else -1,)).fetchall()
        pending = list(periods)
        while pending and pending[0][1] <= upto:
            snapshot(db, int(pending.pop(0)[0]))       # closed before any event
        last = upto
        for seq, ts, ref, rec in _records(rows):
            if rec is not None:
                _post(db, seq, ts, ref, rec)
            last = seq
            while pending and pending[0][1] <= seq:
                snapshot(db, int(pending.pop(0)[0]))
        more = len(rows) == CHUNK
        if not more:
            for number, _closed in pending:
                snapshot(db, int(number))
        _set_meta(db, "ledger_backfill", str(last) if more else None)
        db.execute("COMMIT")
        return more
    except BaseException:
        db.execute("ROLLBACK")
        raise
