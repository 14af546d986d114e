"""X and Z reports: sums over the postings ledger (kiosk/ledger.py).

Every money fact the journal writes is posted, in the same SQL transaction, as typed
postings, with running totals (`totals`: cumulative count and amount by kind, note value
and detail). A report reads a few rows, whatever the size of the history:

  X  totals now - the totals the last Z closed at (`period_totals`), in one read
     transaction. Writes nothing.
  Z  the same figures from a read transaction (WAL: writers are not blocked), then a
     short BEGIN IMMEDIATE that only stores the period (`report_periods`, and the totals
     it closed at). The period is exactly the events with seq <= the max seq of that read:
     anything written meanwhile belongs to the next period. If another Z closed a period
     in between, the Z is made again from a fresh read.

Period n covers the events with seq in (closed_seq of n-1, closed_seq of n]; nothing is
deleted, the counters "reset" because the next X subtracts the totals the Z closed at.

Discrepancies are found when facts are posted (books.ISSUES: a close that disagrees with
its facts, a note in doubt, a note while the box is out, a box inserted with no removal)
and listed by the report of their period. `check` recomputes a report the slow way (GROUP
BY over the period's postings, by their (seq) key) and cross-checks the transactions
table: O(period), for audits and tests, never on the kiosk's periodic path.

The cash box: notes (credited, orphan, in doubt) since the last CashBoxInserted, kept by
the ledger (`cash_box`, `box_state`). Notes found in the stacker at power-up are shown
next to the box total, not in it. Money is int minor units; no phone number is read.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from . import books, ledger
from .ledger import Kind as K
from .money import fmt
from .report_model import (
    BoxEvent,
    CashBox,
    CashIn,
    Count,
    Group,
    OutcomeGroup,
    Report,
    TopUps,
    Transactions,
    Vouchers,
)
from .report_text import WIDTH, format_report

if TYPE_CHECKING:
    from .catalog import Catalog
    from .journal import Journal

__all__ = ["WIDTH", "BoxEvent", "CashBox", "CashIn", "Count", "Group", "OutcomeGroup",
           "Report", "ReportError", "TopUps", "Transactions", "Vouchers", "cash_box", "check",
           "format_report", "history", "report", "x_report", "z_report"]

_Z_ATTEMPTS = 5


class ReportError(Exception):
    """A report that cannot be made (e.g. a Z asked for inside another transaction)."""


# ====================================================================== reading the ledger
Totals = dict[tuple[str, int, str], tuple[int, int]]     # (kind, denom, dim) -> (count, amount)

_TOTALS_NOW = "SELECT kind, denom, dim, count, amount FROM totals"
_TOTALS_AT_Z = "SELECT kind, denom, dim, count, amount FROM period_totals WHERE number = ?"
_RANGE = ("SELECT kind, denom, method, SUM(CASE WHEN amount < 0 THEN -1 ELSE 1 END),"
          " SUM(amount) FROM postings WHERE seq > ? AND seq <= ? GROUP BY kind, denom, method")
_RANGE_CREDITED = (
    "SELECT COALESCE(t.operator, ''), COALESCE(t.product_id, ''), COUNT(*), SUM(p.amount)"
    " FROM postings p LEFT JOIN transactions t ON t.ref = p.ref WHERE p.kind = 'credited'"
    " AND p.seq > ? AND p.seq <= ? GROUP BY 1, 2")


def _totals(db: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> Totals:
    return {(str(k), int(d), str(m)): (int(n), int(a)) for k, d, m, n, a in db.execute(sql, args)}


def _minus(a: Totals, b: Totals) -> Totals:
    zero = (0, 0)
    return {k: (a.get(k, zero)[0] - b.get(k, zero)[0], a.get(k, zero)[1] - b.get(k, zero)[1])
            for k in a.keys() | b.keys()}


def _range_totals(db: sqlite3.Connection, lo: int, hi: int) -> Totals:
    """The period's totals summed from its postings (what the running totals must equal)."""
    t = _totals(db, _RANGE, (lo, hi))
    for op, product, n, a in db.execute(_RANGE_CREDITED, (lo, hi)):
        for key in (("credited@operator", 0, op), ("credited@product", 0, product)):
            old = t.get(key, (0, 0))
            t[key] = (old[0] + int(n), old[1] + int(a))
    return t


def _figures(t: Totals, catalog: Catalog | None) -> dict[str, Any]:
    """Report fields from a period's totals (kinds: kiosk/ledger.py)."""
    by: dict[str, list[tuple[int, str, int, int]]] = defaultdict(list)
    for (k, d, m), (n, a) in t.items():
        by[k].append((d, m, n, a))

    def c(*kinds: K) -> Count:
        rows = [r for k in kinds for r in by[k.value]]
        return Count(sum(r[2] for r in rows), sum(r[3] for r in rows))

    def groups(kind: str) -> tuple[Group, ...]:
        return tuple(Group(m, n, a) for _d, m, n, a in sorted(by[kind], key=lambda r: r[1])
                     if n or a)

    notes: dict[int, int] = defaultdict(int)
    for k in ledger.NOTES:
        for d, _m, n, _a in by[k.value]:
            notes[d] += n
    note_map = {v: n for v, n in sorted(notes.items()) if n}
    box_in = c(*ledger.NOTES)
    cash = CashIn(note_map, box_in.count, box_in.amount, c(K.CASH_IN, K.NOTE_IN_DOUBT),
                  c(K.ORPHAN_NOTE), c(K.NOTE_IN_DOUBT), c(K.NOTE_AT_POWER_UP))

    split: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for i, kind in enumerate((K.CLOSED, K.CLOSED_CREDITED, K.CLOSED_VOUCHER, K.CLOSED_REFUNDED)):
        for _d, outcome, n, a in by[kind.value]:
            if i == 0:
                split[outcome][0] += n
            split[outcome][i + 1] += a
    by_product = groups("credited@product")
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for g in by_product:
        if catalog is None:
            break
        try:
            name = catalog.product(g.key).kind.value
        except KeyError:
            name = "unknown"
        kinds[name][0] += g.count
        kinds[name][1] += g.amount
    credited = c(K.CREDITED)
    return {
        "cash": cash, "qr": c(K.WALLET_IN), "card_approved": c(K.CARD_IN),
        "card_reversed": c(K.REVERSED), "card_reversal_failed": c(K.REVERSAL_FAILED),
        "late_payments": c(K.LATE_PAYMENT),
        "vouchers": Vouchers(c(K.VOUCHER_ISSUED), c(K.VOUCHER_HELD), c(K.VOUCHER_ACTIVATED),
                             c(K.VOIDED), c(K.VOUCHER_REDEEMED)),
        "topups": TopUps(
            credited.count, credited.amount,
            tuple(OutcomeGroup(o, *v) for o, v in sorted(split.items()) if any(v)),
            groups("credited@operator"), by_product,
            tuple(Group(k, n, a) for k, (n, a) in sorted(kinds.items()))),
        "opened": c(K.OPENED).count, "closed": c(K.CLOSED).count,
    }


class _Period(NamedTuple):
    number: int
    closed_seq: int
    closed_ts: float


def _last_period(db: sqlite3.Connection) -> _Period | None:
    r = db.execute("SELECT number, closed_seq, closed_ts FROM report_periods"
                   " ORDER BY number DESC LIMIT 1").fetchone()
    return _Period(int(r[0]), int(r[1]), float(r[2])) if r else None


def _max_seq(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])


class _Read:
    """One read transaction: every SELECT of a report sees the same snapshot of the
    journal (WAL: a snapshot does not block writers)."""

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


def _box(db: sqlite3.Connection, currency: str, as_of: int) -> CashBox:
    notes = {int(d): int(n) for d, n in db.execute(
        "SELECT denom, count FROM cash_box WHERE count != 0 ORDER BY denom")}
    s = db.execute("SELECT since_seq, since_ts, removed_seq, removed_ts, removed_by,"
                   " power_up_count, power_up_amount FROM box_state WHERE id = 1").fetchone()
    return CashBox(currency=currency, notes=notes, count=sum(notes.values()),
                   total=sum(v * n for v, n in notes.items()), since_seq=int(s[0]),
                   since_ts=s[1], as_of_seq=as_of, removed_pending=s[2] is not None,
                   removed_by=s[4], removed_ts=s[3], at_power_up=Count(int(s[5]), int(s[6])))


def _box_events(db: sqlite3.Connection, lo: int, hi: int) -> tuple[BoxEvent, ...]:
    return tuple(
        BoxEvent(k, int(seq), float(ts), by, counted, expected,
                 None if counted is None else int(counted) - int(expected or 0), int(p))
        for seq, ts, k, by, counted, expected, p in db.execute(
            "SELECT seq, ts, kind, by, counted, expected, power_up_notes FROM box_events"
            " WHERE seq > ? AND seq <= ? ORDER BY seq", (lo, hi)))


def _issues(db: sqlite3.Connection, lo: int, hi: int, currency: str) -> list[str]:
    return [books.describe(code, int(seq), ref, int(a), int(b), detail,
                            lambda v: fmt(v, currency))
            for seq, code, ref, a, b, detail in db.execute(
                "SELECT seq, code, ref, a, b, detail FROM issues WHERE seq > ? AND seq <= ?"
                " ORDER BY seq, n", (lo, hi))]


def _make(db: sqlite3.Connection, journal: Journal, kind: str, last: _Period | None,
          now: float | None, closed_by: str | None,
          catalog: Catalog | None) -> tuple[Report, Totals]:
    """The current period's report, and the cumulative totals it ends at (one snapshot)."""
    if books.backfilling(db):
        raise ReportError("the ledger is still being built from the journal: try again")
    to_seq = _max_seq(db)
    cumulative = _totals(db, _TOTALS_NOW)
    base = _totals(db, _TOTALS_AT_Z, (last.number,)) if last else {}
    f = _figures(_minus(cumulative, base), catalog)
    from_seq = last.closed_seq if last else 0
    if last:
        from_ts: float | None = last.closed_ts
    else:
        first = db.execute("SELECT ts FROM events WHERE seq > 0 ORDER BY seq LIMIT 1").fetchone()
        from_ts = float(first[0]) if first else None
    open_refs = tuple(r[0] for r in db.execute(
        "SELECT ref FROM transactions WHERE status = 'open' ORDER BY number"))
    rep = Report(
        kind=kind, number=(last.number + 1) if last else 1, kiosk_id=journal.kiosk_id,
        currency=journal.currency, from_seq=from_seq, to_seq=to_seq, from_ts=from_ts,
        to_ts=time.time() if now is None else now, closed_by=closed_by,
        transactions=Transactions(f.pop("opened"), f.pop("closed"), open_refs),
        cash_box=_box(db, journal.currency, to_seq),
        box_events=_box_events(db, from_seq, to_seq),
        discrepancies=_issues(db, from_seq, to_seq, journal.currency), **f)
    return rep, cumulative


# ====================================================================== public API
def x_report(journal: Journal, now: float | None = None,
             catalog: Catalog | None = None) -> Report:
    """The current period so far. Writes nothing."""
    with _Read(journal.db) as db:
        return _make(db, journal, "X", _last_period(db), now, None, catalog)[0]


def z_report(journal: Journal, by: str, now: float | None = None,
             catalog: Catalog | None = None) -> Report:
    """Close the current period: the figures of an X, stored with the next number. The
    write lock is held only to insert the period's rows (see the module docstring). An
    empty period is allowed (all zeros): a Z is also a shift's proof that nothing moved."""
    if not by or not by.strip():
        raise ReportError("a Z report needs the name of who closes it")
    db = journal.db
    if db.in_transaction:
        raise ReportError("a Z report cannot run inside another transaction")
    for _ in range(_Z_ATTEMPTS):
        with _Read(db):
            last = _last_period(db)
            rep, cumulative = _make(db, journal, "Z", last, now, by.strip(), catalog)
        db.execute("BEGIN IMMEDIATE")
        try:
            if _last_period(db) != last:
                db.execute("ROLLBACK")          # another Z closed a period meanwhile
                continue
            db.execute(
                "INSERT INTO report_periods (number, opened_seq, closed_seq, opened_ts,"
                " closed_ts, by, totals) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (rep.number, rep.from_seq, rep.to_seq, rep.from_ts, rep.to_ts, rep.closed_by,
                 json.dumps(rep.to_dict(), sort_keys=True)))
            db.executemany(
                "INSERT INTO period_totals (number, kind, denom, dim, count, amount)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(rep.number, *key, n, a) for key, (n, a) in cumulative.items()])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return rep
    raise ReportError("other Z reports kept closing the period: try again")


def history(journal: Journal, limit: int = 20) -> list[Report]:
    """The stored Z reports, newest first."""
    return [Report.from_dict(json.loads(r[0])) for r in journal.db.execute(
        "SELECT totals FROM report_periods ORDER BY number DESC LIMIT ?", (limit,))]


def report(journal: Journal, number: int) -> Report | None:
    """Z report `number` as it was stored, None if there is none."""
    r = journal.db.execute("SELECT totals FROM report_periods WHERE number = ?",
                           (number,)).fetchone()
    return Report.from_dict(json.loads(r[0])) if r else None


def cash_box(journal: Journal) -> CashBox:
    """The notes in the cash box now, by the journal."""
    with _Read(journal.db) as db:
        return _box(db, journal.currency, _max_seq(db))


# The parts of a report that are the period's own figures (the box "now" and the open
# references are as of when it was made, so a later recomputation differs, rightly).
_PERIOD_FIGURES = ("cash", "qr", "card_approved", "card_reversed", "card_reversal_failed",
                   "vouchers", "late_payments", "box_events")


def check(rep: Report, journal: Journal, catalog: Catalog | None = None) -> list[str]:
    """Recompute a report's period from its postings (GROUP BY over its seq range) and list
    every figure that differs from the report (a stored Z edited, running totals that
    drifted), then every transaction closed in the period whose row in the transactions
    table disagrees with its CloseTransaction. [] when all agree. O(period)."""
    with _Read(journal.db) as db:
        f = _figures(_range_totals(db, rep.from_seq, rep.to_seq), catalog)
        fresh = replace(rep, box_events=_box_events(db, rep.from_seq, rep.to_seq),
                        transactions=Transactions(f.pop("opened"), f.pop("closed"),
                                                  rep.transactions.open_refs), **f)
        table = _table_check(db, rep.from_seq, rep.to_seq, rep.currency)
    out: list[str] = []
    a, b = rep.to_dict(), fresh.to_dict()
    for name in _PERIOD_FIGURES:
        if a[name] != b[name]:
            out.append(f"{name}: report {json.dumps(a[name], sort_keys=True)},"
                       f" journal {json.dumps(b[name], sort_keys=True)}")
    for part, names in (("topups", ("count", "credited", "by_outcome", "by_operator",
                                    "by_product")), ("transactions", ("opened", "closed"))):
        for name in names:
            if a[part][name] != b[part][name]:
                out.append(f"{part}.{name}: report {json.dumps(a[part][name])}, journal"
                           f" {json.dumps(b[part][name])}")
    return out + table


def _table_check(db: sqlite3.Connection, lo: int, hi: int, cur: str) -> list[str]:
    """Transactions closed in (lo, hi]: their CloseTransaction (the ledger's closed*
    postings) against their row in the transactions table."""
    said: dict[str, dict[str, Any]] = {}
    rows: dict[str, sqlite3.Row | tuple[Any, ...]] = {}
    for ref, kind, amount, outcome, *row in db.execute(
            "SELECT p.ref, p.kind, p.amount, p.method, t.status, t.outcome, t.paid, t.credited,"
            " t.voucher, t.refunded FROM postings p LEFT JOIN transactions t ON t.ref = p.ref"
            " WHERE p.seq > ? AND p.seq <= ? AND p.kind IN ('closed', 'closed_credited',"
            " 'closed_voucher', 'closed_refunded') ORDER BY p.seq", (lo, hi)):
        d = said.setdefault(ref, {"outcome": outcome, "paid": 0, "credited": 0, "voucher": 0,
                                  "refunded": 0})
        d["paid" if kind == "closed" else kind[len("closed_"):]] += int(amount)
        rows[ref] = tuple(row)
    out: list[str] = []
    credited_said = credited_table = 0
    for ref, d in said.items():
        status, outcome, *money = rows[ref]
        credited_said += d["credited"]
        if status is None:
            out.append(f"{ref}: closed in the journal, missing from the transactions table")
            continue
        credited_table += int(money[1])
        if status != "closed" or outcome != d["outcome"]:
            out.append(f"{ref}: transactions table says {status}/{outcome}, the journal"
                       f" closed it {d['outcome']}")
        for name, value in zip(("paid", "credited", "voucher", "refunded"), money, strict=True):
            if int(value) != d[name]:
                out.append(f"{ref}: {name} {fmt(int(value), cur)} in the transactions table,"
                           f" {fmt(d[name], cur)} in its CloseTransaction")
    if credited_said != credited_table:
        out.append(f"credited in the period: {fmt(credited_said, cur)} by the CloseTransaction"
                   f" records, {fmt(credited_table, cur)} by the transactions table")
    return out
