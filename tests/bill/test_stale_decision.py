"""No STACK decided before the line dropped is sent after it comes back.

The kiosk decides STACK for a note in escrow; before STACK reaches the acceptor the line
drops (the USB-serial adapter drops out: the acceptor, on its own supply, keeps running).
Meanwhile the customer gets the note back, and maybe feeds another one. When the line comes
back the acceptor is idle, or holds a note the kiosk never decided about: the old decision
must not go out. The simulator records every frame the device takes, with the line (pty)
it came on: after the reconnect there is no STACK (0x41) until the kiosk decides about the
note now in escrow, and that note is not stacked on the strength of the old decision.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from drivers.bill.id003 import Command, Status
from kiosk import events as ev
from tests.bill.test_acceptor import Harness
from tests.events import until

GAP_S = 1.5                             # the line is down this long (< transient timeout)


@pytest.fixture
async def h():
    harness = await Harness().start()
    await harness.enabled()
    yield harness
    await harness.acc.stop()
    assert not harness.contradictions


async def _stack_decided_then_line_drops(h: Harness, how: str) -> tuple[str, int]:
    """A 100-peso note in escrow, the kiosk decides STACK, the line drops before the
    acceptor gets it: the decision still queued, or the STACK frame lost with the line.
    -> the note's key, and the number of the line (pty) that comes back."""
    key = await h.escrowed(10000)
    new_line = h.sim.line + 1
    if how == "queued":
        h.sim.drop_line(GAP_S)           # returns once the port is gone
        h.acc.stack(10000, key)
    else:
        h.sim.lose_line_on(Command.STACK_1, GAP_S)
        h.acc.stack(10000, key)
        await until(lambda: not os.path.lexists(h.sim.link), "the line to drop", 3)
    return key, new_line


async def _note_given_back(h: Harness) -> None:
    """While the line is down the customer takes the note back out of the acceptor."""
    assert h.sim.give_back()
    await until(lambda: h.sim.status() is Status.IDLING, "the note given back", 2)


@pytest.mark.parametrize("how", ["queued", "lost"])
@pytest.mark.parametrize("fed", [5000, 10000], ids=["other_value", "same_value"])
async def test_back_with_another_note_in_escrow_no_stale_stack_goes_out(h, how, fed):
    key, new_line = await _stack_decided_then_line_drops(h, how)
    await _note_given_back(h)
    assert h.sim.insert(fed)                          # and feeds another note
    await until(lambda: h.sim.status() is Status.ESCROW, "the other note in escrow", 2)
    assert h.sim.wait_plugged(5)
    # The first note: given back, under its own key; the note now in escrow is a new one.
    back = await h.expect(ev.NoteReturned, key=key, timeout=10)
    assert back.value == 10000
    other = await h.expect(ev.NoteEscrowed, value=fed, timeout=5)
    assert other.key != key
    await asyncio.sleep(2.0)                          # > the 1 s STACK resend of escrow.py
    assert Command.STACK_1 not in h.sim.sent_on(new_line)
    assert h.sim.status() is Status.ESCROW and h.sim.record.stacked == []
    # The kiosk decides about the note it was told of: that STACK goes out, once.
    h.acc.stack(fed, other.key)
    credited = await h.expect(ev.NoteCredited, key=other.key, timeout=10)
    assert credited.value == fed
    await asyncio.sleep(0.3)
    assert h.sim.sent_on(new_line).count(Command.STACK_1) == 1
    assert h.sim.record.stacked == [fed] and h.credited == fed
    assert h.sim.record.returned == [10000]
    assert h.sim.record.resets == 1                   # the acceptor was never reset
    assert not any(isinstance(e, ev.NoteCredited) for e in h.outcomes.values()
                   if e.key == key)


@pytest.mark.parametrize("how", ["queued", "lost"])
async def test_back_idle_no_stale_stack_goes_out(h, how):
    key, new_line = await _stack_decided_then_line_drops(h, how)
    await _note_given_back(h)
    assert h.sim.wait_plugged(5)
    # A STACK that never left the kiosk: the note went back. One that was sent and lost
    # with the line: the driver cannot tell, and reports it in doubt, as ever.
    outcome = await h.expect(ev.NoteReturned if how == "queued" else ev.NoteInDoubt,
                             key=key, timeout=10)
    assert outcome.value == 10000
    await asyncio.sleep(1.5)
    assert Command.STACK_1 not in h.sim.sent_on(new_line)
    assert h.sim.status() is Status.IDLING and h.sim.record.stacked == []
    # The next note is the kiosk's to decide, and is taken.
    await h.pay(2000)
    await asyncio.sleep(0.3)
    assert h.sim.sent_on(new_line).count(Command.STACK_1) == 1
    assert h.sim.record.stacked == [2000] and h.sim.record.returned == [10000]
    assert h.sim.record.resets == 1
