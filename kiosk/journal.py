"""The money journal: an append-only SQLite log, durable before anything irreversible.

SQLite in WAL mode with synchronous=FULL: when `append` returns, the record survives a
power cut. The shell appends every money event before stepping the engine with it, and
every money effect before performing it. A top-up's reference is allocated here, inside
the same write that opens its transaction, before the first call that uses it.

Tables:
  events        seq, ts, ref, kind, data (JSON), fact_source, fact_key - the log itself,
                never updated; a money fact from outside (events.fact_key) is entered once:
                (fact_source, fact_key) is unique
  transactions  one row per reference: what was bought, status open/closed, money totals
  vouchers      code, ref, amount, status (active / held / void / redeemed), expires
                (last valid day), redeemed_ref / redeemed_ts once used as payment
  meta          kiosk_id, schema version
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from . import books, private
from . import events as ev
from .engine import Engine, Phase, State, Txn

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    ts    REAL NOT NULL,
    ref   TEXT,
    kind  TEXT NOT NULL,
    data  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ref ON events (ref);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind);     -- (kind, seq): the last X of a kind
CREATE TABLE IF NOT EXISTS transactions (
    ref        TEXT PRIMARY KEY,
    number     INTEGER NOT NULL UNIQUE,
    opened_ts  REAL NOT NULL,
    msisdn     TEXT NOT NULL,
    operator   TEXT NOT NULL,
    product_id TEXT NOT NULL,
    amount     INTEGER NOT NULL,
    currency   TEXT NOT NULL,
    method     TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    outcome    TEXT,
    paid       INTEGER NOT NULL DEFAULT 0,
    credited   INTEGER NOT NULL DEFAULT 0,
    voucher    INTEGER NOT NULL DEFAULT 0,
    refunded   INTEGER NOT NULL DEFAULT 0,
    closed_ts  REAL
);
CREATE TABLE IF NOT EXISTS vouchers (
    code      TEXT PRIMARY KEY,
    ref       TEXT NOT NULL,
    amount    INTEGER NOT NULL,
    currency  TEXT NOT NULL,
    status    TEXT NOT NULL CHECK (status IN ('active', 'held', 'void', 'redeemed')),
    issued_ts REAL NOT NULL,
    expires   TEXT NOT NULL DEFAULT '',
    redeemed_ref TEXT,
    redeemed_ts  REAL
);
"""

SCHEMA_VERSION = "3"
# Columns added after version 1, for journals written by it.
_MIGRATIONS = (("vouchers", "expires", "TEXT NOT NULL DEFAULT ''"),
               ("vouchers", "redeemed_ref", "TEXT"), ("vouchers", "redeemed_ts", "REAL"),
               ("events", "fact_source", "TEXT"), ("events", "fact_key", "TEXT"))
# After the migrations (the columns may be new): one money fact, one row.
_FACT_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS events_fact ON events (fact_source, fact_key)"
               " WHERE fact_key IS NOT NULL")


class JournalError(Exception):
    pass


@dataclass(frozen=True)
class TxnRow:
    ref: str
    number: int
    opened_ts: float
    msisdn: str
    operator: str
    product_id: str
    amount: int
    currency: str
    method: str
    status: str
    outcome: str | None
    paid: int
    credited: int
    voucher: int
    refunded: int
    closed_ts: float | None

    def to_dict(self, masked: bool = True) -> dict[str, Any]:
        from .catalog import mask_number
        d = dict(self.__dict__)
        if masked:
            d["msisdn"] = mask_number(self.msisdn, "*")
        return d


@dataclass(frozen=True)
class Entry:
    """What `Journal.enter` did: the record as journaled (a note's `ref` filled in) and
    whether it is new; a repeat of a keyed fact returns the first entry, new=False."""
    seq: int
    record: ev.Record
    ref: str | None
    new: bool


@dataclass(frozen=True)
class EventRow:
    seq: int
    ts: float
    ref: str | None
    kind: str
    data: dict[str, Any]

    def record(self) -> ev.Record:
        return ev.from_dict(self.kind, self.data)


class Journal:
    def __init__(self, path: str | Path, kiosk_id: str = "K0001", currency: str = "PHP",
                 *, any_thread: bool = False, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        private.folder(self.path.parent)        # phone numbers and voucher codes inside
        private.file(self.path)
        self.kiosk_id = kiosk_id
        self.currency = currency
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each append is one
        # explicit transaction and nothing is left half-written in an implicit one.
        # any_thread: the money gate's connection, used by device threads under its lock.
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=busy_timeout_s,
                                  check_same_thread=not any_thread)
        self.db.row_factory = sqlite3.Row
        mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise JournalError(f"{self.path}: cannot enable WAL (got {mode})")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # Called after every durable write (the crash harness kills the process there).
        self.after_write: Any = None
        self.db.executescript(SCHEMA)
        for table, column, decl in _MIGRATIONS:
            have = {r["name"] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        self.db.execute(_FACT_INDEX)
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                            (SCHEMA_VERSION,))
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('kiosk_id', ?)", (kiosk_id,))
        books.install(self.db)      # postings and running totals (kiosk/books.py)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ writing
    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> Journal._Tx:
        return Journal._Tx(self.db)

    def _insert_event(self, ts: float, ref: str | None, rec: ev.Record) -> int:
        source, key = ev.fact_key(rec) or (None, None)
        cur = self.db.execute(
            "INSERT INTO events (ts, ref, kind, data, fact_source, fact_key)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ts, ref, rec.kind(), json.dumps(rec.to_dict(), sort_keys=True), source, key))
        books.post(self.db, int(cur.lastrowid or 0), ts, ref, rec)   # same SQL transaction
        return int(cur.lastrowid or 0)

    def open_transaction(self, txn: Txn) -> str:
        """Allocate the next reference and open its transaction, durably, in one write."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM transactions").fetchone()
            number = int(row[0])
            ref = f"{self.kiosk_id}-{number:06d}"
            db.execute(
                "INSERT INTO transactions (ref, number, opened_ts, msisdn, operator, product_id,"
                " amount, currency, method) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ref, number, now, txn.msisdn, txn.operator, txn.product_id, txn.amount,
                 self.currency, txn.method))
            self._insert_event(now, ref, ev.ReferenceAllocated(ref))
        self._written()
        return ref

    def _written(self) -> None:
        if self.after_write is not None:
            self.after_write()

    def append(self, ref: str | None, rec: ev.Record) -> int:
        """Write one record durably. Returns its sequence number (a keyed fact entered
        before: the first entry's)."""
        return self.enter(ref, rec).seq

    def annotate(self, items: list[tuple[str | None, ev.Record]]) -> None:
        """Write annotations (records that change no table, e.g. RecoveryStarted) in one
        SQL transaction: one wait for the write lock and one sync for all of them."""
        if not items:
            return
        now = time.time()
        with self._tx():
            for ref, rec in items:
                self._insert_event(now, ref, rec)
        self._written()

    def _note_owner(self, key: str) -> str | None:
        """The open transaction whose StackNote (or ReturnNote) named note `key`."""
        row = self.db.execute(
            "SELECT e.ref FROM events e JOIN transactions t ON t.ref = e.ref"
            " WHERE e.fact_source IN ('stack', 'return') AND e.fact_key = ?"
            " AND t.status = 'open' ORDER BY e.seq DESC LIMIT 1", (key,)).fetchone()
        return row[0] if row else None

    def enter(self, ref: str | None, rec: ev.Record) -> Entry:
        """Write one record durably, in one SQL transaction with what it changes. A money
        fact with a key (events.fact_key) is entered once: a repeat changes nothing and
        returns the first entry with new=False. A note's outcome is booked to the open
        transaction that stacked (or returned) it, or to nobody (ref None: an orphan)."""
        now = time.time()
        key = ev.fact_key(rec)
        with self._tx() as db:
            if key is not None:
                row = db.execute("SELECT seq, ref, kind, data FROM events WHERE fact_source=?"
                                 " AND fact_key=?", key).fetchone()
                if row is not None:
                    first = ev.from_dict(row["kind"], json.loads(row["data"]))
                    return Entry(int(row["seq"]), first, row["ref"], False)
            if isinstance(rec, ev.NOTE_OUTCOMES) and rec.key:
                ref = self._note_owner(rec.key)
                rec = replace(rec, ref=ref)
            seq = self._insert_event(now, ref, rec)
            match rec:
                case ev.CloseTransaction(ref=r, outcome=o, paid=p, credited=c, voucher=v,
                                         refunded=f):
                    cur = db.execute(
                        "UPDATE transactions SET status='closed', outcome=?, paid=?, credited=?,"
                        " voucher=?, refunded=?, closed_ts=? WHERE ref=? AND status='open'",
                        (o, p, c, v, f, now, r))
                    if cur.rowcount != 1:
                        raise JournalError(f"{r}: no open transaction to close")
                case ev.VoucherIssued(ref=r, code=code, amount=a, held=held, expires=exp):
                    db.execute(
                        "INSERT INTO vouchers (code, ref, amount, currency, status, issued_ts,"
                        " expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (code, r, a, self.currency, "held" if held else "active", now, exp))
                case ev.SetVoucherStatus(code=code, status=st, amount=a):
                    db.execute("UPDATE vouchers SET status=?, amount=COALESCE(?, amount)"
                               " WHERE code=?", (st, a, code))
                # A closed transaction is final: money arriving later (a late QR payment, an
                # orphan note) is kept by its own records (LatePayment voucher, OrphanNote).
                case ev.NoteCredited(value=v) | ev.NoteInDoubt(value=v) if ref:
                    db.execute("UPDATE transactions SET paid = paid + ? WHERE ref=?"
                               " AND status='open'", (v, ref))
                case ev.QrPaid(ref=r, amount=a) | ev.CardApproved(ref=r, amount=a):
                    db.execute("UPDATE transactions SET paid = paid + ? WHERE ref=?"
                               " AND status='open'", (a, r))
        self._written()
        return Entry(seq, rec, ref, True)

    def is_closed(self, ref: str | None) -> bool:
        row = self.db.execute("SELECT status FROM transactions WHERE ref=?", (ref,)).fetchone()
        return row is not None and row[0] == "closed"

    def cash_box_removed(self) -> bool:
        """Was the cash box taken out (CashBoxRemoved) with no insertion since?"""
        return books.cash_box_removed(self.db)

    def pending_note(self) -> tuple[str, int, str | None] | None:
        """The last note told to STACK with no outcome journaled yet: (key, value, ref of
        its transaction if still open). What an acceptor start-up must resolve."""
        # One acceptor, one note at a time: only the last note stacked can be pending.
        row = self.db.execute(
            "SELECT fact_key, data, ref FROM events WHERE kind = 'StackNote'"
            " AND fact_key IS NOT NULL ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None or self.db.execute(
                "SELECT 1 FROM events WHERE fact_source = 'note' AND fact_key = ?",
                (row["fact_key"],)).fetchone():
            return None
        value = int(json.loads(row["data"])["value"])
        open_ = self.db.execute("SELECT 1 FROM transactions WHERE ref=? AND status='open'",
                                (row["ref"],)).fetchone()
        return row["fact_key"], value, row["ref"] if open_ else None

    def redeem_voucher(self, ref: str, code: str, today: str) -> ev.Record:
        """Use voucher `code` as payment on `ref`, atomically: the check, the status change
        and the VoucherRedeemed event are one SQL transaction, so two kiosks' sessions (or a
        replayed request) can never spend it twice. Returns VoucherRedeemed (journaled) or
        VoucherRefused (not journaled: nothing changed). `today` is the local ISO date."""
        from .vouchers import well_formed
        if not well_formed(code):
            return ev.VoucherRefused(ref, code, "invalid")
        with self._tx() as db:
            row = db.execute("SELECT * FROM vouchers WHERE code=?", (code,)).fetchone()
            if row is None or row["currency"] != self.currency:
                return ev.VoucherRefused(ref, code, "unknown")
            status = row["status"]
            if status == "redeemed":
                return ev.VoucherRefused(ref, code, "used")
            if status in ("held", "void"):
                return ev.VoucherRefused(ref, code, status)
            if row["expires"] and row["expires"] < today:
                return ev.VoucherRefused(ref, code, "expired")
            rec = ev.VoucherRedeemed(ref, code, int(row["amount"]))
            now = time.time()
            cur = db.execute("UPDATE vouchers SET status='redeemed', redeemed_ref=?,"
                             " redeemed_ts=? WHERE code=? AND status='active'",
                             (ref, now, code))
            if cur.rowcount != 1:
                raise JournalError(f"voucher {code[-4:]}: changed under us")
            self._insert_event(now, ref, rec)
            db.execute("UPDATE transactions SET paid = paid + ? WHERE ref=? AND status='open'",
                       (rec.amount, ref))
        self._written()
        return rec

    def voucher(self, code: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM vouchers WHERE code=?", (code,)).fetchone()
        return dict(row) if row else None

    # ------------------------------------------------------------------ reading
    def _txn(self, row: sqlite3.Row) -> TxnRow:
        return TxnRow(**{k: row[k] for k in row.keys()})

    def transactions(self, status: str | None = None, limit: int = 50) -> list[TxnRow]:
        q = "SELECT * FROM transactions"
        args: tuple[Any, ...] = ()
        if status:
            q += " WHERE status=?"
            args = (status,)
        q += " ORDER BY number DESC LIMIT ?"
        return [self._txn(r) for r in self.db.execute(q, args + (limit,))]

    def transaction(self, ref: str) -> TxnRow | None:
        row = self.db.execute("SELECT * FROM transactions WHERE ref=?", (ref,)).fetchone()
        return self._txn(row) if row else None

    def events(self, ref: str | None = None) -> list[EventRow]:
        if ref is None:
            rows = self.db.execute("SELECT * FROM events ORDER BY seq")
        else:
            rows = self.db.execute("SELECT * FROM events WHERE ref=? ORDER BY seq", (ref,))
        return [EventRow(r["seq"], r["ts"], r["ref"], r["kind"], json.loads(r["data"]))
                for r in rows]

    def vouchers(self, ref: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM vouchers", cast(tuple[str, ...], ())
        if ref:
            q, args = q + " WHERE ref=?", (ref,)
        return [dict(r) for r in self.db.execute(q + " ORDER BY issued_ts", args)]

    def recovered(self, limit: int = 50) -> list[TxnRow]:
        """Transactions the kiosk found unfinished at a start and resumed, newest first."""
        return [self._txn(r) for r in self.db.execute(
            "SELECT * FROM transactions WHERE ref IN (SELECT ref FROM events"
            " WHERE kind = 'RecoveryStarted') ORDER BY number DESC LIMIT ?",
            (limit,))]

    def unresolved(self) -> list[TxnRow]:
        return [self._txn(r) for r in self.db.execute(
            "SELECT * FROM transactions WHERE status='open' ORDER BY number")]

    def iter_money_events(self) -> Iterator[EventRow]:
        for r in self.events():
            if r.record().money:
                yield r

    # ------------------------------------------------------------------ rebuilding
    def rebuild(self, ref: str, engine: Engine) -> tuple[State, list[ev.Record]]:
        """The engine state of transaction `ref`, replayed from its journaled events, and the
        effects its last event asked for (some may not have been performed before a crash)."""
        row = self.transaction(ref)
        if row is None:
            raise JournalError(f"unknown reference {ref}")
        phase = {"cash": Phase.PAY_CASH, "qr": Phase.PAY_QR, "card": Phase.PAY_CARD,
                 "voucher": Phase.PAY_VOUCHER}[row.method]
        txn = Txn(msisdn=row.msisdn, operator=row.operator, product_id=row.product_id,
                  amount=row.amount, method=row.method)
        state = State(phase=phase, txn=txn)
        pending: list[ev.Record] = []
        for kind, data, source in self.db.execute(
                "SELECT kind, data, fact_source FROM events WHERE ref=? ORDER BY seq",
                (ref,)):
            if ev.is_effect(kind) or kind in ev.ANNOTATIONS:
                continue
            state, pending = engine.step(state, ev.from_dict(kind, json.loads(data)))
            if kind == "CardApproved" and source is None:
                # Written before approvals waited for the terminal's completion: it was
                # final when journaled.
                state, pending = engine.step(state, ev.CardCompleted(ref))
        return replace(state, notice=""), pending
