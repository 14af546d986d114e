"""Every voucher reaches its owner by SMS: the runtime with simulated devices and the SMS
gateway simulator over HTTP on 127.0.0.1. The text has the code in full, its value, expiry,
the reference and the support line; it goes to the transaction's number once the voucher is
journaled, whoever issued it (the customer's session, a background session, a restart, a
late payment); a gateway down is retried and a message is sent once, across restarts too.
The logs name neither the number nor the code."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from drivers.simulated import (
    SimulatedBillAcceptor,
    SimulatedCardTerminal,
    SimulatedPrinter,
    SimulatedSimReader,
)
from kiosk import events as ev
from kiosk import vouchers
from kiosk.backend.base import TopUpAnswer, TopUpStatus
from kiosk.backend.simulated import SimulatedBackend
from kiosk.config import DeviceSettings, Settings, load
from kiosk.engine import Outcome, Phase
from kiosk.payments.simulated import SimulatedWallet
from kiosk.runtime import Runtime
from kiosk.sms import SmsSettings
from kiosk.sms_sim import SmsGatewaySimulator
from tests.events import until

GLOBE = "09171234567"
TO = "+639171234567"


def with_sms(settings: Settings, sim: SmsGatewaySimulator, **kw: Any) -> Settings:
    """`settings` with an [sms] table pointing at `sim` (Settings may not have the field
    yet: the configuration loader is another part's; then `replace` drops it, so this comes
    last)."""
    conf = SmsSettings(**{"driver": "http", "base_url": sim.url, "api_key": sim.api_key,
                          "timeout_s": 1.0, "retry_first_s": 0.05, "retry_max_s": 0.2, **kw})
    try:
        return replace(settings, sms=conf)  # type: ignore[call-arg]
    except TypeError:
        copy = replace(settings)
        object.__setattr__(copy, "sms", conf)
        return copy


class LateAnswerBackend(SimulatedBackend):
    """A provider that never answers the top-up itself (no credit) and whose look-ups time
    out until `answer` is set: then it says FAILED."""

    def __init__(self) -> None:
        super().__init__(delay_s=0.01, timeout_s=0.05)
        self.answer: TopUpStatus | None = None

    async def topup(self, ref: str, msisdn: str, operator: str, product_id: str,
                    amount: int, kind: str = "airtime") -> TopUpAnswer:
        self.calls.append(ref)
        raise TimeoutError("no answer")

    async def status(self, ref: str) -> TopUpAnswer:
        if self.answer is None:
            raise TimeoutError("look-up timed out")
        return TopUpAnswer(self.answer, reason="backend.rejected")


def devices(settings: Settings, backend: SimulatedBackend | None = None) -> dict[str, Any]:
    return {"sim_reader": SimulatedSimReader(delay_s=0.01),
            "cash": SimulatedBillAcceptor(settings.cash_denominations, delay_s=0.01),
            "card": SimulatedCardTerminal(delay_s=0.01),
            "printer": SimulatedPrinter(delay_s=0.01),
            "backend": backend or SimulatedBackend(delay_s=0.01),
            "wallet": SimulatedWallet(settings.currency, delay_s=0.01)}


@pytest.fixture
def sim() -> Iterator[SmsGatewaySimulator]:
    s = SmsGatewaySimulator().start()
    yield s
    s.stop()


@pytest.fixture
def settings(tmp_path: Path, sim: SmsGatewaySimulator) -> Settings:
    return with_sms(replace(load(data_dir=tmp_path), query_interval_s=0.01), sim)


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings, devices=devices(settings))
    await runtime.start()
    yield runtime
    await runtime.stop()


async def restart(settings: Settings, backend: SimulatedBackend | None = None) -> Runtime:
    runtime = Runtime(settings, devices=devices(settings, backend))
    await runtime.start()
    return runtime


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


async def a_voucher(rt: Runtime, amount: int = 5000) -> tuple[str, str]:
    """A failed top-up paid in cash: the customer leaves with a voucher. (ref, code)"""
    backend = rt.backend
    assert isinstance(backend, SimulatedBackend)
    backend.mode = "fail"
    ref = await choose(rt, "globe-load", amount, "cash")
    await pay_notes(rt, amount)
    await until(lambda: rt.state.phase is Phase.RESULT, "the result")
    backend.mode = "succeed"
    code = rt.state.txn.voucher_code
    assert vouchers.well_formed(code)
    rt.post(ev.Done())
    return ref, code


def voucher(rt: Runtime, code: str) -> dict[str, Any]:
    v = rt.journal.voucher(code)
    assert v is not None
    return v


def sent(rt: Runtime, ref: str) -> list[dict[str, Any]]:
    return [e.data for e in rt.journal.events(ref) if e.kind == "VoucherSent"]


def clean(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    text = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    for s in secrets:
        assert s not in text


async def test_a_failed_top_up_paid_in_cash_sends_the_voucher_to_the_number(
        rt: Runtime, sim: SmsGatewaySimulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ref, code = await a_voucher(rt, 5000)
    await until(lambda: sent(rt, ref), "the SMS accepted and journaled")
    [text] = sim.texts_to(TO)
    v = voucher(rt, code)
    for part in (vouchers.pretty(code), "PHP 50.00", f"valid until {v['expires']}", ref,
                 f"Help: {rt.settings.support}"):
        assert part in text
    [rec] = sent(rt, ref)
    issued = [e.seq for e in rt.journal.events(ref) if e.kind == "VoucherIssued"]
    assert rec == {"ref": ref, "code_last4": code[-4:], "voucher_seq": issued[0],
                   "gateway_id": sim.messages[0].id, "by": ""}
    assert sim.messages[0].client_ref == f"{ref}.v{issued[0]}"
    # The printed receipt says until when the voucher can be used.
    [(lines, qr)] = rt.devices["printer"].printed
    assert f"Valid until: {v['expires']}" in lines and qr == code
    # Journaled after the voucher, and the voucher's code is in no delivery record.
    kinds = [e.kind for e in rt.journal.events(ref)]
    assert kinds.index("VoucherIssued") < kinds.index("VoucherSent")
    assert code not in str(rec)
    clean(caplog, code, code[:12], vouchers.pretty(code), GLOBE, TO, TO[1:], GLOBE[1:])
    assert "sent by SMS to 0917***4567" in caplog.text


async def test_a_gateway_down_is_retried_and_the_voucher_sent_once(
        rt: Runtime, sim: SmsGatewaySimulator) -> None:
    sim.set_mode("down")
    ref, _ = await a_voucher(rt, 2000)
    await until(lambda: sim.attempts >= 3, "tries while the gateway is down")
    assert sim.messages == [] and sent(rt, ref) == []
    assert rt.state.phase is Phase.IDLE             # the money path never waited on it
    sim.set_mode("ok")
    await until(lambda: sent(rt, ref), "the SMS once the gateway is back")
    await asyncio.sleep(0.3)
    assert len(sim.texts_to(TO)) == 1 and len(sent(rt, ref)) == 1


async def test_a_reply_lost_after_sending_is_not_a_second_message(
        rt: Runtime, sim: SmsGatewaySimulator) -> None:
    sim.set_mode("lost")                            # the gateway sends, the kiosk never hears
    ref, _ = await a_voucher(rt, 2000)
    await until(lambda: sim.attempts >= 2, "asked again")
    sim.set_mode("ok")
    await until(lambda: sent(rt, ref), "the SMS journaled")
    await asyncio.sleep(0.2)
    assert len(sim.messages) == 1 and sent(rt, ref)[0]["gateway_id"] == sim.messages[0].id


async def test_a_voucher_left_unsent_is_sent_after_a_restart_and_only_once(
        settings: Settings, sim: SmsGatewaySimulator) -> None:
    rt = await restart(settings)
    try:
        sim.set_mode("5xx")
        ref, code = await a_voucher(rt, 2000)
        await until(lambda: sim.attempts >= 1, "a try")
    finally:
        await rt.stop()                             # the kiosk stops with the SMS unsent
    sim.set_mode("ok")
    rt2 = await restart(settings)
    try:
        await until(lambda: sent(rt2, ref), "the SMS sent at start")
        assert [vouchers.pretty(code) in t for t in sim.texts_to(TO)] == [True]
    finally:
        await rt2.stop()
    attempts = sim.attempts
    rt3 = await restart(settings)                   # journaled as sent: not again
    try:
        await asyncio.sleep(0.3)
        assert sim.attempts == attempts and len(sim.messages) == 1
    finally:
        await rt3.stop()


async def test_a_refusal_is_journaled_and_not_retried(
        settings: Settings, sim: SmsGatewaySimulator, caplog: pytest.LogCaptureFixture) -> None:
    sim.set_mode("refuse")
    rt = await restart(settings)
    try:
        ref, code = await a_voucher(rt, 2000)
        await until(lambda: any(e.kind == "VoucherSmsRefused" for e in rt.journal.events(ref)),
                    "the refusal journaled")
        await asyncio.sleep(0.2)
        assert sim.attempts == 1
    finally:
        await rt.stop()
    sim.set_mode("ok")
    rt2 = await restart(settings)
    try:
        await asyncio.sleep(0.3)
        assert sim.attempts == 1 and sim.messages == []
    finally:
        await rt2.stop()
    assert "ALERT voucher ..." + code[-4:] in caplog.text
    clean(caplog, code, GLOBE, TO)


async def test_a_voucher_issued_by_recovery_after_a_restart_is_sent(
        settings: Settings, sim: SmsGatewaySimulator) -> None:
    """A voucher redeemed, then the kiosk dies before the top-up: the restart resolves the
    transaction with a new voucher, which no screen shows and no printer prints."""
    rt = await restart(settings)
    try:
        first_ref, code = await a_voucher(rt, 2000)
        await until(lambda: sent(rt, first_ref), "the first voucher's SMS")
        ref = await choose(rt, "globe-load", 5000, "voucher")
        rt.post(ev.VoucherEntered(code))
        await until(lambda: rt.state.txn.paid == 2000, "the voucher counted")
    finally:
        await rt.stop()                             # the power goes
    rt2 = await restart(settings)
    try:
        await until(lambda: sent(rt2, ref), "the recovered voucher's SMS")
        [new] = [v for v in rt2.journal.vouchers(ref)]
        assert (new["amount"], new["status"]) == (2000, "active")
        texts = sim.texts_to(TO)
        assert len(texts) == 2 and vouchers.pretty(new["code"]) in texts[1]
        assert rt2.devices["printer"].printed == []  # nobody to print it for
    finally:
        await rt2.stop()


async def test_a_held_voucher_is_sent_when_the_background_session_makes_it_valid(
        settings: Settings, sim: SmsGatewaySimulator) -> None:
    backend = LateAnswerBackend()
    one_query = with_sms(replace(settings, max_unknown_queries=1), sim)
    rt = Runtime(one_query, devices=devices(settings, backend))
    await rt.start()
    try:
        ref = await choose(rt, "globe-load", 2000, "cash")
        await pay_notes(rt, 2000)
        await until(lambda: rt.state.txn.outcome is Outcome.PENDING, "a PENDING receipt")
        [held] = rt.journal.vouchers(ref)
        assert held["status"] == "held"
        rt.post(ev.Done())                          # the customer leaves
        await asyncio.sleep(0.2)
        assert sim.attempts == 0                    # held: valid only if the top-up fails
        backend.answer = TopUpStatus.FAILED
        await until(lambda: sent(rt, ref), "the voucher's SMS once valid")
        [text] = sim.texts_to(TO)
        assert vouchers.pretty(held["code"]) in text and "PHP 20.00" in text
        assert voucher(rt, held["code"])["status"] == "active"
    finally:
        await rt.stop()


async def test_a_late_wallet_payment_becomes_a_voucher_sent_by_sms(
        tmp_path: Path, sim: SmsGatewaySimulator) -> None:
    s = load(data_dir=tmp_path)
    s = with_sms(replace(s, devices={**s.devices, "wallet": DeviceSettings(
        "http", {"simulator": True, "timeout_s": 1.0})}, query_interval_s=0.05), sim)
    d = devices(s)
    del d["wallet"]                                 # the HTTP wallet on its simulator
    rt = Runtime(s, devices=d)
    rt.LATE_POLL_S = 0.05
    await rt.start()
    try:
        gateway = getattr(rt.wallet, "simulator", None)
        assert gateway is not None
        for e in (ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True)):
            rt.post(e)
        await until(lambda: rt.state.offered is not None, "the number checked")
        rt.post(ev.ChooseProduct("globe-load", 5000))
        rt.post(ev.ChoosePayment("qr"))
        await until(lambda: rt.state.qr_payload, "the QR code")
        ref = rt.state.txn.ref or ""
        rt.post(ev.Cancel())
        await until(lambda: gateway.orders[ref].status == "closed", "the order closed")
        assert gateway.pay(ref, late=True)         # the customer's phone, too late
        await until(lambda: sent(rt, ref), "the late payment's voucher by SMS")
        [v] = rt.journal.vouchers(ref)
        [text] = sim.texts_to(TO)
        assert vouchers.pretty(v["code"]) in text and "PHP 50.00" in text
    finally:
        await rt.stop()


async def test_sms_off_sends_nothing_and_says_so(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    s = replace(load(data_dir=tmp_path), query_interval_s=0.01)
    if getattr(s, "sms", None) is not None:
        s = replace(s, sms=SmsSettings())  # type: ignore[call-arg]
    rt = await restart(s)
    try:
        ref, _ = await a_voucher(rt, 2000)
        await asyncio.sleep(0.1)
        assert sent(rt, ref) == []
    finally:
        await rt.stop()
    rt2 = await restart(s)
    await rt2.stop()
    assert "SMS is off ([sms] driver): 1 vouchers were never sent" in caplog.text


@pytest.mark.parametrize("rec", [
    ev.VoucherSent("R1", "1234", 7, "SM1"), ev.VoucherSmsRefused("R1", "1234", 7, "x"),
    ev.VoucherShown("R1", "1234", 7, "a"), ev.VoucherReprinted("R1", "1234", 7, "a", False),
    ev.VoucherVoided("R1", "1234", 7, 100, "active", "a", "x")])
def test_delivery_and_audit_records_never_change_a_rebuilt_transaction(rec: ev.Record) -> None:
    """They are journaled on the voucher's reference, which a restart may replay."""
    from kiosk.engine import Engine, State, Txn
    engine = Engine(load().catalog)
    txn = Txn(msisdn=GLOBE, operator="globe", product_id="globe-load", amount=5000,
              method="cash", ref="R1")
    for phase in Phase:
        state = State(phase=phase, txn=txn)
        assert engine.step(state, rec) == (state, [])
    assert ev.from_dict(rec.kind(), rec.to_dict()) == rec
