"""Vouchers as a payment method: issued for change and failed top-ups, single use, with an
expiry, redeemed alone or with cash, refused with a clear reason; every step journaled."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from drivers.simulated import (SimulatedBillAcceptor, SimulatedCardTerminal, SimulatedPrinter,
                               SimulatedSimReader)
from kiosk import events as ev
from kiosk import vouchers
from kiosk.backend.simulated import SimulatedBackend
from kiosk.config import Settings, load
from kiosk.engine import Phase, Txn
from kiosk.journal import Journal
from kiosk.payments.simulated import SimulatedWallet
from kiosk.runtime import Runtime
from tests.events import until

GLOBE = "09171234567"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return replace(load(data_dir=tmp_path), query_interval_s=0.01)


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    devices = {"sim_reader": SimulatedSimReader(delay_s=0.01),
               "cash": SimulatedBillAcceptor(settings.cash_denominations, delay_s=0.01),
               "card": SimulatedCardTerminal(delay_s=0.01),
               "printer": SimulatedPrinter(delay_s=0.01),
               "backend": SimulatedBackend(delay_s=0.01),
               "wallet": SimulatedWallet(settings.currency, delay_s=0.01)}
    runtime = Runtime(settings, devices=devices)
    await runtime.start()
    yield runtime
    await runtime.stop()


async def choose(rt: Runtime, product: str, amount: int, method: str) -> str:
    for e in (ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True)):
        rt.post(e)
    await until(lambda: rt.state.offered is not None, "the number checked")
    rt.post(ev.ChooseProduct(product, amount))
    rt.post(ev.ChoosePayment(method))
    await until(lambda: rt.state.txn.ref, "a reference")
    return rt.state.txn.ref or ""


async def pay_notes(rt: Runtime, *notes: int) -> None:
    cash = rt.devices["cash"]
    for v in notes:
        await until(lambda: cash.enabled and cash.escrow is None, "the acceptor")
        assert cash.insert(v)
        await until(lambda v=v: cash.escrow is None and v in cash.record.stacked, "stacked")


async def a_voucher(rt: Runtime, amount: int = 5000) -> str:
    """A failed top-up paid in cash: the customer leaves with a voucher."""
    rt.backend.mode = "fail"
    ref = await choose(rt, "globe-load", amount, "cash")
    await pay_notes(rt, amount)
    await until(lambda: rt.state.phase is Phase.RESULT, "the result")
    rt.backend.mode = "succeed"
    code = rt.state.txn.voucher_code
    assert vouchers.well_formed(code) and rt.journal.voucher(code)["status"] == "active"
    rt.post(ev.Done())
    return code


async def test_voucher_pays_a_top_up_and_cannot_pay_twice(rt: Runtime) -> None:
    code = await a_voucher(rt, 5000)
    v = rt.journal.voucher(code)
    assert v["expires"] > "2026" and v["amount"] == 5000
    ref = await choose(rt, "globe-load", 5000, "voucher")
    rt.post(ev.VoucherEntered(code))
    await until(lambda: rt.state.phase is Phase.RESULT, "the result")
    t = rt.state.txn
    assert (t.outcome.value, t.paid, t.credited) == ("success", 5000, 5000)
    assert rt.backend.ledger[ref] == 5000
    v = rt.journal.voucher(code)
    assert (v["status"], v["redeemed_ref"]) == ("redeemed", ref)
    row = rt.journal.transaction(ref)
    assert (row.method, row.paid, row.credited) == ("voucher", 5000, 5000)
    rt.post(ev.Done())
    # The same code again: refused, nothing taken, the customer is told why.
    ref2 = await choose(rt, "globe-load", 5000, "voucher")
    rt.post(ev.VoucherEntered(code))
    await until(lambda: rt.state.notice == "voucher.used", "the refusal")
    assert rt.state.txn.paid == 0 and rt.state.phase is Phase.PAY_VOUCHER
    assert [e.kind for e in rt.journal.events(ref2)].count("VoucherRedeemed") == 0
    rt.post(ev.Cancel())
    await until(lambda: rt.journal.transaction(ref2).status == "closed", "closed")


async def test_voucher_and_cash_together_with_change_as_a_new_voucher(rt: Runtime) -> None:
    code = await a_voucher(rt, 2000)
    ref = await choose(rt, "globe-load", 5000, "voucher")
    rt.post(ev.VoucherEntered(code))
    await until(lambda: rt.state.txn.paid == 2000, "the voucher counted")
    assert rt.state.txn.remaining == 3000
    rt.post(ev.ChoosePayment("cash"))
    assert rt.state.phase is Phase.PAY_CASH and rt.state.txn.ref == ref
    await pay_notes(rt, 2000, 2000)             # 2000 + 2000 + 2000 for 5000: 1000 change
    await until(lambda: rt.state.phase is Phase.RESULT, "the result")
    row = rt.journal.transaction(ref)
    assert (row.outcome, row.paid, row.credited, row.voucher) == ("success", 6000, 5000, 1000)
    change = rt.state.txn.voucher_code
    assert change != code and rt.journal.voucher(change)["status"] == "active"
    k = [e.kind for e in rt.journal.events(ref)]
    assert k.index("VoucherRedeemed") < k.index("ChoosePayment") < k.index("NoteCredited")


@pytest.mark.parametrize("reason", ["invalid", "unknown", "expired", "held"])
async def test_refusals_say_why(rt: Runtime, reason: str) -> None:
    code = vouchers.new_code()
    if reason == "invalid":
        code = code[:-1] + str((int(code[-1]) + 1) % 10)          # a typo: wrong check digit
    elif reason in ("expired", "held"):
        rt.journal.append("K0001-999999", ev.VoucherIssued(
            "K0001-999999", code, 1000, held=reason == "held", expires="2020-01-31"))
    await choose(rt, "globe-load", 1000, "voucher")
    rt.post(ev.VoucherEntered(code))
    await until(lambda: rt.state.notice == f"voucher.{reason}", reason)
    assert rt.state.txn.paid == 0


async def test_a_crash_after_redeeming_keeps_the_value(settings: Settings, rt: Runtime) -> None:
    """The voucher was redeemed, then the kiosk died before the top-up: on restart the
    transaction is resolved (a new voucher for the value), never lost, never doubled."""
    code = await a_voucher(rt, 2000)
    ref = await choose(rt, "globe-load", 5000, "voucher")
    rt.post(ev.VoucherEntered(code))
    await until(lambda: rt.state.txn.paid == 2000, "the voucher counted")
    await rt.stop()                                     # the power goes
    rt2 = Runtime(settings, devices={
        "sim_reader": SimulatedSimReader(delay_s=0.01),
        "cash": SimulatedBillAcceptor(settings.cash_denominations, delay_s=0.01),
        "card": SimulatedCardTerminal(delay_s=0.01), "printer": SimulatedPrinter(delay_s=0.01),
        "backend": SimulatedBackend(delay_s=0.01),
        "wallet": SimulatedWallet(settings.currency, delay_s=0.01)})
    await rt2.start()
    try:
        await until(lambda: rt2.journal.transaction(ref).status == "closed", "recovery")
        row = rt2.journal.transaction(ref)
        assert (row.outcome, row.paid, row.voucher) == ("cancelled", 2000, 2000)
        new = [v for v in rt2.journal.vouchers(ref) if v["code"] != code]
        assert [(v["amount"], v["status"]) for v in new] == [(2000, "active")]
    finally:
        await rt2.stop()
    rt.journal = rt2.journal        # the fixture's stop() closes a journal that is open


def test_redeeming_is_atomic_across_connections(tmp_path: Path) -> None:
    """Two sessions (or a replayed request) racing for one voucher: exactly one wins."""
    path = tmp_path / "journal.db"
    j = Journal(path)
    code = vouchers.new_code()
    j.append("K0001-000001", ev.VoucherIssued("K0001-000001", code, 5000))
    refs = [j.open_transaction(Txn(msisdn=GLOBE, operator="globe", product_id="globe-load",
                                   amount=5000, method="voucher")) for _ in range(8)]
    results: list[ev.Record] = []
    lock = threading.Lock()

    def redeem(ref: str) -> None:
        mine = Journal(path)
        r = mine.redeem_voucher(ref, code, "2026-11-22")
        with lock:
            results.append(r)
        mine.close()
    threads = [threading.Thread(target=redeem, args=(r,)) for r in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if isinstance(r, ev.VoucherRedeemed)]
    assert len(won) == 1 and all(r.reason == "used" for r in results
                                 if isinstance(r, ev.VoucherRefused))
    assert [e.kind for e in j.events() if e.kind == "VoucherRedeemed"] == ["VoucherRedeemed"]
    assert j.transaction(won[0].ref).paid == 5000


async def test_refusals_in_a_row_slow_the_next_try_down(
        rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    """Three codes refused cost nothing; the fourth makes the kiosk wait before it looks at
    another code (the journal is not asked meanwhile); a good code after the wait pays.
    The log names the refused codes by their last four digits only."""
    from kiosk.voucher_guard import VoucherGuard
    good = await a_voucher(rt, 2000)
    rt.voucher_guard = VoucherGuard(free_tries=3, base_s=0.5)
    await choose(rt, "globe-load", 2000, "voucher")
    wrong = [vouchers.new_code() for _ in range(4)]
    for i, code in enumerate(wrong):
        rt.post(ev.VoucherEntered(code))
        await until(lambda i=i: rt.voucher_guard.refusals == i + 1, f"refusal {i + 1}")
        assert rt.state.notice == "voucher.unknown"
    # Refused four times: the good code is not looked at before the wait is over.
    rt.post(ev.VoucherEntered(good))
    await until(lambda: rt.state.notice == "voucher.slow_down", "slowed down")
    assert rt.state.txn.paid == 0
    assert rt.journal.voucher(good)["status"] == "active"
    await asyncio.sleep(0.6)
    rt.post(ev.VoucherEntered(good))
    await until(lambda: rt.state.phase is Phase.RESULT, "paid by the good code")
    assert rt.state.txn.paid == 2000
    text = caplog.text
    assert text.count("voucher refused (unknown)") == 4
    for code in wrong + [good]:
        assert code not in text and code[:12] not in text
    assert rt.voucher_guard.refusals == 0                    # a redeemed voucher resets it
