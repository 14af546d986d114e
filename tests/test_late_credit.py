"""A top-up the provider commits late, through the runtime and the Reloadly HTTP simulator
(kiosk/backend/http_sim.py) on 127.0.0.1.

"Not found" is not final until the not-found window has passed since the top-up was sent
(kiosk/calls_backend.py): within it the customer gets the PENDING receipt and a background
session keeps asking, so a late commit ends as a success with the held voucher void. A
transaction closed as failed is asked about again (kiosk/late_credit.py): a late credit
voids the unused voucher, or is flagged for the operator when the customer got the money
back already; the books stay balanced either way.

"The provider commits late": the simulator's mode "lost" drops the top-up request without
crediting it (the look-up finds nothing); `commit_late` then has the simulator process the
same request (same customIdentifier), as a provider's queue that delivers it late would.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
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
from kiosk.backend.http_sim import ReloadlySimulator
from kiosk.config import DeviceSettings
from kiosk.engine import Outcome
from kiosk.journal import EventRow, TxnRow
from kiosk.late_credit import plan
from kiosk.payments.simulated import SimulatedWallet
from kiosk.reconcile import to_reconcile
from kiosk.runtime import Runtime
from tests.events import until

GLOBE = "09171234567"
INTL = "639171234567"
# The late check, fast: every round 0.05 s, a reference asked at most every 0.2 s.
FAST_LATE = {"late_check_interval_s": 0.05, "late_check_max_interval_s": 0.2}

Make = Callable[..., Awaitable[Runtime]]


@pytest.fixture
def sim() -> Iterator[ReloadlySimulator]:
    s = ReloadlySimulator().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
async def kiosk(sim: ReloadlySimulator, tmp_path: Path) -> AsyncIterator[Make]:
    """make(**settings) -> a started kiosk on tmp_path whose provider is the simulator
    (one at a time: a second make stops the first)."""
    running: list[Runtime] = []

    async def make(**keys: Any) -> Runtime:
        for old in running:
            await old.stop()
        running.clear()
        s = config.load(data_dir=tmp_path)
        options = {"base_url": sim.url, "auth_url": sim.url + "/oauth/token",
                   "client_id": "kiosk", "client_secret": "secret", "timeout_s": 0.5,
                   "verify": False, "operator_ids": dict(sim.operator_ids)}
        s = replace(s, devices={**s.devices, "backend": DeviceSettings("reloadly", options)},
                    backend_timeout_s=1, query_interval_s=0.05)
        s = replace(s, **keys)
        devices = {"sim_reader": SimulatedSimReader(delay_s=0.01),
                   "cash": SimulatedBillAcceptor(s.cash_denominations, delay_s=0.01),
                   "card": SimulatedCardTerminal(delay_s=0.01),
                   "printer": SimulatedPrinter(delay_s=0.01),
                   "wallet": SimulatedWallet(s.currency, delay_s=0.01)}
        rt = Runtime(s, devices=devices)
        await rt.start()
        running.append(rt)
        return rt

    yield make
    for rt in running:
        await rt.stop()


async def buy(rt: Runtime, method: str = "cash", notes: tuple[int, ...] = (5000,),
              amount: int = 5000) -> str:
    """A globe-load of `amount` paid in cash (these notes) or by card; -> its reference."""
    for e in (ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True)):
        rt.post(e)
    await until(lambda: rt.state.offered is not None, "the number checked")
    rt.post(ev.ChooseProduct("globe-load", amount))
    rt.post(ev.ChoosePayment(method))
    ref = rt.state.txn.ref
    assert ref is not None
    if method == "cash":
        cash: SimulatedBillAcceptor = rt.devices["cash"]
        for v in notes:
            await until(lambda: cash.enabled and cash.escrow is None, "the acceptor")
            assert cash.insert(v)
            await until(lambda v=v: cash.escrow is None and v in cash.record.stacked,
                        "the note stacked")
    return ref


def commit_late(sim: ReloadlySimulator, ref: str, amount: int = 5000) -> None:
    """The provider processes the kiosk's top-up request `ref` now."""
    sim.set_mode("succeed")
    what, code, body, _delay = sim.topup({
        "customIdentifier": ref, "amount": amount / 100, "operatorId": 1001,
        "useLocalAmount": True, "recipientPhone": {"countryCode": "PH", "number": INTL}})
    assert (what, code, body["status"]) == ("json", 200, "SUCCESSFUL")


def row(rt: Runtime, ref: str) -> TxnRow:
    r = rt.journal.transaction(ref)
    assert r is not None
    return r


def events(rt: Runtime, ref: str, kind: str) -> list[EventRow]:
    return [e for e in rt.journal.events(ref) if e.kind == kind]


def voucher_status(rt: Runtime, code: str) -> str:
    v = rt.journal.voucher(code)
    assert v is not None
    return str(v["status"])


def sends(sim: ReloadlySimulator) -> int:
    """Top-up requests the kiosk sent (commit_late is the provider's own doing)."""
    return sim.requests.count(("POST", "/topups"))


def lookups(sim: ReloadlySimulator) -> int:
    return sum(1 for m, p in sim.requests if p == "/topups/reports/transactions")


def assert_books_balance(rt: Runtime, *refs: str) -> None:
    """Every unit of money of these references accounted for, and the X report of the
    period finds no discrepancy (its figures recomputed from the postings agree too)."""
    for ref in refs:
        assert ledger.imbalance(books.ref_sums(rt.journal.db, ref)) == 0, (
            ref, books.ref_sums(rt.journal.db, ref))
    rep = reports.x_report(rt.journal, catalog=rt.settings.catalog)
    assert rep.discrepancies == []
    assert reports.check(rep, rt.journal, rt.settings.catalog) == []


# ---------------------------------------------------------------- not found is not final
async def test_not_found_within_the_window_stays_pending_and_a_late_commit_succeeds(
        sim: ReloadlySimulator, kiosk: Make) -> None:
    rt = await kiosk(max_unknown_queries=2)             # not_found_window_s: 900 by default
    sim.set_mode("lost")
    ref = await buy(rt)
    await until(lambda: rt.state.txn.outcome is Outcome.PENDING, "the PENDING receipt")
    assert [(v["amount"], v["status"]) for v in rt.journal.vouchers(ref)] == [(5000, "held")]
    assert row(rt, ref).status == "open"
    rt.post(ev.Done())                                  # the customer leaves
    seen = lookups(sim)
    await until(lambda: lookups(sim) >= seen + 2, "the background session asking again")
    assert events(rt, ref, "TopUpFailed") == []
    assert {e.data["detail"] for e in events(rt, ref, "TopUpUnknown")} >= {"not_found"}
    assert sim.credits == {}

    commit_late(sim, ref)
    await until(lambda: row(rt, ref).status == "closed", "the late commit to be found")
    r = row(rt, ref)
    assert (r.outcome, r.paid, r.credited, r.voucher) == ("success", 5000, 5000, 0)
    assert [v["status"] for v in rt.journal.vouchers(ref)] == ["void"]   # no voucher as well
    assert sends(sim) == 1 and sim.credit_count == {ref: 1}    # never sent again
    assert_books_balance(rt, ref)


async def test_not_found_after_the_window_is_a_failure(sim: ReloadlySimulator,
                                                       kiosk: Make) -> None:
    rt = await kiosk(max_unknown_queries=100, not_found_window_s=0.4)
    sim.set_mode("lost")
    ref = await buy(rt)
    await until(lambda: row(rt, ref).status == "closed", "the failure after the window")
    r = row(rt, ref)
    assert (r.outcome, r.paid, r.credited, r.voucher) == ("failed_voucher", 5000, 0, 5000)
    [failed] = events(rt, ref, "TopUpFailed")
    [sent] = events(rt, ref, "TopUp")
    assert failed.data["reason"] == "backend.not_received"
    assert failed.ts - sent.ts >= 0.4
    unknown = [e.data["detail"] for e in events(rt, ref, "TopUpUnknown")]
    assert unknown.count("not_found") >= 2              # asked again, with no failure
    assert [(v["amount"], v["status"]) for v in rt.journal.vouchers(ref)] == [(5000, "active")]
    assert sends(sim) == 1


# ---------------------------------------------------------------- late credits
@pytest.mark.parametrize("case", ["voucher", "change", "pending"])
async def test_a_late_credit_voids_the_unused_voucher(sim: ReloadlySimulator, kiosk: Make,
                                                      case: str) -> None:
    """voucher: failed at once (after the window); change: 60.00 paid for 50.00, the
    voucher keeps the change; pending: the customer left with the held voucher, made valid
    when the window passed, then the credit arrives."""
    rt = await kiosk(max_unknown_queries=1 if case == "pending" else 100,
                     not_found_window_s=0.3, **FAST_LATE)
    sim.set_mode("lost")
    ref = await buy(rt, notes=(2000, 2000, 2000) if case == "change" else (5000,))
    if case == "pending":
        await until(lambda: rt.state.txn.outcome is Outcome.PENDING, "the PENDING receipt")
        rt.post(ev.Done())
    await until(lambda: row(rt, ref).status == "closed", "the failure")
    paid = row(rt, ref).paid
    assert (row(rt, ref).outcome, row(rt, ref).voucher) == ("failed_voucher", paid)
    [voucher] = rt.journal.vouchers(ref)
    assert (voucher["amount"], voucher["status"]) == (paid, "active")
    seen = lookups(sim)
    await until(lambda: lookups(sim) >= seen + 2, "the late check asking")
    assert events(rt, ref, "LateCredit") == []          # nothing credited: nothing done

    commit_late(sim, ref)
    await until(lambda: events(rt, ref, "LateCredit"), "the late credit")
    [late] = events(rt, ref, "LateCredit")
    change = paid - 5000
    assert late.data == {"ref": ref, "operator_ref": late.data["operator_ref"], "amount": 5000,
                         "voucher_code": voucher["code"], "cancelled": 5000, "to_recover": 0,
                         "how": "voucher_unused"}
    assert late.data["operator_ref"].startswith("OP")
    after = rt.journal.voucher(voucher["code"])
    assert after is not None
    if change:
        assert (after["status"], after["amount"]) == ("active", change)
    else:
        assert after["status"] == "void"
        today = datetime.now(UTC).date().isoformat()
        refused = rt.journal.redeem_voucher(ref, voucher["code"], today)
        assert refused == ev.VoucherRefused(ref, voucher["code"], "void")
    [status] = [e for e in events(rt, ref, "SetVoucherStatus") if e.seq > late.seq]
    assert status.data["status"] == ("active" if change else "void")
    # The close stands as journaled; the late credit is its own record, reconciled by itself.
    assert (row(rt, ref).outcome, row(rt, ref).credited) == ("failed_voucher", 0)
    assert ref not in to_reconcile(rt.journal.db, rt.journal.currency)
    assert_books_balance(rt, ref)
    rep = reports.x_report(rt.journal)
    assert rep.topups.credited == 5000                  # the provider did deliver it
    assert sim.credits == {ref: 5000} and sends(sim) == 1


async def test_a_late_credit_after_the_voucher_was_redeemed_is_flagged(
        sim: ReloadlySimulator, kiosk: Make, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    rt = await kiosk(max_unknown_queries=100, not_found_window_s=0.3, **FAST_LATE)
    sim.set_mode("lost")
    ref = await buy(rt)
    await until(lambda: row(rt, ref).status == "closed", "the failure")
    code = rt.state.txn.voucher_code
    rt.post(ev.Done())
    sim.set_mode("succeed")
    other = await buy(rt, "voucher")                    # the voucher pays another top-up
    rt.post(ev.VoucherEntered(code))
    await until(lambda: row(rt, other).status == "closed", "the voucher's top-up")
    assert row(rt, other).outcome == "success"
    assert voucher_status(rt, code) == "redeemed"

    commit_late(sim, ref)
    await until(lambda: events(rt, ref, "LateCredit"), "the late credit")
    [late] = events(rt, ref, "LateCredit")
    assert (late.data["amount"], late.data["cancelled"], late.data["to_recover"],
            late.data["how"]) == (5000, 0, 5000, "voucher_redeemed")
    assert [e for e in events(rt, ref, "SetVoucherStatus") if e.seq > late.seq] == []
    assert voucher_status(rt, code) == "redeemed"
    alerts = [r.getMessage() for r in caplog.records if "ALERT late credit" in r.getMessage()]
    assert len(alerts) == 1 and ref in alerts[0] and "PHP 50.00" in alerts[0]
    assert code not in alerts[0] and f"...{code[-4:]}" in alerts[0]
    assert_books_balance(rt, ref, other)
    [words] = to_reconcile(rt.journal.db, rt.journal.currency)[ref]
    assert "redeemed already" in words and "recover PHP 50.00" in words

    assert cli.main(["journal", "list", "--unresolved", "--data-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert ref in text and "recover PHP 50.00" in text and other not in text
    assert cli.main(["journal", "list", "--unresolved", "--json",
                     "--data-dir", str(tmp_path)]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["ref"] == ref and "write it off" in listed["how"]
    assert listed["msisdn"] != GLOBE                    # masked


async def test_a_failure_that_turns_out_successful_after_a_card_reversal_is_flagged(
        sim: ReloadlySimulator, kiosk: Make) -> None:
    rt = await kiosk(**FAST_LATE)
    card: SimulatedCardTerminal = rt.devices["card"]
    sim.set_mode("fail")                                # the provider says FAILED ...
    ref = await buy(rt, "card")
    await until(lambda: row(rt, ref).status == "closed", "the reversal")
    assert (row(rt, ref).outcome, row(rt, ref).refunded) == ("failed_refunded", 5000)
    assert card.ledger.reversed == {ref: 5000}
    commit_late(sim, ref)                               # ... then credits it after all
    await until(lambda: events(rt, ref, "LateCredit"), "the late credit")
    [late] = events(rt, ref, "LateCredit")
    assert (late.data["to_recover"], late.data["how"]) == (5000, "card_reversed")
    assert "card payment was reversed" in to_reconcile(rt.journal.db, "PHP")[ref][0]
    assert_books_balance(rt, ref)


async def test_the_late_check_goes_on_after_a_restart(sim: ReloadlySimulator,
                                                      kiosk: Make) -> None:
    rt = await kiosk(max_unknown_queries=100, not_found_window_s=0.2)
    sim.set_mode("lost")
    ref = await buy(rt)
    await until(lambda: row(rt, ref).status == "closed", "the failure")
    commit_late(sim, ref)                               # while the kiosk is off
    rt = await kiosk(**FAST_LATE)                       # the same folder, started again
    await until(lambda: events(rt, ref, "LateCredit"), "the late credit")
    assert rt.journal.vouchers(ref)[0]["status"] == "void"
    assert_books_balance(rt, ref)


async def test_nothing_older_than_the_late_check_hours_is_asked(sim: ReloadlySimulator,
                                                               kiosk: Make) -> None:
    rt = await kiosk(max_unknown_queries=100, not_found_window_s=0.1,
                     late_check_hours=1 / 3600, **FAST_LATE)    # one second
    sim.set_mode("lost")
    ref = await buy(rt)
    await until(lambda: row(rt, ref).status == "closed", "the failure")
    await asyncio.sleep(1.1)                            # the second has passed
    seen = lookups(sim)
    commit_late(sim, ref)
    await asyncio.sleep(0.4)
    assert lookups(sim) == seen and events(rt, ref, "LateCredit") == []


# ---------------------------------------------------------------- the rules, pure
def test_a_late_credit_posts_credited_cancelled_and_to_recover() -> None:
    P, K = ledger.Posting, ledger.Kind
    rec = ev.LateCredit("R1", "OP1", 5000, "1234", 4000, 1000, "voucher_unused")
    assert ledger.postings(rec, "R1") == [P(K.CREDITED, "R1", 5000, 0, "late"),
                                          P(K.VOUCHER_CANCELLED, "R1", 4000, 0, "late"),
                                          P(K.TO_RECOVER, "R1", 1000, 0, "late")]
    assert ledger.imbalance({"cash_in": 5000, "voucher_issued": 5000, "credited": 5000,
                             "voucher_cancelled": 5000}) == 0
    assert ledger.imbalance({"cash_in": 5000, "voucher_issued": 5000, "credited": 5000}) == -5000


def test_plan_cancels_unused_vouchers_first_and_keeps_the_change() -> None:
    r = TxnRow("R1", 1, 0.0, GLOBE, "globe", "globe-load", 5000, "PHP", "cash", "closed",
               "failed_voucher", 6000, 0, 6000, 0, 10.0)
    v = {"code": "C1", "amount": 6000, "status": "active", "issued_ts": 9.0}
    late = {"code": "C2", "amount": 3000, "status": "active", "issued_ts": 11.0}  # a late payment's
    assert plan(r, [v, late], 5000, "OP1") == [
        ev.LateCredit("R1", "OP1", 5000, "C1", 5000, 0, "voucher_unused"),
        ev.SetVoucherStatus("R1", "C1", "active", amount=1000)]
    used = dict(v, status="redeemed")
    assert plan(r, [used], 5000, "OP1") == [
        ev.LateCredit("R1", "OP1", 5000, "C1", 0, 5000, "voucher_redeemed")]
