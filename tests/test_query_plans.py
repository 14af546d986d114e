"""Every query of the kiosk's periodic and report paths uses an index: no full SCAN of the
journal's growing tables (events, postings, transactions, vouchers, ...).

The statements are not listed by hand: the test runs the real code (writes of every money
record, which post to the ledger; X, Z, check, history; the cash box; the technician's
unresolved list) with SQLite's trace callback on, then asks `EXPLAIN QUERY PLAN` for each
statement it saw. A SCAN is allowed only of the ledger's small tables (totals by kind,
the cash box by note value), of the partial index of open transactions (it holds only
those), and of report_periods walked backwards under a LIMIT.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk import books, reports
from kiosk import events as ev
from kiosk.journal import Journal
from tests.test_reports import CATALOG, Kiosk, fast, scenario

GROWING = ("events", "postings", "transactions", "vouchers", "issues", "box_events",
           "ledger_keys", "period_totals", "report_periods")
_SCAN = re.compile(r"\bSCAN (\w+)( USING (?:COVERING )?INDEX (\w+))?")
_SKIP = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|PRAGMA|CREATE|DROP|SAVEPOINT|RELEASE)\b", re.I)


def _full_scans(db: object, sql: str) -> list[str]:
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]  # type: ignore[attr-defined]
    bad = []
    for line in plan:
        m = _SCAN.search(line)
        if not m:
            continue
        table, index = m.group(1), m.group(3)
        if table not in GROWING:
            continue                    # totals, cash_box, box_state: a few rows by design
        if index == "transactions_open":
            continue                    # partial: only the open transactions
        if table == "report_periods" and "ORDER BY number DESC LIMIT" in sql:
            continue                    # the newest rows first, stops at the limit
        bad.append(line)
    return bad


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[Journal, list[str]]]:
    j = fast(Journal(tmp_path / "journal.sqlite3", "K0001", "PHP"))
    seen: list[str] = []
    j.db.set_trace_callback(seen.append)
    yield j, seen
    j.db.set_trace_callback(None)
    j.close()


def _exercise(j: Journal) -> None:
    old, keyed = Kiosk(j), Kiosk(j, keyed=True)
    keyed._codes = iter(range(2000_0000_0000_0001, 2000_0000_0001_0000))  # type: ignore[assignment]
    scenario(old)
    reports.z_report(j, "m1", catalog=CATALOG)
    scenario(keyed)
    keyed.cash(2000, [2000], "pending")
    keyed.cash(4000, [5000], "pending")
    keyed.resolve_pending(success=True)
    keyed.qr_pay(3000, repeat=True)
    keyed.qr_late(3000, repeat=True)
    keyed.a(None, ev.NoteAtPowerUp("stacker", 5000))
    keyed.a(None, ev.NoteInDoubt(2000, "e9:1", "power_loss"))
    ref = keyed.open("qr", 2000)
    keyed.a(ref, ev.RecoveryStarted(ref, "pay_qr", 0))
    keyed.remove_box(delta=-500)
    keyed.orphan(2000)                                  # while the box is out
    keyed.insert_box()
    keyed.insert_box()                                  # no removal journaled


def test_no_full_scan_on_the_periodic_paths(traced: tuple[Journal, list[str]]) -> None:
    j, seen = traced
    _exercise(j)                                        # every write posts to the ledger
    x = reports.x_report(j, catalog=CATALOG)
    z = reports.z_report(j, "m2", catalog=CATALOG)
    reports.check(z, j, catalog=CATALOG)                # O(period), but by the seq key
    reports.check(x, j)
    reports.history(j, 10)
    reports.report(j, 1)
    reports.cash_box(j)
    books.cash_box_removed(j.db)
    for row in j.unresolved() + j.recovered(50):        # kiosk journal list --unresolved
        j.events(row.ref)
    statements = sorted({s for s in seen if not _SKIP.match(s)})
    assert len(statements) > 40                         # the trace did see the work
    problems = {s: bad for s in statements if (bad := _full_scans(j.db, s))}
    assert problems == {}


def test_the_ledger_queries_use_the_expected_indexes(tmp_path: Path) -> None:
    """The ones that matter most, by name: a regression shows which index went missing."""
    j = fast(Journal(tmp_path / "j.sqlite3"))
    try:
        def plan(sql: str, *args: object) -> str:
            return " / ".join(r[3] for r in j.db.execute("EXPLAIN QUERY PLAN " + sql, args))

        assert "USING PRIMARY KEY (seq>? AND seq<?)" in plan(reports._RANGE, 0, 1)
        assert "USING INDEX postings_ref (ref=? AND seq<?)" in plan(books._REF_SUMS, "r", 9)
        # By the transaction's own events (events_kind would walk back through every
        # TopUp or ReverseCard of the journal when the one asked for is old or missing).
        for sql in (books._ASKED, books._PREVIOUS_NOTE):
            assert "USING INDEX events_ref (ref=? AND rowid<?)" in plan(
                sql, *(("r", 9, "TopUp") if sql.count("?") == 3 else ("r", 9)))
        assert "transactions_open" in plan(
            "SELECT ref FROM transactions WHERE status = 'open' ORDER BY number")
        assert "SEARCH events USING INDEX events_kind (kind=?)" in plan(
            "SELECT * FROM transactions WHERE ref IN (SELECT ref FROM events"
            " WHERE kind = 'RecoveryStarted') ORDER BY number DESC LIMIT ?", 50)
    finally:
        j.close()
