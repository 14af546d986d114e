"""The amount a wallet gateway reports paid is checked against the order (kiosk/paid_amount.py),
through the runtime with the HTTP wallet client and the real gateway simulator on 127.0.0.1
(kiosk/payments/gateway_sim.py; `pay(ref, amount=...)` makes it report another amount).

More than the order: the customer is topped up for the order's amount only, never a voucher
for the rest. Less: not a payment (no top-up, no voucher; the payment screen says the
amount did not match). Either way the reported figure is journaled, logged as an ALERT and
listed for the operator; the books stay balanced.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
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
from kiosk import books, cli, config, ledger, reports
from kiosk import events as ev
from kiosk.backend.simulated import SimulatedBackend
from kiosk.config import DeviceSettings
from kiosk.engine import Phase
from kiosk.payments.gateway import HttpWallet
from kiosk.payments.gateway_sim import WalletGatewaySimulator
from kiosk.reconcile import to_reconcile
from kiosk.runtime import Runtime
from tests.events import until

MILLION = 1_000_000          # PHP 10,000.00 reported for a PHP 50.00 order


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


def gateway(rt: Runtime) -> WalletGatewaySimulator:
    sim = rt.wallet.simulator                         # type: ignore[attr-defined]
    assert isinstance(sim, WalletGatewaySimulator)
    return sim


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


def kinds(rt: Runtime, ref: str) -> list[str]:
    return [e.kind for e in rt.journal.events(ref)]


def mismatch(rt: Runtime, ref: str) -> dict[str, Any]:
    [m] = [e.data for e in rt.journal.events(ref) if e.kind == "WalletAmountMismatch"]
    return m


def alerts(caplog: pytest.LogCaptureFixture, ref: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("ALERT wallet payment") and ref in r.getMessage()]


def assert_books_balance(rt: Runtime, ref: str) -> None:
    assert ledger.imbalance(books.ref_sums(rt.journal.db, ref)) == 0
    rep = reports.x_report(rt.journal, catalog=rt.settings.catalog)
    assert rep.discrepancies == []
    assert reports.check(rep, rt.journal, rt.settings.catalog) == []


async def test_more_than_the_order_is_credited_as_the_order(
        rt: Runtime, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    ref = await order(rt)
    assert gateway(rt).pay(ref, amount=MILLION)
    await until(lambda: rt.state.phase is Phase.RESULT, "the result")
    row = rt.journal.transaction(ref)
    assert row is not None
    assert (row.outcome, row.paid, row.credited, row.voucher) == ("success", 5000, 5000, 0)
    assert rt.journal.vouchers(ref) == []               # no voucher for the unverified rest
    assert rt.backend.ledger == {ref: 5000}             # type: ignore[attr-defined]
    [paid] = [e.data for e in rt.journal.events(ref) if e.kind == "QrPaid"]
    assert paid["amount"] == 5000
    provider_ref = gateway(rt).orders[ref].provider_ref
    assert mismatch(rt, ref) == {"ref": ref, "ordered": 5000, "reported": MILLION,
                                 "accepted": 5000, "provider_ref": provider_ref}
    k = kinds(rt, ref)
    assert k.index("WalletAmountMismatch") < k.index("QrPaid")   # the fact before the money
    [alert] = alerts(caplog, ref)
    assert "PHP 10,000.00" in alert and "PHP 50.00" in alert
    assert_books_balance(rt, ref)
    [words] = to_reconcile(rt.journal.db, "PHP")[ref]
    assert "reported PHP 10,000.00" in words and "only PHP 50.00 credited" in words

    assert cli.main(["journal", "list", "--unresolved", "--json",
                     "--data-dir", str(rt.settings.data_dir)]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["ref"] == ref and "refund the payer" in listed["how"]


async def test_less_than_the_order_is_not_a_payment(rt: Runtime,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ref = await order(rt)
    assert gateway(rt).pay(ref, amount=3000)
    await until(lambda: rt.state.phase is Phase.CHOOSE_PAYMENT, "the payment screen to end")
    assert rt.state.notice == "amount_mismatch"
    row = rt.journal.transaction(ref)
    assert row is not None
    assert (row.status, row.outcome, row.paid, row.credited, row.voucher) == (
        "closed", "cancelled", 0, 0, 0)
    assert "QrPaid" not in kinds(rt, ref)               # not taken as money
    assert rt.journal.vouchers(ref) == [] and rt.backend.ledger == {}   # type: ignore[attr-defined]
    assert mismatch(rt, ref)["accepted"] == 0 and mismatch(rt, ref)["reported"] == 3000
    assert "nothing accepted" in alerts(caplog, ref)[0]
    assert "not topped up" in to_reconcile(rt.journal.db, "PHP")[ref][0]
    assert_books_balance(rt, ref)
    # The customer may pay another way: a new reference.
    rt.post(ev.ChoosePayment("qr"))
    assert rt.state.txn.ref not in (None, ref)


async def test_a_late_payment_of_more_is_a_voucher_for_the_order_only(
        rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ref = await order(rt)
    rt.post(ev.Cancel())                                # the customer walks away
    await until(lambda: gateway(rt).orders[ref].status == "closed", "the order closed")
    assert gateway(rt).pay(ref, late=True, amount=MILLION)
    await until(lambda: rt.journal.vouchers(ref), "the late payment's voucher")
    assert [(v["amount"], v["status"]) for v in rt.journal.vouchers(ref)] == [(5000, "active")]
    [late] = [e.data for e in rt.journal.events(ref) if e.kind == "LatePayment"]
    assert late["amount"] == 5000
    assert (mismatch(rt, ref)["reported"], mismatch(rt, ref)["accepted"]) == (MILLION, 5000)
    assert len(alerts(caplog, ref)) == 1
    assert_books_balance(rt, ref)


async def test_the_paid_amount_as_ordered_changes_nothing(rt: Runtime) -> None:
    ref = await order(rt)
    assert gateway(rt).pay(ref)
    await until(lambda: rt.state.phase is Phase.RESULT, "the result")
    assert "WalletAmountMismatch" not in kinds(rt, ref)
    assert ref not in to_reconcile(rt.journal.db, "PHP")


def test_the_simulator_reports_another_amount_over_http() -> None:
    with WalletGatewaySimulator() as sim:
        body = json.dumps({"reference": "K1-1", "amount": 5000, "currency": "PHP",
                           "expires_in": 60}).encode()
        req = urllib.request.Request(sim.url + "/v1/orders", body, method="POST", headers={
            "Authorization": f"Bearer {sim.api_key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=2) as r:
            assert r.status == 201

        def admin_pay(payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            req = urllib.request.Request(sim.url + "/_sim/pay/K1-1",
                                         json.dumps(payload).encode(), method="POST")
            try:
                with urllib.request.urlopen(req, timeout=2) as r:
                    return r.status, json.load(r)
            except urllib.error.HTTPError as exc:
                return exc.code, json.load(exc)
        assert admin_pay({"amount": "lots"})[0] == 400
        assert admin_pay({"amount": 0})[0] == 400
        code, answer = admin_pay({"amount": 7000})
        assert (code, answer["paid"]) == (200, True)
        assert sim.get("K1-1")[1]["paid_amount"] == 7000 and sim.ledger == {"K1-1": 7000}
