"""What guarding the journal costs: the check at start, the high-water mark, the copy.

    .venv/bin/python benchmarks/journal_guard.py [-n 10000] [--rounds 5] [--smoke]

A journal of N closed sales (tests/chaos/bigjournal.py, about 12 events each) is built
once. Printed, as medians over the rounds:
- opening the journal (identity, mark) and SQLite's integrity check, as `kiosk run` does
  before any window opens;
- one durable write (a note credited through the gate's path) with the mark written after
  it, against the same write with the mark switched off: the ratio is the mark's cost;
- an online copy to another folder (kiosk/backup.py: backup API, sync, check, rename).
Aim: the start-up check under 1 s at 10,000 sales; the mark a small part of a write
(it adds one small file write; on ext4 the sync of the WAL then carries its block too).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk import backup, identity
from kiosk import events as ev
from kiosk.journal import Journal
from tests.chaos.bigjournal import build


def median_of(rounds: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--smoke", action="store_true",
                    help="200 sales, 1 round (a test that it runs, no figure to keep)")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.rounds = 200, 1
    tmp = Path(tempfile.mkdtemp(prefix="journal-guard-"))
    path = tmp / "data" / "journal.sqlite3"
    t0 = time.perf_counter()
    last = build(path, args.n)
    size_mb = path.stat().st_size / 1e6
    print(f"journal: {args.n} sales, {last} events, {size_mb:.1f} MB"
          f" (built in {time.perf_counter() - t0:.1f} s)")

    def start_check() -> None:
        j = Journal(path)
        assert j.check_structure() == []
        j.close()
    print(f"open + integrity check: {median_of(args.rounds, start_check) * 1000:.0f} ms median")

    j = Journal(path, any_thread=True)
    n = [0]

    def write() -> None:
        n[0] += 1
        j.enter(None, ev.NoteInDoubt(2000, f"bench:{n[0]}", "bench"))
        j._written()

    writes = max(50, args.rounds * 20)
    real_advance = identity.advance_mark
    with_mark: list[float] = []
    without: list[float] = []
    for _ in range(5):              # interleaved, so the machine's drift hits both alike
        with_mark.append(median_of(writes, write))
        identity.advance_mark = lambda folder, seq: None   # type: ignore[assignment]
        try:
            without.append(median_of(writes, write))
        finally:
            identity.advance_mark = real_advance
    j.close()
    w, wo = statistics.median(with_mark), statistics.median(without)
    print(f"durable write: {w * 1000:.2f} ms with the mark, {wo * 1000:.2f} ms without"
          f" (ratio {w / wo:.3f})")

    copies = tmp / "copies"
    took = median_of(args.rounds, lambda: backup.take(path, copies, "K0001", keep=2))
    print(f"online copy: {took * 1000:.0f} ms median ({size_mb:.1f} MB)")


if __name__ == "__main__":
    main()
