"""(c) A screen listener that raises on every change, in-process: the kiosk's Runtime with
the real drivers on the rig's pty simulators and HTTP servers (tests/chaos/rig.py), a
listener subscribed first that raises RuntimeError every time it is told, and a second one
behind it that records what it is told.

Every path (cash, card, QR x top-up success, failure, unknown) must still end as it does
with no listener: the right outcome, the journal balanced and equal to the simulators'
ledgers, nothing left open; and the listener behind the failing one is still told
everything, up to the result.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from kiosk import config
from kiosk import events as ev
from kiosk.engine import Phase, State
from kiosk.runtime import Runtime
from tests.chaos.rig import (
    AMOUNT,
    BACKEND_MODE,
    EXPECTED_OUTCOME,
    METHODS,
    OUTCOMES,
    ChaosRig,
    report,
)


async def _until(cond: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        await asyncio.sleep(0.02)


def _settled(rt: Runtime) -> bool:
    return (rt.state.phase in (Phase.IDLE, Phase.RESULT, Phase.RECEIPT)
            and not rt.background and not rt.qr_closing and not rt.journal.unresolved())


async def _customer(rt: Runtime, method: str) -> str | None:
    """What kiosk/headless.py's scripted customer does, on the screens' events."""
    await _until(lambda: rt.state.phase is Phase.IDLE, "the attract screen")
    for e in (ev.Start(), ev.NumberEntered("09171234567"), ev.ConfirmNumber(True)):
        rt.post(e)
    await _until(lambda: rt.state.offered is not None, "the number check")
    rt.post(ev.ChooseProduct("globe-load", AMOUNT))
    await _until(lambda: method in rt.state.methods, f"{method} offered")
    rt.post(ev.ChoosePayment(method))
    await _until(lambda: rt.state.txn.ref, "a reference")
    ref = rt.state.txn.ref
    await _until(lambda: rt.state.phase in (Phase.RESULT, Phase.RECEIPT, Phase.IDLE),
                 "the result")
    await _until(lambda: rt.state.receipt_printed is not None or not rt.state.txn.paid,
                 "the receipt")
    return ref


PATHS = [(m, o) for m in METHODS for o in OUTCOMES]


@pytest.mark.parametrize("method,outcome", PATHS, ids=[f"{m}-{o}" for m, o in PATHS])
async def test_a_screen_listener_raising_on_every_change(method: str, outcome: str,
                                                         tmp_path: Path) -> None:
    rig = ChaosRig(tmp_path)
    raised: list[str] = []
    seen: list[State] = []
    problems: list[str] = []

    def broken_screen(s: State) -> None:
        raised.append(s.phase.value)
        raise RuntimeError(f"screen bug on {s.phase.value}")

    try:
        rig.aggregator.set_mode(BACKEND_MODE[outcome])
        settings = config.load(rig.config)
        rt = Runtime(settings)
        rt.subscribe(broken_screen)
        rt.subscribe(seen.append)
        hands = rig.give(method)
        await rt.start()
        ref = None
        try:
            cash = rt.devices["cash"]
            await _until(lambda: getattr(cash, "ok", True) is True, "the note acceptor ready")
            ref = await _customer(rt, method)
            await _until(lambda: _settled(rt), "settled")
        except AssertionError as exc:
            problems.append(f"{exc} (phase {rt.state.phase.value}, notice "
                            f"{rt.state.notice!r})")
        finally:
            hands.stop()
            await rt.stop()
            rig.aggregator.set_mode("succeed")
        got = next((t["outcome"] for t in rig.journal()["transactions"] if t["ref"] == ref),
                   None)
        want = EXPECTED_OUTCOME[(method, outcome)]
        if got != want:
            problems.append(f"{ref} ended {got!r}, not {want!r}")
        if not raised:
            problems.append("the broken listener was never called")
        if not any(s.phase is Phase.RESULT for s in seen):
            problems.append(f"the listener behind the broken one never saw the result "
                            f"(saw {[s.phase.value for s in seen][-8:]})")
        problems += rig.violations()
        assert not problems, report(f"listener raising on every change, {method}-{outcome} "
                                    f"({len(raised)} raises)", rig, None, problems)
    finally:
        rig.close()
