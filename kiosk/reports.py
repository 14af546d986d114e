"""Cash reconciliation and X/Z reports, computed from the money journal.

Why from the journal: the `events` table is written before anything irreversible happens
and is never changed, so it is the one place where every note, wallet payment, card
approval and voucher is recorded exactly once. The figures here are sums over those
events; the `transactions` table (a summary the journal keeps alongside) is used only to
cross-check them, and every mismatch is listed in `Report.discrepancies`, never hidden.

Periods. A Z report closes the current period: its number, the seq range it covers and its
figures are stored in `report_periods` (a table of this module, in the journal's database).
Period n covers the events with seq in (closed_seq of n-1, closed_seq of n]. Nothing in
`events` is changed or deleted: the counters "reset" only because the next period starts
after the Z's last seq. An X report shows the current period and writes nothing.

The cash box. Counted from the last `CashBoxInserted` (or the start of the journal): one
note per `NoteCredited`, per `CashFault.in_doubt` (a note being stacked when the acceptor
failed, counted as in the box) and per `OrphanNote` that is not the record of a
`NoteCredited` just before it. The engine answers a note credited with no open transaction
with an `OrphanNote` effect, so the same physical note is journaled twice (NoteCredited,
then OrphanNote, same ref, same value): only the first record counts as cash. Notes found
in the stacker at power-up (`NoteAtPowerUp`) were credited to nobody: they are shown next
to the box total, not in it, for the technician's count to explain.

Money is int minor units throughout. Phone numbers are never read (no `msisdn`).
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple
from zoneinfo import ZoneInfo

from .money import fmt

if TYPE_CHECKING:
    from .catalog import Catalog
    from .journal import Journal

WIDTH = 42                      # the receipt printer's columns (Font A on 80 mm paper)

PERIODS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS report_periods (number INTEGER PRIMARY KEY,"
    " opened_seq INTEGER NOT NULL, closed_seq INTEGER NOT NULL, opened_ts REAL,"
    " closed_ts REAL NOT NULL, by TEXT, totals TEXT NOT NULL)")

# What moves notes in or out of the cash box, and its removals and insertions.
CASH_KINDS = ("NoteCredited", "OrphanNote", "CashFault", "NoteAtPowerUp", "CashBoxRemoved",
              "CashBoxInserted")

_CHUNK = 500                    # refs per "IN (...)": well under SQLite's variable limit


class ReportError(Exception):
    """A report that cannot be made (e.g. a Z asked for inside another transaction)."""


# ====================================================================== the figures
@dataclass(frozen=True)
class Count:
    """How many and how much (minor units)."""
    count: int = 0
    amount: int = 0


@dataclass(frozen=True)
class Group:
    """Successful top-ups of one operator, product or product kind: count, credited."""
    key: str
    count: int
    amount: int


@dataclass(frozen=True)
class OutcomeGroup:
    """Transactions closed with one outcome, with their money split as they closed."""
    outcome: str
    count: int
    paid: int
    credited: int
    voucher: int
    refunded: int


@dataclass(frozen=True)
class CashIn:
    """Notes that went into the cash box during the period."""
    notes: dict[int, int]          # value -> count
    count: int
    total: int
    to_transactions: Count         # credited to a customer's open transaction
    orphan: Count                  # credited with no open transaction (OrphanNote)
    in_doubt: Count                # of the total: stacking when the acceptor failed
    at_power_up: Count             # found in the stacker at power-up: NOT in the total


@dataclass(frozen=True)
class Vouchers:
    issued: Count                  # valid when issued (change, failed top-up, cancel, late)
    held: Count                    # held for a PENDING top-up: valid only if it fails
    activated: Count               # held vouchers made valid (with their final value)
    voided: Count                  # held vouchers voided (the top-up succeeded)
    redeemed: Count                # used as payment (VoucherRedeemed)


@dataclass(frozen=True)
class TopUps:
    count: int                     # closed with something credited
    credited: int
    by_outcome: tuple[OutcomeGroup, ...]
    by_operator: tuple[Group, ...]
    by_product: tuple[Group, ...]
    by_kind: tuple[Group, ...]     # empty unless a catalog was given


@dataclass(frozen=True)
class Transactions:
    opened: int                    # references allocated in the period
    closed: int                    # CloseTransaction in the period
    open_refs: tuple[str, ...]     # still open at the end of the period (any period's)


@dataclass(frozen=True)
class BoxEvent:
    """A cash box taken out or put in, as the journal has it."""
    kind: str                      # "removed" | "inserted"
    seq: int
    ts: float
    by: str
    counted: int | None = None     # what the technician counted at removal, if entered
    expected: int | None = None    # the box total by the journal at removal
    difference: int | None = None  # counted - expected (positive: more cash than journaled)
    power_up_notes: int = 0        # notes found at power-up in that box, credited to nobody


@dataclass(frozen=True)
class CashBox:
    """The notes in the cash box by the journal, since it was put in."""
    currency: str
    notes: dict[int, int]          # value -> count
    count: int
    total: int
    since_seq: int                 # the CashBoxInserted, 0 = the beginning of the journal
    since_ts: float | None
    as_of_seq: int                 # counted from the journal up to this seq
    removed_pending: bool          # taken out and no box put back: keep cash disabled
    removed_by: str | None = None
    removed_ts: float | None = None
    at_power_up: Count = Count()   # found in the stacker at power-up: NOT in the total


@dataclass(frozen=True)
class Report:
    """An X (current period, not closed) or Z (closed, stored) report."""
    kind: str                      # "X" | "Z"
    number: int                    # the Z's number; for an X, the number its Z will get
    kiosk_id: str
    currency: str
    from_seq: int                  # the period has the events with from_seq < seq <= to_seq
    to_seq: int
    from_ts: float | None          # the previous Z, or the first event of the journal
    to_ts: float                   # the Z, or when the X was made
    closed_by: str | None
    cash: CashIn
    qr: Count
    card_approved: Count
    card_reversed: Count
    card_reversal_failed: Count
    vouchers: Vouchers
    late_payments: Count
    topups: TopUps
    transactions: Transactions
    cash_box: CashBox
    box_events: tuple[BoxEvent, ...]
    discrepancies: list[str]

    @property
    def closed(self) -> bool:
        return self.kind == "Z"

    @property
    def money_in(self) -> int:
        """Everything customers paid in the period, net of card reversals."""
        return (self.cash.total + self.qr.amount + self.card_approved.amount
                - self.card_reversed.amount)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Report":
        return _load(cls, d)


def _jsonable(obj: Any) -> Any:
    """Dataclasses to plain JSON: note maps become [{value, count, amount}] by value."""
    if hasattr(obj, "__dataclass_fields__"):
        out: dict[str, Any] = {}
        for f in fields(obj):
            v = getattr(obj, f.name)
            if f.name == "notes":
                out[f.name] = [{"value": k, "count": n, "amount": k * n}
                               for k, n in sorted(v.items())]
            else:
                out[f.name] = _jsonable(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


_NESTED: dict[str, type] = {
    "cash": CashIn, "qr": Count, "card_approved": Count, "card_reversed": Count,
    "card_reversal_failed": Count, "vouchers": Vouchers, "late_payments": Count,
    "topups": TopUps, "transactions": Transactions, "cash_box": CashBox,
    "to_transactions": Count, "orphan": Count, "in_doubt": Count, "at_power_up": Count,
    "issued": Count, "held": Count, "activated": Count, "voided": Count, "redeemed": Count,
}
_NESTED_LISTS: dict[str, type] = {
    "box_events": BoxEvent, "by_outcome": OutcomeGroup, "by_operator": Group,
    "by_product": Group, "by_kind": Group,
}


def _load(cls: type, d: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in d:
            continue                # a field added later: its default (stored reports stay)
        v = d[f.name]
        if f.name == "notes":
            v = {int(n["value"]): int(n["count"]) for n in v}
        elif f.name in _NESTED and isinstance(v, dict):
            v = _load(_NESTED[f.name], v)
        elif f.name in _NESTED_LISTS:
            v = tuple(_load(_NESTED_LISTS[f.name], x) for x in v)
        elif f.name == "discrepancies":
            v = list(v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


# ====================================================================== reading the journal
class _Row(NamedTuple):
    seq: int
    ts: float
    ref: str | None
    kind: str
    data: dict[str, Any]


def _rows(db: sqlite3.Connection, sql: str, args: Iterable[Any] = ()) -> list[_Row]:
    return [_Row(r[0], r[1], r[2], r[3], json.loads(r[4]))
            for r in db.execute(sql, tuple(args))]


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _max_seq(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])


def _has_periods(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table'"
                      " AND name='report_periods'").fetchone() is not None


class _Period(NamedTuple):
    number: int
    closed_seq: int
    closed_ts: float


def _last_period(db: sqlite3.Connection) -> _Period | None:
    if not _has_periods(db):
        return None
    r = db.execute("SELECT number, closed_seq, closed_ts FROM report_periods"
                   " ORDER BY number DESC LIMIT 1").fetchone()
    return _Period(int(r[0]), int(r[1]), float(r[2])) if r else None


class _Read:
    """One read transaction: every SELECT of a report sees the same snapshot of the
    journal, so a record appended meanwhile cannot show up in one sum and not another."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.own = False

    def __enter__(self) -> sqlite3.Connection:
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
            self.own = True
        return self.db

    def __exit__(self, *_: Any) -> None:
        if self.own:
            self.db.execute("COMMIT")


# ====================================================================== the cash box
class _BoxScan:
    """Follows the cash-box records in seq order (CASH_KINDS only)."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.notes: Counter[int] = Counter()
        self.since_seq = 0
        self.since_ts: float | None = None
        self.removed: _Row | None = None
        self.power_up = Count()
        self.as_of_seq = 0
        self.last_by_ref: dict[str | None, _Row] = {}
        self.paired_notes: set[int] = set()     # NoteCredited seqs an OrphanNote repeated
        self.paired_orphans: set[int] = set()   # ... and those OrphanNote seqs
        self.box_events: list[BoxEvent] = []
        self.anomalies: list[tuple[int, str]] = []   # (seq, text)

    @property
    def total(self) -> int:
        return sum(v * n for v, n in self.notes.items())

    def _add(self, r: _Row, value: int) -> None:
        self.notes[value] += 1
        if self.removed is not None:
            self.anomalies.append((r.seq, f"note of {fmt(value, self.currency)} credited at"
                                   f" seq {r.seq} while the cash box was out (removed at seq"
                                   f" {self.removed.seq}): where is it?"))

    def feed(self, r: _Row) -> None:
        self.as_of_seq = r.seq
        d = r.data
        match r.kind:
            case "NoteCredited":
                self._add(r, int(d["value"]))
            case "OrphanNote":
                prev = self.last_by_ref.get(r.ref)
                v = int(d["value"])
                if (prev is not None and prev.kind == "NoteCredited"
                        and int(prev.data["value"]) == v and prev.seq not in self.paired_notes):
                    self.paired_notes.add(prev.seq)     # the same note, journaled twice
                    self.paired_orphans.add(r.seq)
                else:
                    self._add(r, v)
            case "CashFault":
                if int(d.get("in_doubt") or 0) > 0:
                    self._add(r, int(d["in_doubt"]))
            case "NoteAtPowerUp":
                if d.get("where") == "stacker":
                    self.power_up = Count(self.power_up.count + 1,
                                          self.power_up.amount + int(d.get("value") or 0))
            case "CashBoxRemoved":
                counted = d.get("counted")
                expected = self.total
                self.box_events.append(BoxEvent(
                    "removed", r.seq, r.ts, str(d.get("by", "")),
                    counted=None if counted is None else int(counted), expected=expected,
                    difference=None if counted is None else int(counted) - expected,
                    power_up_notes=self.power_up.count))
                self.removed = r
            case "CashBoxInserted":
                if self.removed is None and (self.notes or self.power_up.count):
                    self.anomalies.append((r.seq, (
                        f"cash box inserted at seq {r.seq} by {d.get('by', '')} with no"
                        f" removal journaled: the box of {fmt(self.total, self.currency)}"
                        " was never recorded as taken out")))
                self.box_events.append(BoxEvent("inserted", r.seq, r.ts, str(d.get("by", ""))))
                self.notes = Counter()
                self.power_up = Count()
                self.since_seq, self.since_ts = r.seq, r.ts
                self.removed = None
                self.last_by_ref.clear()
        if r.kind in ("NoteCredited", "OrphanNote", "CashFault", "NoteAtPowerUp"):
            self.last_by_ref[r.ref] = r

    def box(self) -> CashBox:
        notes = {v: n for v, n in sorted(self.notes.items()) if n}
        rem = self.removed
        return CashBox(
            currency=self.currency, notes=notes, count=sum(notes.values()), total=self.total,
            since_seq=self.since_seq, since_ts=self.since_ts, as_of_seq=self.as_of_seq,
            removed_pending=rem is not None,
            removed_by=str(rem.data.get("by", "")) if rem else None,
            removed_ts=rem.ts if rem else None, at_power_up=self.power_up)


def _box_start(db: sqlite3.Connection, at_or_before: int) -> int:
    """The seq of the last CashBoxInserted at or before a seq, 0 if none."""
    r = db.execute("SELECT MAX(seq) FROM events WHERE kind='CashBoxInserted' AND seq <= ?",
                   (at_or_before,)).fetchone()
    return int(r[0] or 0)


_CASH_IN = "kind IN (" + ",".join(f"'{k}'" for k in CASH_KINDS) + ")"


def _scan_box(db: sqlite3.Connection, currency: str, upto: int,
              then: Iterable[_Row] = ()) -> _BoxScan:
    """The box scan from its last insertion at or before `upto`, through `upto`, then the
    rows of `then` (already read; only their cash-box kinds are fed)."""
    scan = _BoxScan(currency)
    start = _box_start(db, upto)
    for r in _rows(db, f"SELECT seq, ts, ref, kind, data FROM events WHERE {_CASH_IN}"
                       " AND seq >= ? AND seq <= ? ORDER BY seq", (start, upto)):
        scan.feed(r)
    scan.as_of_seq = max(scan.as_of_seq, upto)
    for r in then:
        if r.kind in CASH_KINDS:
            scan.feed(r)
    return scan


def cash_box(journal: Journal) -> CashBox:
    """The notes in the cash box now, by the journal (see the module docstring)."""
    with _Read(journal.db) as db:
        upto = _max_seq(db)
        scan = _scan_box(db, journal.currency, upto)
        scan.as_of_seq = upto
        return scan.box()


# ====================================================================== one transaction
@dataclass
class _Attributed:
    """What the events of one reference paid into it, up to a seq (its close)."""
    cash: int = 0
    qr: int = 0
    card: int = 0
    voucher_paid: int = 0          # VoucherRedeemed
    vouchers: int = 0              # vouchers issued/activated for it (not late payments)
    refunded: int = 0              # card reversals done


def _orphan_pairs(rows: list[_Row], currency: str) -> set[int]:
    """NoteCredited seqs repeated by the OrphanNote right after them (same ref): the rule
    of `_BoxScan.feed`, applied to one reference's events."""
    scan = _BoxScan(currency)
    for r in rows:
        if r.kind in CASH_KINDS:
            scan.feed(r)
    return scan.paired_notes


def _late_qr(rows: list[_Row]) -> set[int]:
    """QrPaid seqs the engine did not take as payment: each LatePayment("qr:P") names the
    latest QrPaid with provider_ref P before it (a late payment or a repeated report)."""
    late: set[int] = set()
    for i, r in enumerate(rows):
        if r.kind == "LatePayment" and str(r.data.get("source", "")).startswith("qr:"):
            p = str(r.data["source"])[3:]
            for q in reversed(rows[:i]):
                if (q.kind == "QrPaid" and str(q.data.get("provider_ref", "")) == p
                        and q.seq not in late):
                    late.add(q.seq)
                    break
    return late


def _new_late_payment(r: _Row, rows: list[_Row]) -> bool:
    """Did this LatePayment become a voucher? The shell (`Runtime._seen_payment`) issues
    none when the wallet payment it names was reported before (the poller and the order
    close both report one payment): then it is a repeat, not money."""
    source = str(r.data.get("source", ""))
    earlier = [q for q in rows if q.seq < r.seq]
    if any(q.kind == "LatePayment" and str(q.data.get("source", "")) == source
           for q in earlier):
        return False
    kind, _, provider_ref = source.partition(":")
    if kind != "qr":
        return True
    reports_ = sum(1 for q in earlier if q.kind == "QrPaid"
                   and str(q.data.get("provider_ref", "")) == provider_ref)
    return reports_ <= 1


def _reversal_amounts(rows: list[_Row]) -> dict[int, int | None]:
    """CardReversed / CardReversalFailed seq -> the amount its ReverseCard asked for
    (None: no ReverseCard was journaled before it)."""
    asked: list[int] = []
    out: dict[int, int | None] = {}
    for r in rows:
        if r.kind == "ReverseCard":
            asked.append(int(r.data["amount"]))
        elif r.kind in ("CardReversed", "CardReversalFailed"):
            out[r.seq] = asked.pop(0) if asked else None
    return out


def _attribute(rows: list[_Row], upto: int, currency: str) -> _Attributed:
    """The money the engine counted for one transaction, from its events up to `upto`."""
    rows = [r for r in rows if r.seq <= upto]
    paired = _orphan_pairs(rows, currency)
    late = _late_qr(rows)
    reversals = _reversal_amounts(rows)
    a = _Attributed()
    prev: _Row | None = None
    for r in rows:
        d = r.data
        match r.kind:
            case "NoteCredited" if r.seq not in paired:
                a.cash += int(d["value"])
            case "CashFault":
                a.cash += int(d.get("in_doubt") or 0)
            case "QrPaid" if r.seq not in late:
                a.qr += int(d["amount"])
            case "CardApproved":
                a.card += int(d["amount"])
            case "VoucherRedeemed":
                a.voucher_paid += int(d["amount"])
            case "VoucherIssued" if not d.get("held") and not (
                    prev is not None and prev.kind == "LatePayment"):
                a.vouchers += int(d["amount"])
            case "SetVoucherStatus" if d.get("status") == "active":
                a.vouchers += int(d.get("amount") or 0)
            case "CardReversed":
                a.refunded += reversals.get(r.seq) or 0
        prev = r
    return a


# ====================================================================== the period
_TXN_COLUMNS = ("ref, operator, product_id, method, status, outcome, paid, credited, voucher,"
                " refunded")                       # never msisdn


def _compute(db: sqlite3.Connection, *, kiosk_id: str, currency: str, kind: str, number: int,
             from_seq: int, to_seq: int, from_ts: float | None, to_ts: float,
             closed_by: str | None, catalog: Catalog | None) -> Report:
    """The figures of events (from_seq, to_seq], read inside the caller's transaction.

    Every sum is taken from the events; the transactions table is only compared with them.
    A reference's earlier events (before the period) are read too, so that a payment
    reported again, a reversal asked for earlier or a note repeated by its OrphanNote
    across a period boundary is still recognised and never counted twice."""
    cur = currency
    period = _rows(db, "SELECT seq, ts, ref, kind, data FROM events WHERE seq > ? AND seq <= ?"
                       " ORDER BY seq", (from_seq, to_seq))
    if from_ts is None and period:
        from_ts = period[0].ts
    problems: list[tuple[int, str]] = []

    # Every event, up to the end of the period, of every reference the period touches.
    refs = sorted({r.ref for r in period if r.ref})
    by_ref: dict[str, list[_Row]] = defaultdict(list)
    for chunk in _chunks(refs):
        marks = ",".join("?" * len(chunk))
        for r in _rows(db, f"SELECT seq, ts, ref, kind, data FROM events WHERE ref IN ({marks})"
                           " AND seq <= ? ORDER BY seq", (*chunk, to_seq)):
            by_ref[r.ref or ""].append(r)
    close_seq: dict[str, int] = {}
    exists: set[str] = set()
    for ref, events in by_ref.items():
        for r in events:
            if r.kind == "ReferenceAllocated":
                exists.add(ref)
            elif r.kind == "CloseTransaction" and ref not in close_seq:
                close_seq[ref] = r.seq

    def open_at(ref: str | None, seq: int) -> bool:
        return bool(ref) and ref in exists and close_seq.get(ref or "", seq + 1) > seq

    # ---------------------------------------------------------------- cash
    box = _scan_box(db, cur, from_seq, period)
    box.as_of_seq = to_seq
    for seq, text in box.anomalies:
        if seq > from_seq:
            problems.append((seq, text))
    notes: Counter[int] = Counter()
    to_txn, orphan, in_doubt, power_up = Count(), Count(), Count(), Count()

    def plus(c: Count, v: int) -> Count:
        return Count(c.count + 1, c.amount + v)

    for r in period:
        d = r.data
        if r.kind == "NoteCredited":
            v = int(d["value"])
            notes[v] += 1
            if r.seq in box.paired_notes:
                orphan = plus(orphan, v)
            elif open_at(r.ref, r.seq):
                to_txn = plus(to_txn, v)
            else:
                last = " (the last event of the period: its OrphanNote may follow)" \
                    if r.seq == to_seq else ""
                problems.append((r.seq, f"note of {fmt(v, cur)} credited at seq {r.seq} to"
                                 f" {r.ref or 'no transaction'}, which was not open, and no"
                                 f" OrphanNote recorded it{last}"))
        elif r.kind == "OrphanNote":
            if r.seq not in box.paired_orphans:
                v = int(d["value"])
                notes[v] += 1
                orphan = plus(orphan, v)
        elif r.kind == "CashFault" and int(d.get("in_doubt") or 0) > 0:
            v = int(d["in_doubt"])
            notes[v] += 1
            in_doubt = plus(in_doubt, v)
            if open_at(r.ref, r.seq):
                to_txn = plus(to_txn, v)
            else:
                problems.append((r.seq, f"note of {fmt(v, cur)} in doubt at a cash fault"
                                 f" (seq {r.seq}) with no open transaction: in the box,"
                                 " credited to nobody"))
        elif r.kind == "NoteAtPowerUp" and d.get("where") == "stacker":
            power_up = plus(power_up, int(d.get("value") or 0))
    note_map = {v: n for v, n in sorted(notes.items())}
    cash = CashIn(note_map, sum(note_map.values()), sum(v * n for v, n in note_map.items()),
                  to_txn, orphan, in_doubt, power_up)

    # ---------------------------------------------------------------- QR, card, vouchers
    qr = card = card_rev = card_rev_failed = late_pay = Count()
    issued = held = activated = voided = redeemed = Count()
    reversal_amounts: dict[int, int | None] = {}
    for ref in {r.ref for r in period if r.kind in ("CardReversed", "CardReversalFailed")}:
        reversal_amounts.update(_reversal_amounts(by_ref[ref or ""]))
    for r in period:
        d = r.data
        ref = r.ref or ""
        match r.kind:
            case "QrPaid":
                key = str(d.get("provider_ref", ""))
                if not any(q.kind == "QrPaid" and q.seq < r.seq
                           and str(q.data.get("provider_ref", "")) == key
                           and q.data.get("ref", q.ref) == d.get("ref", r.ref)
                           for q in by_ref[ref]):
                    qr = plus(qr, int(d["amount"]))       # a repeated report is one payment
            case "CardApproved":
                card = plus(card, int(d["amount"]))
            case "CardReversed" | "CardReversalFailed":
                amount = reversal_amounts.get(r.seq)
                if amount is None:
                    approved = sum(int(q.data["amount"]) for q in by_ref[ref]
                                   if q.kind == "CardApproved" and q.seq < r.seq)
                    amount = approved
                    problems.append((r.seq, f"{r.kind} for {ref} at seq {r.seq} with no"
                                     " ReverseCard before it: counted as the approved"
                                     f" {fmt(approved, cur)}"))
                if r.kind == "CardReversed":
                    card_rev = plus(card_rev, amount)
                else:
                    card_rev_failed = plus(card_rev_failed, amount)
            case "LatePayment":
                if _new_late_payment(r, by_ref[ref]):
                    late_pay = plus(late_pay, int(d["amount"]))
            case "VoucherIssued":
                if d.get("held"):
                    held = plus(held, int(d["amount"]))
                else:
                    issued = plus(issued, int(d["amount"]))
            case "SetVoucherStatus":
                code = d.get("code")
                was = next((int(q.data["amount"]) for q in by_ref[ref]
                            if q.kind == "VoucherIssued" and q.data.get("code") == code), 0)
                if d.get("status") == "active":
                    activated = plus(activated, int(d["amount"]) if d.get("amount") is not None
                                     else was)
                elif d.get("status") == "void":
                    voided = plus(voided, was)
            case "VoucherRedeemed":
                redeemed = plus(redeemed, int(d["amount"]))

    # ---------------------------------------------------------------- transactions closed
    closes = [r for r in period if r.kind == "CloseTransaction"]
    closed_refs = sorted({str(r.data.get("ref") or r.ref or "") for r in closes})
    txn_rows: dict[str, sqlite3.Row] = {}
    for chunk in _chunks(closed_refs):
        marks = ",".join("?" * len(chunk))
        for row in db.execute(f"SELECT {_TXN_COLUMNS} FROM transactions WHERE ref IN ({marks})",
                              chunk):
            txn_rows[row["ref"]] = row
    outcome_acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    by_op: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_prod: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    credited_events = credited_table = 0
    for r in closes:
        d = r.data
        ref = str(d.get("ref") or r.ref or "")
        paid, credited = int(d["paid"]), int(d["credited"])
        voucher, refunded = int(d["voucher"]), int(d["refunded"])
        acc = outcome_acc[str(d["outcome"])]
        for i, v in enumerate((1, paid, credited, voucher, refunded)):
            acc[i] += v
        credited_events += credited
        row = txn_rows.get(ref)
        if credited and row is not None:
            for table, key in ((by_op, row["operator"]), (by_prod, row["product_id"])):
                table[key][0] += 1
                table[key][1] += credited
            if catalog is not None:
                try:
                    k = catalog.product(row["product_id"]).kind.value
                except KeyError:
                    k = "unknown"
                by_kind[k][0] += 1
                by_kind[k][1] += credited
        problems.extend((r.seq, p) for p in _check_close(r, row, by_ref[ref], cur))
        if row is not None:
            credited_table += int(row["credited"])
    if credited_events != credited_table:
        problems.append((to_seq, f"credited in the period: {fmt(credited_events, cur)} by the"
                         f" CloseTransaction records, {fmt(credited_table, cur)} by the"
                         " transactions table"))

    def groups(t: dict[str, list[int]]) -> tuple[Group, ...]:
        return tuple(Group(k, v[0], v[1]) for k, v in sorted(t.items()))

    topups = TopUps(
        count=sum(v[0] for v in by_op.values()), credited=credited_events,
        by_outcome=tuple(OutcomeGroup(k, *v) for k, v in sorted(outcome_acc.items())),
        by_operator=groups(by_op), by_product=groups(by_prod), by_kind=groups(by_kind))
    open_refs = tuple(r[0] for r in db.execute(
        "SELECT ref FROM transactions WHERE status='open' ORDER BY number"))
    txns = Transactions(opened=sum(1 for r in period if r.kind == "ReferenceAllocated"),
                        closed=len(closes), open_refs=open_refs)

    box_events = tuple(b for b in box.box_events if b.seq > from_seq)
    problems.sort(key=lambda p: p[0])
    return Report(
        kind=kind, number=number, kiosk_id=kiosk_id, currency=cur, from_seq=from_seq,
        to_seq=to_seq, from_ts=from_ts, to_ts=to_ts, closed_by=closed_by, cash=cash, qr=qr,
        card_approved=card, card_reversed=card_rev, card_reversal_failed=card_rev_failed,
        vouchers=Vouchers(issued, held, activated, voided, redeemed), late_payments=late_pay,
        topups=topups, transactions=txns, cash_box=box.box(), box_events=box_events,
        discrepancies=[text for _, text in problems])


def _check_close(r: _Row, row: sqlite3.Row | None, by_ref: list[_Row],
                 cur: str) -> list[str]:
    """A CloseTransaction against its events and its row in the transactions table."""
    d = r.data
    ref = str(d.get("ref") or r.ref or "")
    paid, credited = int(d["paid"]), int(d["credited"])
    voucher, refunded = int(d["voucher"]), int(d["refunded"])
    out: list[str] = []
    if paid != credited + voucher + refunded:
        out.append(f"{ref}: closed with paid {fmt(paid, cur)} != credited {fmt(credited, cur)}"
                   f" + voucher {fmt(voucher, cur)} + refunded {fmt(refunded, cur)}")
    a = _attribute(by_ref, r.seq, cur)
    from_events = a.cash + a.qr + a.card + a.voucher_paid
    if from_events != paid:
        out.append(f"{ref}: closed with paid {fmt(paid, cur)}, its events paid"
                   f" {fmt(from_events, cur)} (cash {fmt(a.cash, cur)}, QR {fmt(a.qr, cur)},"
                   f" card {fmt(a.card, cur)}, voucher {fmt(a.voucher_paid, cur)})")
    if a.vouchers != voucher:
        out.append(f"{ref}: closed with voucher {fmt(voucher, cur)}, its events issued"
                   f" {fmt(a.vouchers, cur)}")
    if a.refunded != refunded:
        out.append(f"{ref}: closed with refunded {fmt(refunded, cur)}, its card reversals"
                   f" {fmt(a.refunded, cur)}")
    if row is None:
        out.append(f"{ref}: closed in the journal, missing from the transactions table")
        return out
    if row["status"] != "closed" or row["outcome"] != d["outcome"]:
        out.append(f"{ref}: transactions table says {row['status']}/{row['outcome']},"
                   f" the journal closed it {d['outcome']}")
    for name, value in (("paid", paid), ("credited", credited), ("voucher", voucher),
                        ("refunded", refunded)):
        if int(row[name]) != value:
            out.append(f"{ref}: {name} {fmt(int(row[name]), cur)} in the transactions table,"
                       f" {fmt(value, cur)} in its CloseTransaction")
    return out


# ====================================================================== public API
def x_report(journal: Journal, now: float | None = None,
             catalog: Catalog | None = None) -> Report:
    """The current period so far. Writes nothing (not even the periods table)."""
    with _Read(journal.db) as db:
        last = _last_period(db)
        return _compute(
            db, kiosk_id=journal.kiosk_id, currency=journal.currency, kind="X",
            number=(last.number + 1) if last else 1,
            from_seq=last.closed_seq if last else 0, to_seq=_max_seq(db),
            from_ts=last.closed_ts if last else None,
            to_ts=time.time() if now is None else now, closed_by=None, catalog=catalog)


def z_report(journal: Journal, by: str, now: float | None = None,
             catalog: Catalog | None = None) -> Report:
    """Close the current period: the same figures as an X, stored with the next number.

    One `BEGIN IMMEDIATE` holds the journal's write lock from reading the last period to
    storing this one, so no event can be appended between the figures and the seq that
    ends the period (it would belong to neither), and two Z reports cannot take one number.
    An empty period is allowed (all zeros): a Z is also a shift's proof that nothing moved.
    """
    if not by or not by.strip():
        raise ReportError("a Z report needs the name of who closes it")
    db = journal.db
    if db.in_transaction:
        raise ReportError("a Z report cannot run inside another transaction")
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(PERIODS_SCHEMA)
        last = _last_period(db)
        rep = _compute(
            db, kiosk_id=journal.kiosk_id, currency=journal.currency, kind="Z",
            number=(last.number + 1) if last else 1,
            from_seq=last.closed_seq if last else 0, to_seq=_max_seq(db),
            from_ts=last.closed_ts if last else None,
            to_ts=time.time() if now is None else now, closed_by=by.strip(), catalog=catalog)
        db.execute(
            "INSERT INTO report_periods (number, opened_seq, closed_seq, opened_ts, closed_ts,"
            " by, totals) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rep.number, rep.from_seq, rep.to_seq, rep.from_ts, rep.to_ts, rep.closed_by,
             json.dumps(rep.to_dict(), sort_keys=True)))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return rep


def history(journal: Journal, limit: int = 20) -> list[Report]:
    """The stored Z reports, newest first."""
    with _Read(journal.db) as db:
        if not _has_periods(db):
            return []
        return [Report.from_dict(json.loads(r[0])) for r in db.execute(
            "SELECT totals FROM report_periods ORDER BY number DESC LIMIT ?", (limit,))]


def report(journal: Journal, number: int) -> Report | None:
    """Z report `number` as it was stored, None if there is none."""
    with _Read(journal.db) as db:
        if not _has_periods(db):
            return None
        r = db.execute("SELECT totals FROM report_periods WHERE number=?", (number,)).fetchone()
        return Report.from_dict(json.loads(r[0])) if r else None


# The parts of a report that are the period's own figures (the box "now" and the open
# references are as of when it was made, so a later recomputation differs, rightly).
_PERIOD_FIGURES = ("from_seq", "to_seq", "cash", "qr", "card_approved", "card_reversed",
                   "card_reversal_failed", "vouchers", "late_payments", "box_events")


def check(rep: Report, journal: Journal, catalog: Catalog | None = None) -> list[str]:
    """Recompute a report's period from the journal: every figure that differs from the
    report (a stored Z edited, or a journal changed after it), then the period's
    discrepancies as they are now. [] when the report and the journal agree."""
    with _Read(journal.db) as db:
        fresh = _compute(
            db, kiosk_id=rep.kiosk_id, currency=rep.currency, kind=rep.kind,
            number=rep.number, from_seq=rep.from_seq, to_seq=rep.to_seq, from_ts=rep.from_ts,
            to_ts=rep.to_ts, closed_by=rep.closed_by, catalog=catalog)
    out: list[str] = []
    a, b = rep.to_dict(), fresh.to_dict()
    for name in _PERIOD_FIGURES:
        if a[name] != b[name]:
            out.append(f"{name}: report {json.dumps(a[name], sort_keys=True)},"
                       f" journal {json.dumps(b[name], sort_keys=True)}")
    ta, tb = a["topups"], b["topups"]
    for name in ("count", "credited", "by_outcome", "by_operator", "by_product"):
        if ta[name] != tb[name]:
            out.append(f"topups.{name}: report {json.dumps(ta[name])}, journal"
                       f" {json.dumps(tb[name])}")
    for name in ("opened", "closed"):
        if a["transactions"][name] != b["transactions"][name]:
            out.append(f"transactions.{name}: report {a['transactions'][name]}, journal"
                       f" {b['transactions'][name]}")
    return out + fresh.discrepancies


# ====================================================================== printing
def _when(ts: float | None, tz: str) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(ZoneInfo(tz)).strftime(
        "%Y-%m-%d %H:%M:%S")


def _lr(left: str, right: str, width: int = WIDTH) -> list[str]:
    """`left` and `right` on one line of `width`, or on two when they do not fit."""
    if len(left) + 1 + len(right) <= width:
        return [left + " " * (width - len(left) - len(right)) + right]
    return [left[:width], right.rjust(width)[-width:]]


def _wrap(text: str, indent: str = "  ", width: int = WIDTH) -> list[str]:
    return textwrap.wrap(text, width, initial_indent="- ", subsequent_indent=indent,
                         break_long_words=True, break_on_hyphens=False) or ["-"]


def format_report(rep: Report, tz: str = "UTC", width: int = WIDTH) -> str:
    """The report as text for the 42-column receipt printer and a terminal (ASCII only:
    printers' built-in fonts have nothing else)."""
    cur = rep.currency

    def money(v: int) -> str:
        return fmt(v, cur)

    def row(label: str, c: Count | None = None, amount: int | None = None) -> list[str]:
        right = ""
        if c is not None:
            right = f"{c.count:>4}  {money(c.amount):>16}"
        elif amount is not None:
            right = money(amount)
        return _lr(label, right, width)

    def notes(m: dict[int, int]) -> list[str]:
        return [ln for v, n in sorted(m.items())
                for ln in _lr(f"  {money(v)} x {n}", money(v * n), width)]

    rule, double = "-" * width, "=" * width
    title = f"Z REPORT #{rep.number}" if rep.closed else "X REPORT (not closed)"
    out = [double, title.center(width).rstrip(), double]
    out += _lr("Kiosk", rep.kiosk_id, width)
    out += _lr("From", _when(rep.from_ts, tz), width)
    out += _lr("To", _when(rep.to_ts, tz), width)
    out += _lr("Time zone", tz, width)
    out += _lr("Journal seq", f"{rep.from_seq + 1}..{rep.to_seq}"
               if rep.to_seq > rep.from_seq else "(no events)", width)
    if rep.closed:
        out += _lr("Closed by", rep.closed_by or "-", width)
    else:
        out += _lr("Next Z", f"#{rep.number}", width)

    c = rep.cash
    out += [rule, "CASH IN (notes)"]
    out += notes(c.notes)
    out += row("  Total", Count(c.count, c.total))
    if c.orphan.count:
        out += row("  of which orphan", c.orphan)
    if c.in_doubt.count:
        out += row("  of which in doubt", c.in_doubt)
    if c.at_power_up.count:
        out += row("  power-up notes*", c.at_power_up)
        out += ["  * in the stacker, credited to nobody,", "    not in the total"]

    out += [rule, "PAYMENTS"]
    out += row("QR wallet", rep.qr)
    out += row("Card approved", rep.card_approved)
    out += row("Card reversed", rep.card_reversed)
    if rep.card_reversal_failed.count:
        out += row("Card reversal failed", rep.card_reversal_failed)
    out += row("Money in (net)", amount=rep.money_in)
    out += row("Late payments", rep.late_payments)

    v = rep.vouchers
    out += [rule, "VOUCHERS"]
    out += row("Issued", v.issued)
    out += row("Held (pending)", v.held)
    if v.activated.count or v.voided.count:
        out += row("Held -> valid", v.activated)
        out += row("Held -> void", v.voided)
    out += row("Redeemed", v.redeemed)

    t = rep.topups
    out += [rule, "TOP-UPS"]
    out += row("Credited", Count(t.count, t.credited))
    out += ["Closed, by outcome (count, paid):"]
    for g in t.by_outcome:
        out += row(f"  {g.outcome}", Count(g.count, g.paid))
    for name, gs in (("By operator:", t.by_operator), ("By product:", t.by_product),
                     ("By kind:", t.by_kind)):
        if gs:
            out += [name]
            for grp in gs:
                out += row(f"  {grp.key}", Count(grp.count, grp.amount))

    x = rep.transactions
    out += [rule, "TRANSACTIONS"]
    out += _lr("Opened / closed", f"{x.opened} / {x.closed}", width)
    out += _lr("Still open", str(len(x.open_refs)), width)
    out += [f"  {ref}" for ref in x.open_refs]

    b = rep.cash_box
    out += [rule, "CASH BOX NOW"]
    out += _lr("  since", _when(b.since_ts, tz) if b.since_seq else "journal start", width)
    out += notes(b.notes)
    out += row("  Total", Count(b.count, b.total))
    if b.at_power_up.count:
        out += row("  + power-up notes*", b.at_power_up)
        out += ["  * in the stacker, credited to nobody"]
    if b.removed_pending:
        out += ["  ** BOX REMOVED - NO BOX IN **",
                f"  by {b.removed_by} at {_when(b.removed_ts, tz)}",
                "  cash payments must stay disabled"]
    if rep.box_events:
        out += ["Box changes in the period:"]
        for e in rep.box_events:
            out += _lr(f"  {e.kind} by {e.by}", _when(e.ts, tz), width)
            if e.kind == "removed":
                out += _lr("    expected", money(e.expected or 0), width)
                out += _lr("    counted", "not entered" if e.counted is None
                           else money(e.counted), width)
                if e.difference is not None:
                    sign = "+" if e.difference > 0 else ""
                    label = "    difference" + ("" if e.difference == 0 else
                                                " (over)" if e.difference > 0 else " (short)")
                    out += _lr(label, sign + money(e.difference), width)
                if e.power_up_notes:
                    out += [f"    + {e.power_up_notes} note(s) found at power-up"]

    out += [rule]
    if rep.discrepancies:
        out += [f"DISCREPANCIES ({len(rep.discrepancies)})"]
        for d in rep.discrepancies:
            out += _wrap(d, width=width)
    else:
        out += ["Discrepancies: none"]
    out += [double]
    return "\n".join(out) + "\n"
