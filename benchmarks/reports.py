"""X/Z reports and the kiosk's periodic journal queries at 10,000 and 100,000 transactions.

    .venv/bin/python benchmarks/reports.py [--sizes 10000 100000] [--runs 5] [--dir DIR]
                                           [--baseline REV] [--smoke]

For each size a journal is generated quickly: one big SQL transaction through the real
`Journal` (and so the ledger's postings and running totals), synchronous=OFF; a mix of cash
(1-3 notes, some change), card, QR, failures (voucher, card reversed), a late QR payment,
orphan notes, box removals, 3 transactions left open and 5 resumed by a restart. The
figures are about reading it:

  X          `report x` with no Z yet (the period is the whole history), and right after a Z
  Z          `report z` on the whole history (its period row is deleted after each run, so
             every run closes the same period)
  lock       the longest wait of a writer process for the write lock while a Z runs (it
             loops BEGIN IMMEDIATE / INSERT / COMMIT into a scratch table, 1 ms apart)
  memory     peak of Python allocations during one report (tracemalloc), and the growth of
             the child process's peak RSS (ru_maxrss) over its level before the report
  periodic   `journal list --unresolved` (kiosk.cli), the cash-box check (ledger, one row)

Each report runs in a fresh child process (cold Python caches, warm OS page cache); times
are medians of --runs. `--baseline REV` measures the reports module of git revision REV
(e.g. HEAD before this change) on the same journals, for the before/after ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import multiprocessing as mp
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiosk import books  # noqa: E402
from kiosk import events as ev  # noqa: E402
from kiosk.engine import Txn  # noqa: E402
from kiosk.journal import Journal  # noqa: E402

MSISDN = "09171234567"


# ====================================================================== the journal
class _OneTx:
    """Journal._tx replaced for the generation: everything in the caller's transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *_: Any) -> None:
        pass


def generate(path: Path, n: int) -> None:
    j = Journal(path)
    j.db.execute("PRAGMA synchronous=OFF")
    j._tx = lambda: _OneTx(j.db)  # type: ignore[method-assign]
    j.db.execute("BEGIN IMMEDIATE")
    a, code, note = j.append, [10**15], [0]

    def voucher(ref: str, amount: int, held: bool = False) -> str:
        code[0] += 1
        a(ref, ev.IssueVoucher(ref, amount, "change", held))
        a(ref, ev.VoucherIssued(ref, str(code[0]), amount, held))
        return str(code[0])

    def open_(method: str, amount: int) -> str:
        return j.open_transaction(Txn(msisdn=MSISDN, operator="globe",
                                      product_id="globe-load", amount=amount, method=method))

    for i in range(n):
        kind = i % 20
        amount = (2000, 5000, 3000, 10000)[i % 4]
        if i % 500 == 250:
            note[0] += 1
            a(None, ev.NoteCredited(5000, f"b0:{note[0]}"))          # an orphan
            a(None, ev.OrphanNote(5000))
        if i % 5000 == 4999 and i < n // 2:                             # none lately
            a(None, ev.CashBoxRemoved("tech1", None))
            a(None, ev.CashBoxInserted("tech1"))
        if kind < 12:                                                  # cash
            ref = open_("cash", amount)
            paid = 0
            for v in (2000, 5000, 10000):
                note[0] += 1
                k = f"b0:{note[0]}"
                a(ref, ev.NoteEscrowed(v, k))
                a(ref, ev.StackNote(v, k))
                a(ref, ev.NoteCredited(v, k))
                paid += v
                if paid >= amount:
                    break
            a(ref, ev.TopUp(ref, MSISDN, "globe", "globe-load", amount))
            if kind == 11:
                a(ref, ev.TopUpFailed(ref, "backend.rejected"))
                voucher(ref, paid)
                a(ref, ev.CloseTransaction(ref, "failed_voucher", paid, 0, paid, 0))
                continue
            a(ref, ev.TopUpSucceeded(ref, f"OP{i}"))
            if paid > amount:
                voucher(ref, paid - amount)
            a(ref, ev.CloseTransaction(ref, "success", paid, amount, paid - amount, 0))
        elif kind < 16:                                                # card
            ref = open_("card", amount)
            a(ref, ev.AuthoriseCard(ref, amount))
            a(ref, ev.CardApproved(ref, amount, "A1", f"{i:06d}", f"{i:06d}", "Visa", "T1"))
            a(ref, ev.TopUp(ref, MSISDN, "globe", "globe-load", amount))
            if kind == 15:
                a(ref, ev.TopUpFailed(ref, "backend.rejected"))
                a(ref, ev.ReverseCard(ref, amount, f"{i:06d}"))
                a(ref, ev.CardReversed(ref))
                a(ref, ev.CloseTransaction(ref, "failed_refunded", amount, 0, 0, amount))
                continue
            a(ref, ev.TopUpSucceeded(ref, f"OP{i}"))
            a(ref, ev.CloseTransaction(ref, "success", amount, amount, 0, 0))
        else:                                                          # QR
            ref = open_("qr", amount)
            a(ref, ev.CreateQrOrder(ref, amount))
            a(ref, ev.QrOrderCreated(ref, "000201...", 1e10))
            if kind == 19:                                             # cancelled, paid late
                a(ref, ev.CloseQrOrder(ref))
                a(ref, ev.CloseTransaction(ref, "cancelled", 0, 0, 0, 0))
                a(ref, ev.QrPaid(ref, amount, f"W{i}"))
                a(ref, ev.LatePayment(ref, amount, f"qr:W{i}"))
                a(ref, ev.VoucherIssued(ref, str(10**15 + n + i), amount))
                continue
            a(ref, ev.QrPaid(ref, amount, f"W{i}"))
            a(ref, ev.TopUp(ref, MSISDN, "globe", "globe-load", amount))
            a(ref, ev.TopUpSucceeded(ref, f"OP{i}"))
            a(ref, ev.CloseTransaction(ref, "success", amount, amount, 0, 0))
    for i in range(8):                                   # 3 open, 5 resumed at a restart
        ref = open_("qr", 2000)
        if i >= 3:
            a(ref, ev.RecoveryStarted(ref, "pay_qr", 0))
            a(ref, ev.CloseTransaction(ref, "cancelled", 0, 0, 0, 0))
    j.db.execute("CREATE TABLE IF NOT EXISTS bench_writes (ts REAL)")
    j.db.execute("COMMIT")
    j.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.close()


# ====================================================================== one report (child)
def _reports_module(baseline: str | None) -> ModuleType:
    if not baseline:
        from kiosk import reports
        return reports
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{baseline}:kiosk/reports.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "reports_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("kiosk.reports_baseline", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _undo_z(j: Journal, number: int) -> None:
    j.db.execute("DELETE FROM report_periods WHERE number = ?", (number,))
    j.db.execute("DELETE FROM period_totals WHERE number = ?", (number,))


def child(what: str, path: str, baseline: str | None) -> dict[str, float]:
    """One report in this (fresh) process: time, then tracemalloc peak on a second run."""
    reports = _reports_module(baseline)
    j = Journal(path)

    def run() -> None:
        if what == "z":
            z = reports.z_report(j, "bench")
            _undo_z(j, z.number)
        else:
            reports.x_report(j)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    run()
    elapsed = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    j.close()
    return {"s": elapsed, "py_peak_mb": peak / 2**20, "rss_growth_mb": (rss1 - rss0) / 1024}


def _in_child(what: str, path: Path, baseline: str | None) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", what, str(path)]
    if baseline:
        cmd += ["--baseline", baseline]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ====================================================================== the write lock
def _writer(path: str, stop: Any, ready: Any, result: Any) -> None:
    db = sqlite3.connect(path, isolation_level=None, timeout=60)
    db.execute("PRAGMA synchronous=OFF")
    worst, writes = 0.0, 0
    ready.set()
    while not stop.is_set():
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        waited = time.perf_counter() - t0
        db.execute("INSERT INTO bench_writes VALUES (?)", (time.time(),))
        db.execute("COMMIT")
        worst, writes = max(worst, waited), writes + 1
        time.sleep(0.001)
    result.put((worst, writes))
    db.close()


def z_lock_wait(path: Path, baseline: str | None) -> tuple[float, int]:
    """The longest write-lock wait of a writer process while one Z report runs here."""
    reports = _reports_module(baseline)
    j = Journal(path)
    ctx = mp.get_context("spawn")
    stop, ready, result = ctx.Event(), ctx.Event(), ctx.Queue()
    p = ctx.Process(target=_writer, args=(str(path), stop, ready, result))
    p.start()
    ready.wait()
    time.sleep(0.05)
    z = reports.z_report(j, "bench")
    time.sleep(0.05)
    stop.set()
    worst, writes = result.get()
    p.join()
    _undo_z(j, z.number)
    j.db.execute("DELETE FROM bench_writes")
    j.close()
    return worst, writes


# ====================================================================== periodic queries
def _median_us(fn: Any, runs: int = 200) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def periodic(path: Path) -> dict[str, float]:
    from kiosk import cli
    j = Journal(path)
    args = argparse.Namespace(limit=50, json=False)

    def unresolved() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            cli._list_unresolved(j, args)

    def query(sql: str, *args: Any) -> Any:
        return lambda: j.db.execute(sql, args).fetchall()

    out = {"unresolved_us": _median_us(unresolved, 50),
           "cash_box_us": _median_us(lambda: books.cash_box_removed(j.db), 2000),
           # The same questions as asked before this change, on the same journal:
           "old_open_us": _median_us(query(
               "SELECT * FROM transactions NOT INDEXED WHERE status='open' ORDER BY number"), 20),
           "old_recovered_us": _median_us(query(
               "SELECT t.* FROM transactions t WHERE EXISTS (SELECT 1 FROM events e WHERE"
               " e.ref = t.ref AND e.kind = 'RecoveryStarted') ORDER BY t.number DESC LIMIT ?",
               50), 5),
           "old_cash_box_us": _median_us(query(
               "SELECT kind FROM events NOT INDEXED WHERE kind IN ('CashBoxRemoved',"
               " 'CashBoxInserted') ORDER BY seq DESC LIMIT 1"), 5)}
    if hasattr(j, "cash_box_removed"):
        out["journal_cash_box_us"] = _median_us(j.cash_box_removed, 200)
    j.close()
    return out


# ====================================================================== main
def measure(path: Path, runs: int, baseline: str | None) -> dict[str, Any]:
    r: dict[str, Any] = {}
    for label, what in (("x", "x"), ("z", "z")):
        got = [_in_child(what, path, baseline) for _ in range(runs)]
        r[label] = {k: statistics.median(g[k] for g in got) for k in got[0]}
    locks = [z_lock_wait(path, baseline) for _ in range(max(1, runs // 2))]
    r["z_lock_wait_s"] = max(w for w, _ in locks)
    r["z_writes"] = statistics.median(n for _, n in locks)
    # X right after a Z: close the period once (kept), then a fresh X.
    reports = _reports_module(baseline)
    j = Journal(path)
    z = reports.z_report(j, "bench")
    j.close()
    got = [_in_child("x", path, baseline) for _ in range(runs)]
    r["x_after_z"] = {k: statistics.median(g[k] for g in got) for k in got[0]}
    j = Journal(path)
    _undo_z(j, z.number)
    j.close()
    r.update(periodic(path))
    return r


def _mb(mb: float) -> str:
    return f"{mb:8.1f} MB" if mb >= 10 else f"{mb * 1024:8.0f} KB"


def _ms(s: float) -> str:
    return f"{s * 1000:9.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None,
                    help="keep the generated journals here (reused when present)")
    ap.add_argument("--baseline", default=None,
                    help="git revision whose kiosk/reports.py to measure instead")
    ap.add_argument("--smoke", action="store_true",
                    help="one journal of 300 transactions, 1 run, removed after (a test that "
                         "it runs, no figure to keep)")
    ap.add_argument("--child", nargs=2, metavar=("WHAT", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        args.sizes, args.runs = [300], 1
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.baseline)))
        return 0
    base = args.dir or Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    for n in args.sizes:
        path = base / f"journal-{n}.sqlite3"
        if not path.exists():
            t0 = time.perf_counter()
            generate(path, n)
            events = sqlite3.connect(path).execute("SELECT MAX(seq) FROM events").fetchone()[0]
            print(f"generated {n:,} transactions ({events:,} events, "
                  f"{os.path.getsize(path) / 2**20:.0f} MB) in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        results[n] = measure(path, args.runs, args.baseline)
        r = results[n]
        print(f"\n{n:,} transactions" + (f" (reports of {args.baseline})" if args.baseline else ""))
        for label, key in (("report x, no Z yet", "x"), ("report x, after a Z", "x_after_z"),
                           ("report z", "z")):
            m = r[key]
            print(f"  {label:<22}{_ms(m['s'])}   python peak {_mb(m['py_peak_mb'])}"
                  f"   RSS +{_mb(m['rss_growth_mb'])}")
        print(f"  {'longest write wait':<22}{_ms(r['z_lock_wait_s'])}   during a Z"
              f" ({r['z_writes']:.0f} writes went through meanwhile)")
        print(f"  {'journal list --unres.':<22}{r['unresolved_us'] / 1000:9.2f} ms   (before:"
              f" open rows {r['old_open_us'] / 1000:.2f} ms + recovered"
              f" {r['old_recovered_us'] / 1000:.1f} ms, no index)")
        print(f"  {'cash box removed?':<22}{r['cash_box_us']:9.1f} us (ledger, one row)"
              + (f"; Journal.cash_box_removed {r['journal_cash_box_us']:.1f} us"
                 if "journal_cash_box_us" in r else "")
              + f"; events scan {r['old_cash_box_us'] / 1000:.1f} ms")
    if len(results) > 1:
        lo, hi = min(results), max(results)
        a, b = results[lo], results[hi]
        print(f"\nratio {hi:,} / {lo:,} transactions (1.0 = independent of history):")
        for label, va, vb in (
                ("report x, no Z", a["x"]["s"], b["x"]["s"]),
                ("report x, after a Z", a["x_after_z"]["s"], b["x_after_z"]["s"]),
                ("report z", a["z"]["s"], b["z"]["s"]),
                ("python peak, x", a["x"]["py_peak_mb"], b["x"]["py_peak_mb"]),
                ("write wait during z", a["z_lock_wait_s"], b["z_lock_wait_s"]),
                ("journal list --unres.", a["unresolved_us"], b["unresolved_us"]),
                ("cash box removed?", a["cash_box_us"], b["cash_box_us"])):
            print(f"  {label:<24}x{vb / va:6.2f}" if va else f"  {label:<24}-")
    if args.smoke and args.dir is None:
        import shutil
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"\njournals in {base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
