"""(b) The whole kiosk process frozen (SIGSTOP, SIGCONT 3 s later) at each device state of
a note and of a card payment, while the devices outside it go on.

The test watches the simulator (in this process) and stops the kiosk the moment the device
enters the state:

  note (drivers/bill/simulator.py `status()`, public): ESCROW (held for the host's
  decision), STACKING (0.2 s, then VEND VALID), VEND_VALID (repeated until the host's ACK),
  STACKED (reported once, after the ACK) -- of the first note of the customer.

  card (drivers/card_terminal/simulator.py): its public state shows a payment started
  (`commands` gets AUTHORISATION) and an approval sent (`ledger.authorised`, set just
  before the 04 0F status information goes out), but the kiosk confirms a 04 0F ~3 ms
  later, too soon to stop it by polling, and the completion (06 0F) is NOT observable at
  all (a Transaction's `delivered` is True by default while the 04 0F is still being
  told). So tests/chaos/rig.py `ObservedZvt` (a subclass, the simulator itself untouched)
  calls the test on the terminal's thread as each frame is sent, and the kiosk is stopped
  as the state begins: "waiting for card" at the payment's first 04 FF (intermediate
  status "insert card"; `step_s` is 0.3 s here), "approval sent" at the 04 0F,
  "completion" at the 06 0F after it.

Default: one top-up outcome per state, in turn (notes: success, failure, unknown, success;
cards: unknown, success, failure, so that "approval sent" meets a top-up that succeeds);
KIOSK_CHAOS_FULL=1: every outcome. A 3 s freeze while the terminal waits for the ECR may end
the payment unpaid (the terminal gives up, or reverses an approval it could not deliver):
then the scripted customer walks away (SIGTERM once everything is closed) and only the money
is judged. Cash must end as the path wants: a 3 s freeze is shorter than every timeout of
the escrow cycle.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

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
    stop_for,
    wait_for,
    walk_away,
)

FREEZE_S = 3.0

NOTE_STATES = {"escrow": Status.ESCROW, "stacking": Status.STACKING,
               "vend_valid": Status.VEND_VALID, "stacked": Status.STACKED}
CARD_STATES = ("waiting_for_card", "approval_sent", "completion")

NOTE_CASES = [(s, o) for i, s in enumerate(NOTE_STATES) for o in sample(list(OUTCOMES), i)]
# Cards start the turn at "unknown", so that "approval sent" meets a top-up that succeeds:
# an approval the kiosk books but the terminal reversed costs money only when it is kept.
CARD_CASES = [(s, o) for i, s in enumerate(CARD_STATES) for o in sample(list(OUTCOMES), i + 2)]


def _freeze_when(cond: Callable[[], Any], run: Run, hit: list[str], what: str) -> None:
    if not wait_for(cond, 30.0, step=0.001):
        hit.append(f"the device never reached {what}")
        return
    try:
        stop_for(run, FREEZE_S)
    except ProcessLookupError:
        hit.append(f"the kiosk was gone before {what}")
        return
    hit.append("")


@pytest.mark.parametrize("state,outcome", NOTE_CASES, ids=[f"{s}-{o}" for s, o in NOTE_CASES])
def test_kiosk_frozen_at_a_note_state(state: str, outcome: str, tmp_path: Path) -> None:
    rig = ChaosRig(tmp_path)
    want = NOTE_STATES[state]
    hit: list[str] = []
    try:
        def during(run: Run) -> None:
            _freeze_when(lambda: rig.acceptor.status() is want, run, hit, state)

        run = rig.serve("cash", outcome, during=during, timeout=70.0)
        problems = [h for h in hit if h]
        if run.returncode != 0:
            problems.append(f"the kiosk did not settle by itself (exit {run.returncode})")
        got, expected = outcome_of(rig, run.summary.get("ref")), EXPECTED_OUTCOME[("cash", outcome)]
        if got != expected:
            problems.append(f"the transaction ended {got!r}, not {expected!r}")
        problems += rig.violations()
        assert not problems, report(f"kiosk frozen {FREEZE_S:.0f} s at the note's {state} "
                                    f"(top-up {outcome})", rig, run, problems)
    finally:
        rig.close()


@pytest.mark.parametrize("state,outcome", CARD_CASES, ids=[f"{s}-{o}" for s, o in CARD_CASES])
def test_kiosk_frozen_at_a_card_state(state: str, outcome: str, tmp_path: Path) -> None:
    rig = ChaosRig(tmp_path, terminal_step_s=0.3)
    term = rig.terminal
    hit: list[str] = []
    left: list[bool] = []
    fired = threading.Event()
    codes: list[str] = []

    def entering(run: Run, apdu: bytes) -> None:
        """On the terminal's thread, as it tells the ECR `apdu`: the state begins now."""
        code = apdu[:2].hex(" ").upper()
        codes.append(code)
        if fired.is_set():
            return
        paying = "AUTHORISATION" in term.commands
        if ((state == "waiting_for_card" and paying and code == "04 FF")
                or (state == "approval_sent" and code == "04 0F")
                or (state == "completion" and code == "06 0F" and "04 0F" in codes)):
            fired.set()
            try:
                os.kill(run.pid, signal.SIGSTOP)
            except ProcessLookupError:
                hit.append(f"the kiosk was gone before {state}")
                return
            threading.Timer(FREEZE_S, _cont, (run.pid,)).start()

    try:
        def during(run: Run) -> None:
            term.before_tell = lambda apdu: entering(run, apdu)
            if not fired.wait(30.0):
                hit.append(f"the terminal never reached {state} (told {codes})")
            time.sleep(FREEZE_S)
            left.append(walk_away(rig, run))

        run = rig.serve("card", outcome, during=during, timeout=90.0)
        term.before_tell = None
        problems = [h for h in hit if h]
        if run.returncode != 0:
            problems.append(f"the kiosk did not settle (exit {run.returncode})")
        if not any(left):
            got = outcome_of(rig, run.summary.get("ref"))
            expected = EXPECTED_OUTCOME[("card", outcome)]
            if state == "approval_sent":
                # Frozen longer than the terminal waits for the confirmation: it reverses the
                # approval itself and never completes it; the kiosk, which had booked it,
                # reverses it too ("already reversed") and tops up nothing.
                expected = "cancelled"
            if got != expected:
                problems.append(f"the transaction ended {got!r}, not {expected!r}")
        problems += rig.violations()
        assert not problems, report(
            f"kiosk frozen {FREEZE_S:.0f} s as the terminal entered {state} (top-up {outcome}"
            f"{'; the customer walked away' if any(left) else ''})", rig, run, problems)
    finally:
        term.before_tell = None
        rig.close()


def _cont(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
