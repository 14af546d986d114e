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
  meta          kiosk_id, schema version, journal_id and ref_tag (kiosk/identity.py)
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from . import books, disk, identity, private
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


JournalRefused = identity.JournalRefused     # refused at open: lost, damaged, foreign


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
                 *, any_thread: bool = False, busy_timeout_s: float = 10.0,
                 create: bool = True) -> None:
        self.path = Path(path)
        # A folder that had a journal and lost it refuses here, before anything is created
        # (create=False: only an existing journal is opened).
        identity.before_open(self.path, create=create)
        private.folder(self.path.parent)        # phone numbers and voucher codes inside
        private.file(self.path)
        self.kiosk_id = kiosk_id
        self.currency = currency
        self._last_seq = 0
        # Called after every durable write (the crash harness kills the process there).
        self.after_write: Any = None
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each append is one
        # explicit transaction and nothing is left half-written in an implicit one.
        # any_thread: the money gate's connection, used by device threads under its lock.
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=busy_timeout_s,
                                  check_same_thread=not any_thread)
        self.db.row_factory = sqlite3.Row
        try:
            self._open_schema(kiosk_id)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            if disk.is_full(exc):
                raise identity.JournalRefused(disk.full_message(self.path, exc)) from exc
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise identity.JournalRefused(
                f"{self.path} is damaged ({exc}): {identity.RESTORE_HINT}") from exc
        except BaseException:
            self.db.close()
            raise
        books.install(self.db)      # postings and running totals (kiosk/books.py)

    def _open_schema(self, kiosk_id: str) -> None:
        mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise JournalError(f"{self.path}: cannot enable WAL (got {mode})")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
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
            self.identity = identity.establish(self.db, self.path, kiosk_id)
        identity.ensure_marker(self.path, self.identity)
        self.ref_tag = str(self.db.execute(
            "SELECT value FROM meta WHERE key = 'ref_tag'").fetchone()[0])
        self._last_seq = int(self.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        identity.check_mark(self.path, self._last_seq)

    def check_structure(self) -> list[str]:
        """SQLite's own check of the database (pages, and every index against its table):
        [] when sound."""
        try:
            rows = [str(r[0]) for r in self.db.execute("PRAGMA integrity_check(20)")]
        except sqlite3.DatabaseError as exc:
            return [str(exc)]
        return [] if rows == ["ok"] else rows

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ writing
    class _Tx:
        def __init__(self, journal: Journal) -> None:
            self.journal, self.db = journal, journal.db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            self.last_seq = self.journal._last_seq
            return self.db

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            if exc_type:
                if self.db.in_transaction:      # SQLite may have rolled back already
                    self.db.execute("ROLLBACK")
                self.journal._last_seq = self.last_seq     # the mark counts commits only
                return
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error:
                # Not written (disk full, I/O error): leave no transaction open behind it,
                # so the next write (or journal_health's probe) can begin afresh.
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                self.journal._last_seq = self.last_seq
                raise

    def _tx(self) -> Journal._Tx:
        return Journal._Tx(self)

    def _insert_event(self, ts: float, ref: str | None, rec: ev.Record) -> int:
        source, key = ev.fact_key(rec) or (None, None)
        cur = self.db.execute(
            "INSERT INTO events (ts, ref, kind, data, fact_source, fact_key)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ts, ref, rec.kind(), json.dumps(rec.to_dict(), sort_keys=True), source, key))
        seq = int(cur.lastrowid or 0)
        books.post(self.db, seq, ts, ref, rec)   # same SQL transaction
        self._last_seq = max(self._last_seq, seq)
        return seq

    def open_transaction(self, txn: Txn) -> str:
        """Allocate the next reference and open its transaction, durably, in one write."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM transactions").fetchone()
            number = int(row[0])
            ref = f"{self.kiosk_id}-{self.ref_tag}-{number:06d}"
            db.execute(
                "INSERT INTO transactions (ref, number, opened_ts, msisdn, operator, product_id,"
                " amount, currency, method) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ref, number, now, txn.msisdn, txn.operator, txn.product_id, txn.amount,
                 self.currency, txn.method))
            self._insert_event(now, ref, ev.ReferenceAllocated(ref))
        self._written()
        return ref

    def _written(self) -> None:
        identity.advance_mark(self.path.parent, self._last_seq)
        if self.after_write is not None:
            self.after_write()

    def append(self, ref: str | None, rec: ev.Record) -> int:
        """Write one record durably. Returns its sequence number (a keyed fact entered
        before: the first entry's)."""
        return self.enter(ref, rec).seq

    def restart_references(self, restored: ev.JournalRestored) -> str:
        """After a restore: draw a new reference tag and journal the restore, in one write.
        Returns the new tag."""
        tag = identity.new_tag()
        while tag == self.ref_tag:
            tag = identity.new_tag()
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('ref_tag', ?)", (tag,))
            self._insert_event(time.time(), None, replace(restored, new_tag=tag))
        self.ref_tag = tag
        self._written()
        return tag

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

    # ------------------------------------------------------------------ late credits
    def enter_late_credit(self, ref: str, plan: Any) -> list[ev.Record]:
        """A top-up the provider credited after `ref` closed as failed (kiosk/late_credit.py),
        in one write: `plan(vouchers)` gets the transaction's vouchers as they are inside it
        and returns the records to journal (a LateCredit, the SetVoucherStatus of an unused
        voucher), so no redemption can come between the look and the void. Returns them;
        [] when `ref` has a LateCredit already."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM events WHERE ref = ? AND kind = 'LateCredit'",
                          (ref,)).fetchone():
                return []
            vouchers = [dict(r) for r in db.execute(
                "SELECT * FROM vouchers WHERE ref = ? ORDER BY issued_ts", (ref,))]
            records: list[ev.Record] = list(plan(vouchers))
            now = time.time()
            for rec in records:
                self._insert_event(now, ref, rec)
                if isinstance(rec, ev.SetVoucherStatus):
                    db.execute("UPDATE vouchers SET status = ?, amount = COALESCE(?, amount)"
                               " WHERE code = ? AND status = 'active'",
                               (rec.status, rec.amount, rec.code))
        self._written()
        return records


    # ------------------------------------------------------------------ vouchers: find, void
    # The seq of a voucher's VoucherIssued names it in the delivery and audit records
    # (VoucherSent, VoucherShown, ...) without its code; its SMS state is the last of them.
    _VOUCHER_SEQ = ("(SELECT e.seq FROM events e INDEXED BY events_ref WHERE e.ref = v.ref"
                    " AND e.kind = 'VoucherIssued' AND json_extract(e.data, '$.code') = v.code"
                    " ORDER BY e.seq LIMIT 1)")
    _SMS_OF = ("SELECT kind, ts FROM events INDEXED BY events_ref WHERE ref = ? AND kind IN"
               " ('VoucherSent', 'VoucherSmsRefused') AND json_extract(data, '$.voucher_seq') = ?"
               " ORDER BY seq")

    def find_vouchers(self, *, msisdn: str | None = None, ref: str | None = None,
                      last4: str | None = None, code: str | None = None,
                      status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Vouchers, newest first, each with its transaction's number (`msisdn`, None when
        its reference has no transaction), `voucher_seq` and its SMS state: `sms` "sent",
        "refused" or "" (never accepted by a gateway), `sms_ts`, `sent_count`."""
        where: list[str] = ["1"]
        args: list[Any] = []
        for sql, value in (("t.msisdn = ?", msisdn), ("v.ref = ?", ref),
                           ("substr(v.code, -4) = ?", last4), ("v.code = ?", code),
                           ("v.status = ?", status)):
            if value is not None:
                where.append(sql)
                args.append(value)
        rows = self.db.execute(
            f"SELECT v.*, t.msisdn AS msisdn, {self._VOUCHER_SEQ} AS voucher_seq"
            " FROM vouchers v LEFT JOIN transactions t ON t.ref = v.ref"
            f" WHERE {' AND '.join(where)} ORDER BY v.issued_ts DESC, v.rowid DESC LIMIT ?",
            (*args, limit)).fetchall()
        return [self._with_sms(dict(r)) for r in rows]

    def _with_sms(self, v: dict[str, Any]) -> dict[str, Any]:
        sms = self.db.execute(self._SMS_OF, (v["ref"], v["voucher_seq"])).fetchall()
        v["sent_count"] = sum(1 for kind, _ts in sms if kind == "VoucherSent")
        v["sms"] = ({"VoucherSent": "sent", "VoucherSmsRefused": "refused"}[sms[-1][0]]
                    if sms else "")
        v["sms_ts"] = float(sms[-1][1]) if sms else None
        return v

    def unsent_vouchers(self, today: str) -> list[dict[str, Any]]:
        """Active vouchers not expired on `today` (local ISO date) whose text no SMS gateway
        accepted or refused yet, oldest first: what the kiosk sends at start."""
        rows = self.db.execute(
            f"SELECT v.*, t.msisdn AS msisdn, {self._VOUCHER_SEQ} AS voucher_seq"
            " FROM vouchers v LEFT JOIN transactions t ON t.ref = v.ref"
            " WHERE v.status = 'active' AND (v.expires = '' OR v.expires >= ?)"
            " ORDER BY v.issued_ts, v.rowid", (today,)).fetchall()
        return [v for v in (self._with_sms(dict(r)) for r in rows) if not v["sms"]]

    def void_voucher(self, code: str, by: str, reason: str) -> ev.VoucherVoided | str:
        """Void an active voucher (a technician's `kiosk voucher void`): the check, the status
        change and the VoucherVoided (with its ledger posting) are one SQL transaction, so
        a redemption cannot come between them. Returns the record, or why nothing changed:
        "unknown", "redeemed", "void", or "pending" (held for a top-up still unresolved:
        the kiosk makes it valid or void when the provider answers)."""
        with self._tx() as db:
            row = db.execute("SELECT v.ref, v.amount, v.status, t.status AS txn FROM vouchers v"
                             " LEFT JOIN transactions t ON t.ref = v.ref WHERE v.code = ?",
                             (code,)).fetchone()
            if row is None:
                return "unknown"
            was = str(row["status"])
            if was in ("redeemed", "void"):
                return was
            if was == "held" and row["txn"] == "open":
                return "pending"
            seq = db.execute(f"SELECT {self._VOUCHER_SEQ} FROM vouchers v WHERE v.code = ?",
                             (code,)).fetchone()[0]
            rec = ev.VoucherVoided(str(row["ref"]), code[-4:], int(seq or 0), int(row["amount"]),
                                   was, by, reason)
            cur = db.execute("UPDATE vouchers SET status = 'void' WHERE code = ? AND status = ?",
                             (code, was))
            if cur.rowcount != 1:
                raise JournalError(f"voucher {code[-4:]}: changed under us")
            self._insert_event(time.time(), rec.ref, rec)
        self._written()
        return rec
