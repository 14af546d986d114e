"""(a) The kiosk's event loop stalled for 3 s at its journal writes and at the gate's
hand-offs of money facts, with no hook in product code: the kiosk runs through
tests/chaos/stalled_kiosk.py, which monkeypatches `Journal.enter` /
`Journal.open_transaction` (loop thread only: the gate's writes from device threads are
never stalled) or `Runtime.deliver` to sleep first, then runs `kiosk.cli.main()`.

One test per path (cash, card, QR x top-up success, failure, unknown = the reply lost after
the operator credited it), so a failure names its path.

journal stalls, per path:
  1. a clean run through the wrapper stalling nothing, which lists the loop's writes (W);
  2. default: ONE run with a window of 3 consecutive loop writes stalled 3 s each (9 s in
     all; consecutive, so stalls add up, as they do when a disk is slow), the window chosen
     by a stable hash of the path name among the W writes: the same writes on every run;
     KIOSK_CHAOS_FULL=1: one run per write (write n alone stalled, n = 1..W) and one run
     with every loop write stalled.
  Per-write runs cost W x (run + 3 s), about a minute per path: too slow for `make test`;
  a stalled window keeps the default within its budget and still stacks stalls.

deliver stalls (cash only: the gate hands notes' outcomes to the loop with
`Runtime.deliver`; a card approval is handed over by the payment task once the terminal
has its confirmation, and a QR payment comes from the polling task, so on card and QR
paths `deliver` is never called): every hand-off stalled (3 notes: 9 s); FULL adds one
run per hand-off.

After each run: the kiosk settled by itself (exit 0), the transaction ended as the path
wants, and the ledgers of the acceptor, terminal, wallet and aggregator equal the journal
(tests/chaos/rig.py `money_violations`).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from tests.chaos.rig import (
    EXPECTED_OUTCOME,
    FULL,
    METHODS,
    OUTCOMES,
    ChaosRig,
    Run,
    loop_writes,
    outcome_of,
    report,
)

STALL_S = 3.0
WINDOW = 3


def _check(rig: ChaosRig, run: Run, method: str, outcome: str) -> list[str]:
    problems: list[str] = []
    if run.returncode != 0:
        problems.append(f"the kiosk did not settle by itself (exit {run.returncode})")
    got = outcome_of(rig, run.summary.get("ref"))
    want = EXPECTED_OUTCOME[(method, outcome)]
    if got != want:
        problems.append(f"transaction {run.summary.get('ref')} ended {got!r}, not {want!r}")
    return problems + rig.violations()


def _serve(rig: ChaosRig, method: str, outcome: str, kind: str, at: list[int] | None,
           log: Path, stalls: int) -> Run:
    wrapper = ["--stall", kind, "--seconds", str(STALL_S), "--log", str(log)]
    if at is not None:
        wrapper += ["--at", ",".join(map(str, at)) or "0"]
    return rig.serve(method, outcome, wrapper=wrapper, timeout=45.0 + STALL_S * stalls)


def _plans(name: str, n: int) -> list[list[int] | None]:
    """Which calls to stall in the runs after the count: lists of 1-based numbers, None for
    every call."""
    if FULL:
        return [[i] for i in range(1, n + 1)] + [None]
    start = zlib.crc32(name.encode()) % max(1, n - WINDOW + 1) + 1
    return [list(range(start, min(n, start + WINDOW - 1) + 1))]


def _stalled(log: Path) -> list[str]:
    return [" ".join(line.split()[:3]) for line in loop_writes(log) if line.endswith(" 1")]


PATHS = [(m, o) for m in METHODS for o in OUTCOMES]


@pytest.mark.parametrize("method,outcome", PATHS, ids=[f"{m}-{o}" for m, o in PATHS])
def test_loop_stalled_at_journal_writes(method: str, outcome: str, tmp_path: Path) -> None:
    name = f"journal-{method}-{outcome}"
    rig = ChaosRig(tmp_path)
    try:
        log0 = tmp_path / "count.log"
        run = _serve(rig, method, outcome, "journal", [], log0, 0)
        problems = _check(rig, run, method, outcome)
        assert not problems, report(f"{name}: the clean run", rig, run, problems)
        writes = loop_writes(log0)
        assert len(writes) >= 4, f"{name}: only {len(writes)} loop writes seen: {writes}"
        for i, at in enumerate(_plans(name, len(writes)), 1):
            log = tmp_path / f"stall{i}.log"
            run = _serve(rig, method, outcome, "journal", at, log,
                         len(at) if at is not None else len(writes) + 4)
            stalled = _stalled(log)
            problems = _check(rig, run, method, outcome)
            if not stalled:
                problems.append("nothing was stalled (the run made fewer loop writes?)")
            assert not problems, report(
                f"{name}: loop stalled {STALL_S:.0f} s at writes {stalled} (clean run: "
                f"{[' '.join(w.split()[:3]) for w in writes]})", rig, run, problems)
    finally:
        rig.close()


CASH = [("cash", o) for o in OUTCOMES]


@pytest.mark.parametrize("method,outcome", CASH, ids=[f"{m}-{o}" for m, o in CASH])
def test_loop_stalled_at_every_device_hand_off(method: str, outcome: str,
                                               tmp_path: Path) -> None:
    name = f"deliver-{method}-{outcome}"
    rig = ChaosRig(tmp_path)
    try:
        plans: list[list[int] | None] = [None] + ([[1], [2], [3]] if FULL else [])
        for i, at in enumerate(plans, 1):
            log = tmp_path / f"deliver{i}.log"
            run = _serve(rig, method, outcome, "deliver", at, log, 6)
            stalled = _stalled(log)
            problems = _check(rig, run, method, outcome)
            if not stalled:
                problems.append("Runtime.deliver was never called: no note outcome was handed"
                                " from the gate to the loop")
            assert not problems, report(
                f"{name}: loop stalled {STALL_S:.0f} s at hand-offs {stalled}", rig, run,
                problems)
    finally:
        rig.close()
