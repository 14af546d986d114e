"""Card payments through the runtime with the real ZVT driver and the terminal simulator on a
pty: the terminal's ledger and the kiosk's journal agree in every scenario, an approval is
journaled before it is confirmed to the terminal, and every failed top-up is reversed
exactly once (or ends in a voucher and an alert when the reversal is refused)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from drivers.card_terminal.terminal import ZvtTerminal
from drivers.simulated import SimulatedBillAcceptor, SimulatedPrinter, SimulatedSimReader
from kiosk import config
from kiosk import events as ev
from kiosk.backend.simulated import SimulatedBackend
from kiosk.engine import Phase
from kiosk.payments.simulated import SimulatedWallet
from kiosk.runtime import Runtime
from tests.events import until

GLOBE = "09171234567"


def make_runtime(tmp_path: Path, **card: Any) -> Runtime:
    s = config.load(data_dir=tmp_path)
    s = replace(s, devices={**s.devices, "card": config.DeviceSettings(
        "zvt-sim", {"t1_s": 0.2, "t3_s": 0.6, "t4_s": 3.0, **card})},
        backend_timeout_s=2, query_interval_s=0.05)
    devices = {"sim_reader": SimulatedSimReader(delay_s=0.01),
               "cash": SimulatedBillAcceptor(s.cash_denominations, delay_s=0.01),
               "printer": SimulatedPrinter(delay_s=0.01),
               "backend": SimulatedBackend(delay_s=0.01),
               "wallet": SimulatedWallet(s.currency, delay_s=0.01)}
    rt = Runtime(s, devices=devices)                 # the card terminal from the registry
    assert isinstance(rt.devices["card"], ZvtTerminal)
    sim = rt.devices["card"].simulator
    sim.step_s, sim.t1_s, sim.t3_s = 0.02, 0.2, 0.6
    rt.CARD_RESOLVE_WAIT_S = 0.1
    return rt


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = make_runtime(tmp_path)
    await runtime.start()
    await until(runtime.devices["card"].available, "the terminal registered")
    yield runtime
    await runtime.stop()


async def pay_card(rt: Runtime, amount: int = 5000) -> str:
    for e in (ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True)):
        rt.post(e)
    await until(lambda: rt.state.offered is not None, "the number checked")
    for e in (ev.ChooseProduct("globe-load", amount), ev.ChoosePayment("card")):
        rt.post(e)
    ref = rt.state.txn.ref
    assert ref is not None and rt.state.phase is Phase.PAY_CARD
    return ref


def kinds(rt: Runtime, ref: str) -> list[str]:
    return [e.kind for e in rt.journal.events(ref)]


def closed(rt: Runtime, ref: str) -> Callable[[], bool]:
    return lambda: (r := rt.journal.transaction(ref)) is not None and r.status == "closed"


async def test_approved_card_tops_up_and_the_books_agree(rt: Runtime) -> None:
    sim = rt.devices["card"].simulator
    ref = await pay_card(rt)
    await until(lambda: rt.state.phase is Phase.RESULT, "the result")
    t = rt.state.txn
    assert (t.outcome.value, t.paid, t.credited) == ("success", 5000, 5000)
    assert sim.ledger.authorised == {t.card_receipt_no: 5000} and sim.ledger.reversed == {}
    assert rt.backend.ledger == {ref: 5000}
    k = kinds(rt, ref)
    assert k.count("CardApproved") == 1 and k.index("CardApproved") < k.index("TopUp")
    approved = next(e for e in rt.journal.events(ref) if e.kind == "CardApproved")
    assert approved.data["receipt_no"] == t.card_receipt_no and approved.data["trace"]
    assert approved.data["card_name"] == "Mastercard"
    await until(lambda: "CardReceipt" in kinds(rt, ref), "the terminal's receipt journaled")
    lines = next(e for e in rt.journal.events(ref) if e.kind == "CardReceipt").data["lines"]
    assert "AMOUNT PHP 50.00" in lines
    # The kiosk never sees a card number: nothing PAN-like anywhere in the journal.
    import re
    for e in rt.journal.events(ref):
        assert not re.search(r"\d{12,}", str(e.data)), e


async def test_approval_is_journaled_before_it_is_confirmed_to_the_terminal(rt: Runtime) -> None:
    sim = rt.devices["card"].simulator
    seen: list[tuple[int, bool]] = []
    original = rt._card_commit

    def watching(ref: str, r: Any) -> bool:
        # At this instant the terminal has reported the approval and waits for 80 00 00
        # (the test above shows what happens if it never comes).
        reported = len(sim.ledger.authorised)
        ok = original(ref, r)           # returns once the event is journaled and stepped
        seen.append((reported, ok))
        return ok
    rt.devices["card"].commit = watching
    ref = await pay_card(rt)
    await until(lambda: rt.state.phase is Phase.RESULT, "the result")
    assert seen == [(1, True)]           # journaled while the terminal waited
    assert [tx.delivered for tx in sim.ledger.transactions] == [True]
    assert kinds(rt, ref).count("CardApproved") == 1 and ref in rt.backend.ledger


async def test_an_approval_the_kiosk_cannot_journal_is_reversed_by_the_terminal(
        rt: Runtime) -> None:
    sim = rt.devices["card"].simulator
    rt.devices["card"].commit = lambda ref, r: False      # the journal write failed
    ref = await pay_card(rt)
    await until(lambda: rt.state.phase is Phase.CHOOSE_PAYMENT, "back to the payment choice")
    assert rt.state.notice == "card.declined"
    [payment] = [tx for tx in sim.ledger.transactions if tx.kind == "payment"]
    assert sim.ledger.reversed == {payment.receipt_no: 5000}      # auto-reversal
    assert "CardApproved" not in kinds(rt, ref) and ref not in rt.backend.ledger
    await until(closed(rt, ref), "the reference closed")
    assert rt.journal.transaction(ref).paid == 0


async def test_an_approval_for_another_amount_is_journaled_then_reversed(rt: Runtime) -> None:
    """The terminal approves less than asked: the kiosk books what was approved (before it
    confirms it), reverses it (ReverseCard journaled first), tops up nothing, and the card is
    charged nothing in the end."""
    sim = rt.devices["card"].simulator
    sim.approve_amount = 3000
    ref = await pay_card(rt, 5000)
    await until(closed(rt, ref), "the reference closed")
    [approved] = [e for e in rt.journal.events(ref) if e.kind == "CardApproved"]
    assert approved.data["amount"] == 3000
    k = kinds(rt, ref)
    assert k.index("CardApproved") < k.index("ReverseCard") < k.index("CardReversed")
    assert "TopUp" not in k and ref not in rt.backend.ledger
    [payment] = [tx for tx in sim.ledger.transactions if tx.kind == "payment"]
    assert sim.ledger.authorised == {payment.receipt_no: 3000}
    assert sim.ledger.reversed == {payment.receipt_no: 3000}             # net charge 0
    r = rt.journal.transaction(ref)
    assert r is not None and (r.outcome, r.paid, r.refunded) == ("cancelled", 3000, 3000)


async def test_failed_top_up_is_reversed_exactly_once(rt: Runtime) -> None:
    sim = rt.devices["card"].simulator
    rt.backend.mode = "fail"
    ref = await pay_card(rt, 2000)
    await until(closed(rt, ref), "the transaction closed")
    row = rt.journal.transaction(ref)
    assert (row.outcome, row.paid, row.refunded, row.credited) == ("failed_refunded", 2000,
                                                                   2000, 0)
    receipt = rt.state.txn.card_receipt_no
    assert sim.ledger.authorised == {receipt: 2000} and sim.ledger.reversed == {receipt: 2000}
    reversals = [tx for tx in sim.ledger.transactions if tx.kind == "reversal"]
    assert len(reversals) == 1
    k = kinds(rt, ref)
    assert k.index("TopUpFailed") < k.index("ReverseCard") < k.index("CardReversed")
    reverse = next(e for e in rt.journal.events(ref) if e.kind == "ReverseCard")
    assert reverse.data["receipt_no"] == receipt


async def test_refused_reversal_ends_in_a_voucher_and_an_alert(rt: Runtime, caplog) -> None:
    sim = rt.devices["card"].simulator
    rt.backend.mode = "fail"
    sim.reversal_works = False
    with caplog.at_level(logging.ERROR, "kiosk.runtime"):
        ref = await pay_card(rt, 2000)
        await until(closed(rt, ref), "the transaction closed")
    row = rt.journal.transaction(ref)
    assert (row.outcome, row.paid, row.voucher, row.refunded) == ("failed_voucher", 2000,
                                                                  2000, 0)
    assert sim.ledger.reversed == {}
    assert [(v["amount"], v["status"]) for v in rt.journal.vouchers(ref)] == [(2000, "active")]
    assert any("ALERT card reversal" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("outcome,notice", [("decline", "card.declined"),
                                            ("customer_abort", "card.aborted")])
async def test_declined_or_aborted_on_the_terminal_charges_nothing(rt: Runtime, outcome: str,
                                                                   notice: str) -> None:
    sim = rt.devices["card"].simulator
    sim.next_outcome = outcome
    ref = await pay_card(rt)
    await until(lambda: rt.state.notice == notice, notice)
    assert rt.state.phase is Phase.CHOOSE_PAYMENT and sim.ledger.authorised == {}
    await until(closed(rt, ref), "the reference closed")
    assert rt.journal.transaction(ref).paid == 0


async def test_customer_cancels_on_the_kiosk_while_the_terminal_waits(rt: Runtime) -> None:
    sim = rt.devices["card"].simulator
    sim.step_s = 0.5
    ref = await pay_card(rt)
    await until(lambda: rt.state.card_text, "the terminal's first message")
    assert rt.state.card_text == "Insert, tap or swipe your card"
    rt.post(ev.Cancel())
    await until(closed(rt, ref), "the reference closed")
    assert rt.state.phase is Phase.IDLE and sim.ledger.authorised == {}
    assert "ECR_ABORT" in sim.commands


async def test_no_answer_is_resolved_by_asking_the_terminal(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, t4_s=0.8)
    sim = rt.devices["card"].simulator
    sim.no_answer_s = 1.5                         # the bank answers after the kiosk's T4
    await rt.start()
    try:
        await until(rt.devices["card"].available, "the terminal registered")
        sim.next_outcome = "no_answer"
        ref = await pay_card(rt)
        await until(closed(rt, ref), "the payment resolved", timeout=20)
        row = rt.journal.transaction(ref)
        t = rt.state.txn
        # Whatever the terminal did, the journal says the same: paid and topped up, or
        # nothing taken.
        net = sum(sim.ledger.authorised.values()) - sum(sim.ledger.reversed.values())
        assert net == row.paid - row.refunded
        if row.paid:
            assert (row.outcome, row.credited) == ("success", 5000) and t.card_receipt_no
        else:
            assert row.outcome == "cancelled"
    finally:
        await rt.stop()


async def test_terminal_offline_at_start_hides_card_payment(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path)
    rt.devices["card"].simulator.offline = True
    await rt.start()
    try:
        await until(lambda: not rt.state.device_ok("card"), "card marked out of service")
        assert "card" not in rt.state.methods and "cash" in rt.state.methods
        assert not rt.devices["card"].available()
    finally:
        await rt.stop()
