"""The whole kiosk (engine, journal, runtime) with the ID-003 driver and its pty simulator:
the journal's money equals the device's own record in every scenario."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import pytest

from drivers.bill.id003 import Status
from kiosk import config, events as ev
from kiosk.runtime import Runtime


async def until(pred: Callable[[], Any], what: str, timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return value


@pytest.fixture
async def rt(tmp_path):
    s = config.load(data_dir=tmp_path)
    assert s.devices["cash"].driver == "id003-sim"      # the shipped default
    runtime = Runtime(s)
    runtime.devices["printer"].delay_s = 0.01
    await runtime.start()
    await until(lambda: runtime.devices["cash"].ok, "the acceptor ready")
    yield runtime
    await runtime.stop()


async def pay_cash(rt: Runtime, amount: int, product: str = "globe-load-any") -> str:
    for e in (ev.Start(), ev.NumberEntered("09171234567"), ev.ConfirmNumber(True)):
        rt.post(e)
    await until(lambda: rt.state.offered is not None, "the number checked")
    for e in (ev.ChooseProduct(product, amount), ev.ChoosePayment("cash")):
        rt.post(e)
    return await until(lambda: rt.state.txn.ref, "a reference")


async def insert(rt: Runtime, value: int) -> None:
    sim = rt.devices["cash"].simulator
    await until(lambda: sim.status() is Status.IDLING, "the acceptor idle")
    assert sim.insert(value)


async def test_cash_topup_journal_matches_the_device(rt):
    sim = rt.devices["cash"].simulator
    ref = await pay_cash(rt, 7000)
    await insert(rt, 5000)
    await until(lambda: rt.state.txn.paid == 5000, "the first note credited")
    await insert(rt, 2000)
    await until(lambda: rt.state.phase.value == "result", "the result")
    row = rt.journal.transaction(ref)
    assert (row.outcome, row.paid, row.credited) == ("success", 7000, 7000)
    assert sum(sim.record.stacked) == row.paid
    kinds = [e.kind for e in rt.journal.events(ref)]
    assert kinds.count("NoteCredited") == 2 and kinds.count("StackNote") == 2


async def test_a_note_above_what_is_due_is_returned_at_escrow(rt):
    sim = rt.devices["cash"].simulator
    ref = await pay_cash(rt, 2000, "globe-load")      # a FIXED amount (any-amount tops up all)
    await insert(rt, 100000)
    await until(lambda: sim.record.returned == [100000], "the note given back")
    assert rt.state.txn.paid == 0 and rt.state.notice == "note.too_large"
    await insert(rt, 2000)
    await until(lambda: rt.state.phase.value == "result", "the result")
    assert rt.journal.transaction(ref).paid == sum(sim.record.stacked) == 2000


async def test_jam_while_stacking_counts_the_note_and_ends_in_a_voucher(rt):
    sim = rt.devices["cash"].simulator
    ref = await pay_cash(rt, 10000)
    await insert(rt, 2000)
    await until(lambda: rt.state.txn.paid == 2000, "the first note credited")
    sim.jam_after_escrow("stacker")
    await insert(rt, 5000)
    await until(lambda: rt.state.phase.value == "result", "the result", 10)
    row = rt.journal.transaction(ref)
    assert (row.outcome, row.paid, row.voucher) == ("cancelled", 7000, 7000)
    assert not rt.state.device_ok("cash") and "cash" not in rt.state.methods
    sim.clear_fault()                                  # the technician finds it in the box
    await until(lambda: rt.state.device_ok("cash"), "cash back in service")
    assert sum(sim.record.stacked) == row.paid
    # The jammed note is booked in doubt under its key (the cash count settles it); when
    # the acceptor later reports it stacked, that repeat of its one outcome adds nothing.
    doubt = [e for e in rt.journal.events(ref) if e.kind == "NoteInDoubt"]
    assert [(e.data["value"], e.data["reason"]) for e in doubt] == [(5000, "stacker_jam")]
    assert [e.kind for e in rt.journal.events(ref)].count("NoteCredited") == 1


async def test_unplugged_mid_stacking_the_customer_still_gets_the_topup(rt):
    sim = rt.devices["cash"].simulator
    ref = await pay_cash(rt, 5000)
    await insert(rt, 5000)
    await until(lambda: rt.state.escrow == 5000, "the note in escrow")
    sim.stuck(Status.STACKING, 1.0)
    await until(lambda: sim.status() is Status.STACKING, "stacking")
    sim.unplug(0.5)
    await until(lambda: rt.state.phase.value == "result", "the result", 15)
    row = rt.journal.transaction(ref)
    assert (row.outcome, row.paid, row.credited) == ("success", 5000, 5000)
    assert sum(sim.record.stacked) == 5000


async def test_a_bill_found_at_power_up_is_journaled(tmp_path):
    s = config.load(data_dir=tmp_path)
    rt = Runtime(s)
    rt.devices["cash"].simulator.power_up_with_bill("stacker", 20000)
    await rt.start()
    try:
        await until(lambda: any(e.kind == "NoteAtPowerUp" for e in rt.journal.events()),
                    "the note journaled")
        [e] = [e for e in rt.journal.events() if e.kind == "NoteAtPowerUp"]
        assert e.data["where"] == "stacker"
    finally:
        await rt.stop()


async def test_cash_is_not_offered_while_the_backend_is_unreachable(rt):
    rt.devices["backend"].simulator.stop()          # the aggregator is gone (connection refused)
    await rt._ping_backend()
    await until(lambda: not rt.state.device_ok("backend"), "the backend down")
    for e in (ev.Start(), ev.NumberEntered("09171234567"), ev.ConfirmNumber(True)):
        rt.post(e)
    # Before any money the number is checked with the provider: it cannot be asked, so
    # nothing is offered ("top-up temporarily unavailable") and no payment can start.
    await until(lambda: rt.state.offered is not None, "the number check")
    assert rt.state.offered == () and rt.state.notice == "backend.unavailable"
    for e in (ev.ChooseProduct("globe-load", 2000), ev.ChoosePayment("cash")):
        rt.post(e)
    assert rt.state.phase.value == "choose_product"
    assert rt.state.methods == () and not rt.devices["cash"].enabled
