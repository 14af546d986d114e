"""QR payments through the runtime with the HTTP wallet client and the real gateway
simulator on 127.0.0.1: the gateway's ledger and the kiosk's journal agree, and a payment
that lands after cancel or expiry is never lost (it becomes a voucher)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from drivers.simulated import (SimulatedBillAcceptor, SimulatedCardTerminal, SimulatedPrinter,
                               SimulatedSimReader)
from kiosk import config
from kiosk import events as ev
from kiosk.backend.simulated import SimulatedBackend
from kiosk.config import DeviceSettings
from kiosk.engine import Phase
from kiosk.payments import emvco
from kiosk.payments.gateway import HttpWallet
from kiosk.runtime import Runtime
from tests.events import until


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    s = config.load(data_dir=tmp_path)
    s = replace(s, devices={**s.devices, "wallet": DeviceSettings(
        "http", {"simulator": True, "timeout_s": 1.0})},
        backend_timeout_s=2, query_interval_s=0.05)
    devices = {"sim_reader": SimulatedSimReader(delay_s=0.01),
               "cash": SimulatedBillAcceptor(s.cash_denominations, delay_s=0.01),
               "card": SimulatedCardTerminal(delay_s=0.01),
               "printer": SimulatedPrinter(delay_s=0.01),
               "backend": SimulatedBackend(delay_s=0.01)}
    runtime = Runtime(s, devices=devices)             # the wallet comes from the registry
    assert isinstance(runtime.wallet, HttpWallet) and runtime.wallet.simulator is not None
    runtime.LATE_POLL_S = 0.05
    await runtime.start()
    yield runtime
    await runtime.stop()


async def order(rt: Runtime, amount: int = 5000) -> str:
    for e in (ev.Start(), ev.NumberEntered("09171234567"), ev.ConfirmNumber(True)):
        rt.post(e)
    await until(lambda: rt.state.offered is not None, "the number checked")
    for e in (ev.ChooseProduct("globe-load", amount), ev.ChoosePayment("qr")):
        rt.post(e)
    await until(lambda: rt.state.qr_payload, "the QR code")
    ref = rt.state.txn.ref
    assert ref is not None
    return ref


async def test_paid_qr_tops_up_and_the_books_agree(rt: Runtime) -> None:
    gateway = rt.wallet.simulator
    ref = await order(rt)
    fields = {f.tag: f.value for f in emvco.decode(rt.state.qr_payload)}
    assert fields["54"] == "50.00" and fields["53"] == "608"
    assert gateway.pay(ref)                           # the customer's phone
    await until(lambda: rt.state.phase is Phase.RESULT, "the result")
    row = rt.journal.transaction(ref)
    assert (row.outcome, row.paid, row.credited) == ("success", 5000, 5000)
    assert gateway.ledger == {ref: 5000} and rt.backend.ledger == {ref: 5000}
    paid = [e for e in rt.journal.events(ref) if e.kind == "QrPaid"]
    assert len(paid) == 1 and paid[0].data["provider_ref"] == gateway.orders[ref].provider_ref


@pytest.mark.parametrize("how", ["cancel", "expiry"])
async def test_payment_after_the_order_was_closed_becomes_a_voucher(rt: Runtime,
                                                                    how: str) -> None:
    gateway = rt.wallet.simulator
    ref = await order(rt)
    if how == "cancel":
        rt.post(ev.Cancel())
    else:
        rt.post(ev.QrExpired(ref))
    await until(lambda: gateway.orders[ref].status == "closed", "the order closed")
    row = rt.journal.transaction(ref)
    assert (row.status, row.outcome, row.paid) == ("closed", "cancelled", 0)
    # The customer's wallet had started paying before the close: the money lands anyway.
    assert gateway.pay(ref, late=True)
    await until(lambda: rt.journal.vouchers(ref), "the late payment's voucher")
    [voucher] = rt.journal.vouchers(ref)
    assert (voucher["amount"], voucher["status"]) == (5000, "active")
    assert gateway.ledger == {ref: 5000} and ref not in rt.backend.ledger
    late = [e for e in rt.journal.events(ref) if e.kind == "LatePayment"]
    assert len(late) == 1 and late[0].data["amount"] == 5000
    await asyncio.sleep(0.3)                          # the watch has stopped: one voucher
    assert len(rt.journal.vouchers(ref)) == 1


async def test_gateway_down_hides_nothing_but_takes_no_money(rt: Runtime) -> None:
    gateway = rt.wallet.simulator
    gateway.set_mode("down")
    for e in (ev.Start(), ev.NumberEntered("09171234567"), ev.ConfirmNumber(True)):
        rt.post(e)
    await until(lambda: rt.state.offered is not None, "the number checked")
    for e in (ev.ChooseProduct("globe-load", 5000), ev.ChoosePayment("qr")):
        rt.post(e)
    await until(lambda: rt.state.notice == "qr.unavailable", "QR refused", timeout=10)
    assert rt.state.phase is Phase.CHOOSE_PAYMENT and "qr" not in rt.state.methods
    assert gateway.ledger == {}
