"""(d) `kiosk report z`, `kiosk cashbox remove` and `kiosk cashbox insert`, run from other
processes on a journal of 10,000 transactions while a customer's notes
go in.

Two tests: `report-z` runs `kiosk report z` over and over from the first note in escrow
until the kiosk exits; `cashbox-remove-insert` makes a box exchange (`kiosk cashbox
remove`, then `kiosk cashbox insert`) while each note of the customer waits in escrow (the
simulated acceptor holds it 2.5 s after the kiosk's STACK: its box never leaves, so no
note may be credited while the journal has the box out).

The journal is built once per module (tests/chaos/bigjournal.py: 10,000 closed cash, card
and QR top-ups, about 118,000 events, written through kiosk.journal.Journal in one SQL
transaction: about 4 s) and copied for each test. The kiosk runs on that journal against
the rig's simulators; from the first note in escrow until the kiosk exits, the command is
run over and over (a new process each time), so its reads and its write lock meet the
gate's note commits and the loop's writes.

What must hold: every run of the command succeeds (exit 0) in reasonable time and its
record is journaled once per run; the kiosk settles by itself with the outcome the path
wants; every note the acceptor stacked is credited once and the world's ledgers equal the
journal's new part; the Z periods and the X after them are contiguous and their cash adds
up to the journal's; and an X report afterwards finds no discrepancy (exit 0). The top-up
outcome is taken in turn (success, failure); KIOSK_CHAOS_FULL=1: every outcome.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.bill.id003 import Status
from tests.chaos.bigjournal import build
from tests.chaos.rig import (
    EXPECTED_OUTCOME,
    NOTES,
    OUTCOMES,
    ROOT,
    ChaosRig,
    Run,
    journal_db,
    money_violations,
    outcome_of,
    report,
    sample,
    wait_for,
)

N_TRANSACTIONS = 10_000
COMMAND_LIMIT_S = 10.0
Z = ["report", "z", "--by", "chaos", "--json"]
REMOVE = ["cashbox", "remove", "--by", "chaos"]
INSERT = ["cashbox", "insert", "--by", "chaos"]
CASES = [(c, o) for i, c in enumerate(("report-z", "cashbox-remove-insert"))
         for o in sample(list(OUTCOMES), i)]


@pytest.fixture(scope="module")
def big_journal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("bigjournal") / "journal.sqlite3"
    started = time.monotonic()
    last_seq = build(path, N_TRANSACTIONS)
    took = time.monotonic() - started
    assert took < 30, f"building the journal took {took:.1f} s"
    for extra in ("-wal", "-shm"):
        assert not Path(f"{path}{extra}").exists() or Path(f"{path}{extra}").stat().st_size == 0
    return path, last_seq


def _kiosk(rig: ChaosRig, args: list[str]) -> tuple[int, float, str]:
    started = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "kiosk.cli", "--config", str(rig.config),
                            *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        rc, text = p.returncode, p.stdout if p.returncode == 0 else p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        rc, text = -1, "timed out after 60 s"
    return rc, time.monotonic() - started, text


def _cash_total(rig: ChaosRig) -> int:
    """What the journal says went into the cash box: notes credited or in doubt."""
    db = journal_db(rig.journal_path)
    try:
        return sum(json.loads(d)["value"] for (d,) in db.execute(
            "SELECT data FROM events WHERE kind IN ('NoteCredited', 'NoteInDoubt')"))
    finally:
        db.close()


def _periods(rig: ChaosRig, zs: int) -> list[str]:
    """Every Z period and the X after them: contiguous, and their cash adds up to the
    journal's."""
    out: list[str] = []
    rc, _t, hist = _kiosk(rig, ["report", "history", "--limit", str(zs + 5), "--json"])
    rcx, _t, xtext = _kiosk(rig, ["report", "x", "--json"])
    if rc != 0 or rcx != 0:
        return [f"`kiosk report history` exit {rc}, `kiosk report x` exit {rcx}: {xtext[-600:]}"]
    reports = sorted(json.loads(hist), key=lambda r: r["number"]) + [json.loads(xtext)]
    if len(reports) != zs + 1:
        out.append(f"{zs} Z reports run, {len(reports) - 1} in the history")
    for a, b in zip(reports, reports[1:]):
        if a["to_seq"] != b["from_seq"]:
            how = "lost" if b["from_seq"] > a["to_seq"] else "counted twice"
            out.append(f"Z {a['number']} ends at seq {a['to_seq']}, the next period starts at "
                       f"{b['from_seq']}: events {how}")
    cash = sum(r["cash"]["total"] for r in reports)
    journal = _cash_total(rig)
    if cash != journal:
        spans = [(r["number"], r["from_seq"], r["to_seq"], r["cash"]["total"]) for r in reports]
        out.append(f"the Z periods and the X count {cash} of cash, the journal {journal} "
                   f"(number, from_seq, to_seq, cash: {spans})")
    return out


@pytest.mark.parametrize("command,outcome", CASES, ids=[f"{c}-{o}" for c, o in CASES])
def test_command_on_a_big_journal_while_notes_go_in(command: str, outcome: str,
                                                     big_journal: tuple[Path, int],
                                                     tmp_path: Path) -> None:
    template, last_seq = big_journal
    rig = ChaosRig(tmp_path)
    runs: list[tuple[list[str], int, float, str]] = []
    problems: list[str] = []

    def kiosk(args: list[str]) -> None:
        runs.append((args, *_kiosk(rig, args)))

    try:
        rig.journal_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(template, rig.journal_path)
        acc = rig.acceptor

        def during(run: Run) -> None:
            if command == "report-z":
                if not wait_for(lambda: acc.status() is Status.ESCROW, 40.0, step=0.005):
                    problems.append("no note ever reached escrow")
                while run.proc.poll() is None or not runs:
                    kiosk(Z)
                return
            # A box exchange (out, then an empty one in) while each note waits in escrow:
            # the acceptor holds the note 2.5 s after the kiosk's STACK (armed before the
            # note goes in), so no note is credited while the journal has the box out (the
            # simulated box never leaves).
            acc.hold_escrow(2.5)
            for n in range(len(NOTES)):
                if not wait_for(lambda: acc.status() is Status.ESCROW, 40.0, step=0.002):
                    problems.append(f"note {n + 1} never reached escrow")
                    return
                kiosk(REMOVE)
                kiosk(INSERT)
                if not wait_for(lambda: acc.status() is not Status.ESCROW, 10.0):
                    problems.append(f"note {n + 1} stayed in escrow")
                acc.hold_escrow(2.5)

        run = rig.serve("cash", outcome, during=during, timeout=90.0)
        for i, (args, rc, took, text) in enumerate(runs, 1):
            if rc != 0:
                problems.append(f"run {i} `kiosk {' '.join(args)}`: exit {rc}: {text[-1500:]}")
            if took > COMMAND_LIMIT_S:
                problems.append(f"run {i} `kiosk {' '.join(args)}` took {took:.1f} s")
        if run.returncode != 0:
            problems.append(f"the kiosk did not settle by itself (exit {run.returncode})")
        got, want = outcome_of(rig, run.summary.get("ref")), EXPECTED_OUTCOME[("cash", outcome)]
        if got != want:
            problems.append(f"the customer's transaction ended {got!r}, not {want!r}")
        db = journal_db(rig.journal_path)
        try:
            for args, kind in ((REMOVE, "CashBoxRemoved"), (INSERT, "CashBoxInserted")):
                n = db.execute("SELECT COUNT(*) FROM events WHERE kind=?", (kind,)).fetchone()[0]
                ran = sum(1 for a, *_ in runs if a is args)
                if n != ran:
                    problems.append(f"{ran} runs of `kiosk {' '.join(args)}`, {n} {kind} "
                                    "journaled")
        finally:
            db.close()
        problems += money_violations(rig, since_seq=last_seq, since_number=N_TRANSACTIONS)
        problems += _periods(rig, sum(1 for a, *_ in runs if a is Z))
        rc, _took, text = _kiosk(rig, ["report", "x", "--json"])
        if rc != 0:
            problems.append(f"`kiosk report x` afterwards: exit {rc}: {text[-1500:]}")
        assert not problems, report(
            f"{command} on {N_TRANSACTIONS} transactions while notes went in (top-up "
            f"{outcome}; {[(' '.join(a[:2]), round(t, 2)) for a, _rc, t, _x in runs]})",
            rig, run, problems)
    finally:
        rig.close()
