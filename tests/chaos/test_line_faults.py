"""(e) Line faults on the note acceptor's serial line, at each state of the first note:
1, 2 or 3 dropped replies (the reply's CRC corrupted: the kiosk's decoder discards it, as
a reply lost on the line; 3 is every try of one exchange, so the driver reopens the
port), corrupt replies (random bytes ahead of the next 1 or 3 replies), and a 1 s unplug
(the pty vanishes, the acceptor comes back powered up, as a USB-serial adapter pulled out
and back). The faults are drivers/bill/simulator.py's own (`bad_crc_next`, `garbage`,
`unplug`, as tests/bill/test_acceptor.py uses them); to fault several replies in a row the
test re-arms after each reply, watching the simulator's flags (read only).

States: ESCROW, STACKING, VEND_VALID, STACKED of the first note (the customer gives three
20.00 notes for a 50.00 load; a note given back is put in again). Default: one state per
fault, in turn (drop1 at ESCROW, drop2 at STACKING, ... so the six faults cover the four
states), and the top-up outcomes in turn likewise; KIOSK_CHAOS_FULL=1: every state x fault
x outcome.

What must hold (the intended ID-003 driver: a note in transit always ends credited once,
returned, or booked in doubt -- NoteInDoubt, with its value and key -- never silently
lost): the kiosk settles by itself, the transaction ends as the path wants (the customer
could go on paying: cash is accepted again once the fault is over), and the acceptor's
record (stacked / returned) equals the journal note by note.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from drivers.bill.id003 import Status
from tests.chaos.rig import (
    EXPECTED_OUTCOME,
    OUTCOMES,
    ChaosRig,
    Run,
    outcome_of,
    report,
    sample,
    wait_for,
)

STATES = {"escrow": Status.ESCROW, "stacking": Status.STACKING,
          "vend_valid": Status.VEND_VALID, "stacked": Status.STACKED}
FAULTS = ("drop1", "drop2", "drop3", "corrupt1", "corrupt3", "unplug1s")

CASES = [(f, s, o) for i, f in enumerate(FAULTS) for s in sample(list(STATES), i)
         for o in sample(list(OUTCOMES), i)]


def _inject(rig: ChaosRig, fault: str) -> str:
    """Fault the line now; returns what was done."""
    acc = rig.acceptor
    if fault == "unplug1s":
        acc.unplug(1.0)
        acc.wait_plugged(5.0)
        return "unplugged 1 s"
    n = int(fault[-1])
    done = 0
    for _ in range(n):
        if fault.startswith("drop"):
            acc.bad_crc_next()
            armed = lambda: acc._bad_crc_next                       # noqa: E731
        else:
            acc.garbage(7)
            armed = lambda: bool(acc._garbage)                      # noqa: E731
        # The next reply carries it; the kiosk asks again within its reply timeout.
        if wait_for(lambda: not armed(), 5.0, step=0.001):
            done += 1
    return f"{done} of {n} replies {'dropped' if fault.startswith('drop') else 'corrupted'}"


@pytest.mark.parametrize("fault,state,outcome", CASES,
                         ids=[f"{f}-at-{s}-{o}" for f, s, o in CASES])
def test_line_fault_at_a_note_state(fault: str, state: str, outcome: str,
                                    tmp_path: Path) -> None:
    rig = ChaosRig(tmp_path)
    want = STATES[state]
    notes: dict[str, Any] = {}

    try:
        def during(run: Run) -> None:
            if not wait_for(lambda: rig.acceptor.status() is want, 30.0, step=0.001):
                notes["missed"] = f"the acceptor never reached {state}"
                return
            notes["done"] = _inject(rig, fault)
            assert rig.hands is not None
            notes["given_at_fault"] = len(rig.hands.given)
            notes["hands"] = rig.hands
            notes["at"] = time.monotonic()

        run = rig.serve("cash", outcome, during=during, timeout=75.0)
        problems: list[str] = []
        if "missed" in notes:
            problems.append(str(notes["missed"]))
        if run.returncode != 0:
            problems.append(f"the kiosk did not settle by itself (exit {run.returncode})")
        got, expected = outcome_of(rig, run.summary.get("ref")), EXPECTED_OUTCOME[("cash", outcome)]
        if got != expected:
            problems.append(f"the transaction ended {got!r}, not {expected!r}")
        hands = notes.get("hands")
        if hands is not None and len(hands.given) <= notes["given_at_fault"] \
                and hands.to_give:
            problems.append(f"no note was taken after the fault (given {hands.given}, still "
                            f"in hand {hands.to_give}): cash not accepted again")
        problems += rig.violations()
        assert not problems, report(f"{fault} at the first note's {state}: "
                                    f"{notes.get('done', 'not injected')} (top-up {outcome})",
                                    rig, run, problems)
    finally:
        rig.close()
