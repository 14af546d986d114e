"""The asyncio shell with simulated devices: whole purchases, faults, and restarts.

Every device, the backend and the wallet are the package's simulators with tiny delays; the
checks compare what the devices physically did (notes stacked, card ledger, provider ledger,
printed receipts) with what the kiosk journaled.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
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
from kiosk import luhn, vouchers
from kiosk.backend.base import TopUpAnswer
from kiosk.backend.simulated import DEMO_SIMS, SimulatedBackend
from kiosk.config import Settings, load
from kiosk.engine import Outcome, Phase
from kiosk.journal import TxnRow
from kiosk.payments import emvco
from kiosk.payments.simulated import SimulatedWallet
from kiosk.runtime import Runtime

GLOBE = "09171234567"
MASKED = "0917***4567"
TIMEOUT = 5.0


class SlowStatusBackend(SimulatedBackend):
    """A provider whose status look-ups time out until `answers` is set."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.answers = False
        self.status_calls = 0

    async def status(self, ref: str) -> TopUpAnswer:
        self.status_calls += 1
        if not self.answers:
            raise TimeoutError("status look-up timed out")
        return await super().status(ref)


def fast_backend(cls: type[SimulatedBackend] = SimulatedBackend) -> SimulatedBackend:
    return cls(delay_s=0.01, timeout_s=0.05)


def make_devices(settings: Settings, backend: SimulatedBackend | None = None) -> dict[str, Any]:
    return {
        "sim_reader": SimulatedSimReader(delay_s=0.01),
        "cash": SimulatedBillAcceptor(settings.cash_denominations, delay_s=0.01),
        "card": SimulatedCardTerminal(delay_s=0.01),
        "printer": SimulatedPrinter(delay_s=0.01),
        "backend": backend or fast_backend(),
        "wallet": SimulatedWallet(settings.currency, delay_s=0.01),
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load(data_dir=tmp_path)
    return replace(s, query_interval_s=0.01, backend_timeout_s=1)


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings, devices=make_devices(settings))
    await runtime.start()
    yield runtime
    await runtime.stop()


async def until(cond: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


async def choose(rt: Runtime, product: str, amount: int, method: str, number: str = GLOBE) -> str:
    """Walk the screens up to the payment; returns the transaction's reference."""
    for e in (ev.Start(), ev.NumberEntered(number), ev.ConfirmNumber(True)):
        rt.post(e)
    await until(lambda: rt.state.offered is not None, "the number checked")
    for e in (ev.ChooseProduct(product, amount), ev.ChoosePayment(method)):
        rt.post(e)
    ref = rt.state.txn.ref
    assert ref is not None, rt.state
    return ref


def row(rt: Runtime, ref: str) -> TxnRow:
    r = rt.journal.transaction(ref)
    assert r is not None
    return r


def closed(rt: Runtime, ref: str) -> Callable[[], bool]:
    return lambda: row(rt, ref).status == "closed"


def assert_balanced(r: TxnRow) -> None:
    assert r.status == "closed"
    assert r.paid == r.credited + r.voucher + r.refunded, r


async def insert(rt: Runtime, *notes: int) -> None:
    cash: SimulatedBillAcceptor = rt.devices["cash"]
    for v in notes:
        paid = rt.state.txn.paid
        await until(lambda: cash.enabled and cash.escrow is None, "the acceptor to take a note")
        assert cash.insert(v)
        await until(lambda: rt.state.txn.paid == paid + v or rt.state.phase is not Phase.PAY_CASH,
                    f"note {v} to be credited")


def kinds(rt: Runtime, ref: str) -> list[str]:
    return [e.kind for e in rt.journal.events(ref)]


# ---------------------------------------------------------------- purchases
async def test_cash_purchase(rt: Runtime) -> None:
    cash: SimulatedBillAcceptor = rt.devices["cash"]
    printer: SimulatedPrinter = rt.devices["printer"]
    backend: SimulatedBackend = rt.devices["backend"]
    ref = await choose(rt, "globe-load", 10000, "cash")
    assert ref == f"K0001-{rt.journal.ref_tag}-000001"
    assert cash.enabled
    await insert(rt, 5000, 5000)
    await until(closed(rt, ref), "the transaction to close")
    await until(lambda: printer.printed, "the receipt")

    r = row(rt, ref)
    assert r.outcome == "success"
    assert r.paid == r.credited == 10000 and r.voucher == r.refunded == 0
    assert_balanced(r)
    assert sum(cash.record.stacked) == r.paid == 10000          # cash box == journal
    assert cash.record.returned == []
    assert not cash.enabled
    assert backend.ledger == {ref: 10000}
    assert backend.calls.count(ref) == 1
    assert rt.state.phase is Phase.RESULT and rt.state.txn.outcome is Outcome.SUCCESS

    # Journal first: each note is journaled at escrow and at credit, the top-up request before
    # its answer, and the close last.
    k = kinds(rt, ref)
    assert k.count("NoteCredited") == 2
    assert k.index("NoteEscrowed") < k.index("StackNote") < k.index("NoteCredited")
    assert k.index("NoteCredited") < k.index("TopUp") < k.index("TopUpSucceeded")
    assert k[-1] == "CloseTransaction"
    journaled_notes = sum(e.data["value"] for e in rt.journal.events(ref)
                          if e.kind == "NoteCredited")
    assert journaled_notes == sum(cash.record.stacked)

    lines, qr = printer.printed[0]
    text = "\n".join(lines)
    assert MASKED in text
    assert GLOBE not in re.sub(r"[\s\-()]", "", text)     # not even as "0917 123 4567"
    assert "639171234567" not in re.sub(r"[\s\-()+]", "", text)
    assert ref in text and "SUCCESS" in text and "PHP 100.00" in text
    assert qr == f"TOPUP:{ref}"
    assert len(printer.printed) == 1

    rt.post(ev.Done())
    assert rt.state.phase is Phase.IDLE


async def test_note_too_large_is_returned(rt: Runtime) -> None:
    cash: SimulatedBillAcceptor = rt.devices["cash"]
    ref = await choose(rt, "globe-load", 2000, "cash")
    assert cash.insert(5000)
    await until(lambda: cash.record.returned == [5000], "the note to come back")
    assert rt.state.txn.paid == 0 and cash.record.stacked == []
    await insert(rt, 2000)
    await until(closed(rt, ref), "the transaction to close")
    r = row(rt, ref)
    assert (r.outcome, r.paid, r.credited) == ("success", 2000, 2000)


async def test_sim_identifies_the_number(rt: Runtime) -> None:
    iccid = next(k for k, v in DEMO_SIMS.items() if v == GLOBE)
    rt.post(ev.Start())
    rt.devices["sim_reader"].insert(iccid)
    await until(lambda: rt.state.phase is Phase.CONFIRM_NUMBER, "the subscriber look-up")
    assert rt.state.txn.msisdn == GLOBE and rt.state.txn.number_source == "sim"


async def test_backend_failure_gives_a_voucher(rt: Runtime) -> None:
    backend: SimulatedBackend = rt.devices["backend"]
    printer: SimulatedPrinter = rt.devices["printer"]
    backend.mode = "fail"
    ref = await choose(rt, "globe-load", 5000, "cash")
    await insert(rt, 5000)
    await until(closed(rt, ref), "the transaction to close")
    r = row(rt, ref)
    assert (r.outcome, r.paid, r.credited, r.voucher) == ("failed_voucher", 5000, 0, 5000)
    assert_balanced(r)
    assert ref not in backend.ledger
    vs = rt.journal.vouchers(ref)
    assert len(vs) == 1
    v = vs[0]
    assert (v["amount"], v["status"], v["currency"]) == (5000, "active", "PHP")
    assert len(v["code"]) == 16 and v["code"].isdigit()
    assert luhn.valid(v["code"]) and vouchers.well_formed(v["code"])
    assert rt.state.txn.voucher_code == v["code"]
    await until(lambda: printer.printed, "the receipt")
    text = "\n".join(printer.printed[0][0])
    assert vouchers.pretty(v["code"]) in text
    assert "PHP 50.00" in text and MASKED in text


async def test_backend_timeout_is_unknown_then_success(rt: Runtime) -> None:
    backend: SimulatedBackend = rt.devices["backend"]
    backend.mode = "timeout"
    ref = await choose(rt, "globe-load", 2000, "cash")
    await insert(rt, 2000)
    await until(closed(rt, ref), "the transaction to close")
    r = row(rt, ref)
    assert (r.outcome, r.paid, r.credited) == ("success", 2000, 2000)
    k = kinds(rt, ref)
    assert "TopUpUnknown" in k and "QueryTopUp" in k
    assert k.index("TopUpUnknown") < k.index("QueryTopUp") < k.index("TopUpSucceeded")
    assert k.count("TopUp") == 1
    assert backend.calls.count(ref) == 1                 # looked up, never sent again
    assert backend.ledger == {ref: 2000}
    assert rt.journal.vouchers(ref) == []


async def test_pending_topup_resolved_in_the_background(settings: Settings) -> None:
    backend = fast_backend(SlowStatusBackend)
    backend.mode = "timeout"
    rt = Runtime(replace(settings, max_unknown_queries=1), devices=make_devices(settings, backend))
    await rt.start()
    try:
        ref = await choose(rt, "globe-keep", 1500, "cash")
        await insert(rt, 2000)          # 5.00 change, unavoidable
        await until(lambda: rt.state.txn.outcome is Outcome.PENDING, "a PENDING result")
        held = rt.journal.vouchers(ref)
        assert [(v["amount"], v["status"]) for v in held] == [(2000, "held")]
        assert row(rt, ref).status == "open"
        rt.post(ev.Done())                                  # the customer leaves
        assert rt.state.phase is Phase.IDLE
        await until(lambda: backend.status_calls >= 3, "more status look-ups")
        backend.answers = True
        await until(closed(rt, ref), "the background session to resolve it")
        r = row(rt, ref)
        assert (r.outcome, r.paid, r.credited, r.voucher) == ("success", 2000, 1500, 500)
        assert_balanced(r)
        # The held voucher now stands for the change only.
        assert [(v["amount"], v["status"]) for v in rt.journal.vouchers(ref)] == [(500, "active")]
        assert backend.calls.count(ref) == 1
    finally:
        await rt.stop()


async def test_a_pending_answer_heard_first_by_the_customers_session(settings: Settings) -> None:
    """PENDING: the customer's session and the background one both ask the provider. When
    the customer's hears the answer first and closes the transaction, the background
    session's repeat of the same answer counts for nothing and the session ends."""
    backend = fast_backend(SlowStatusBackend)
    backend.mode = "timeout"
    rt = Runtime(replace(settings, max_unknown_queries=1), devices=make_devices(settings, backend))
    await rt.start()
    try:
        ref = await choose(rt, "globe-keep", 1500, "cash")
        await insert(rt, 2000)
        await until(lambda: rt.state.txn.outcome is Outcome.PENDING, "a PENDING result")
        assert ref in rt.background
        rt.post(ev.TopUpSucceeded(ref, "OP1"))             # the customer's query answered
        await until(closed(rt, ref), "the customer's session to close it")
        backend.answers = True                             # the background one hears it too
        await until(lambda: ref not in rt.background, "the background session to end")
        r = row(rt, ref)
        assert (r.outcome, r.paid, r.credited, r.voucher) == ("success", 2000, 1500, 500)
        assert [e.kind for e in rt.journal.events(ref)].count("CloseTransaction") == 1
        assert [e.kind for e in rt.journal.events(ref)].count("TopUpSucceeded") == 1
    finally:
        await rt.stop()


async def test_qr_purchase(rt: Runtime) -> None:
    wallet: SimulatedWallet = rt.devices["wallet"]
    backend: SimulatedBackend = rt.devices["backend"]
    ref = await choose(rt, "globe-load", 5000, "qr")
    assert rt.state.phase is Phase.PAY_QR
    await until(lambda: rt.state.qr_payload, "the QR order")
    fields = {f.tag: f for f in emvco.decode(rt.state.qr_payload)}
    assert fields["54"].value == "50.00" and fields["53"].value == "608"
    assert ref in [c.value for c in fields["62"].children]
    assert wallet.pay(ref)
    await until(closed(rt, ref), "the transaction to close")
    r = row(rt, ref)
    assert (r.outcome, r.method, r.paid, r.credited) == ("success", "qr", 5000, 5000)
    assert wallet.ledger == {ref: r.paid}
    assert backend.ledger == {ref: 5000}


async def test_qr_cancelled_order_is_closed(rt: Runtime) -> None:
    wallet: SimulatedWallet = rt.devices["wallet"]
    ref = await choose(rt, "globe-load", 5000, "qr")
    await until(lambda: rt.state.qr_payload, "the QR order")
    rt.post(ev.Cancel())
    assert rt.state.phase is Phase.IDLE
    await until(lambda: wallet.orders[ref].state == "closed", "the order to be closed")
    assert not wallet.pay(ref)
    r = row(rt, ref)
    assert (r.status, r.outcome, r.paid) == ("closed", "cancelled", 0)


async def test_card_topup_failure_is_reversed_once(rt: Runtime) -> None:
    card: SimulatedCardTerminal = rt.devices["card"]
    backend: SimulatedBackend = rt.devices["backend"]
    backend.mode = "fail"
    ref = await choose(rt, "globe-load", 5000, "card")
    await until(closed(rt, ref), "the transaction to close")
    r = row(rt, ref)
    assert (r.outcome, r.paid, r.credited, r.refunded, r.voucher) == (
        "failed_refunded", 5000, 0, 5000, 0)
    assert_balanced(r)
    assert card.ledger.authorised == {ref: 5000}
    assert card.ledger.reversed == {ref: 5000}
    assert kinds(rt, ref).count("ReverseCard") == 1
    assert kinds(rt, ref).count("CardReversed") == 1
    assert rt.journal.vouchers(ref) == []


async def test_card_declined(rt: Runtime) -> None:
    card: SimulatedCardTerminal = rt.devices["card"]
    card.next_outcome = "decline"
    ref = await choose(rt, "globe-load", 5000, "card")
    await until(lambda: rt.state.phase is Phase.CHOOSE_PAYMENT, "the decline")
    assert rt.state.notice == "card.declined"
    r = row(rt, ref)
    assert (r.status, r.outcome, r.paid) == ("closed", "cancelled", 0)
    assert card.ledger.authorised == {}


async def test_cancel_with_cash_paid_gives_a_voucher(rt: Runtime) -> None:
    cash: SimulatedBillAcceptor = rt.devices["cash"]
    ref = await choose(rt, "globe-load", 5000, "cash")
    await insert(rt, 2000)
    rt.post(ev.Cancel())
    await until(closed(rt, ref), "the transaction to close")
    r = row(rt, ref)
    assert (r.outcome, r.paid, r.voucher) == ("cancelled", 2000, 2000)
    assert not cash.enabled
    assert [v["amount"] for v in rt.journal.vouchers(ref)] == [2000]
    assert "Cancel" in kinds(rt, ref)          # the decision is journaled with the money


async def test_cancel_while_note_in_escrow(settings: Settings) -> None:
    devices = make_devices(settings)
    cash: SimulatedBillAcceptor = devices["cash"]
    cash.delay_s = 0.2                  # time to press Cancel while the note is in escrow
    rt = Runtime(settings, devices=devices)
    await rt.start()
    try:
        ref = await choose(rt, "globe-load", 5000, "cash")
        await insert(rt, 2000)
        assert cash.insert(2000)
        await until(lambda: rt.state.escrow == 2000, "the note in escrow")
        assert not rt.state.timeout_allowed
        rt.post(ev.Cancel())
        assert rt.state.phase is Phase.PAY_CASH           # waits for the note
        await until(closed(rt, ref), "the transaction to close")
        r = row(rt, ref)
        assert (r.outcome, r.paid, r.voucher) == ("cancelled", 4000, 4000)
        assert sum(cash.record.stacked) == 4000
        assert not cash.enabled
    finally:
        await rt.stop()


# ---------------------------------------------------------------- restarts
async def restart(settings: Settings, backend: SimulatedBackend,
                  devices: dict[str, Any] | None = None) -> Runtime:
    """A new kiosk process on the same data dir, the same provider (and, if given, the same
    physical devices)."""
    rt = Runtime(settings, devices=devices or make_devices(settings, backend))
    await rt.start()
    return rt


def silence(old: Runtime) -> None:
    """The old process is gone: its devices' late callbacks reach nobody."""
    for name in ("sim_reader", "cash", "card", "printer"):
        old.devices[name].sink = lambda e: None


async def test_recovery_of_partly_paid_cash(settings: Settings) -> None:
    backend = fast_backend()
    rt = await restart(settings, backend)
    cash: SimulatedBillAcceptor = rt.devices["cash"]
    ref = await choose(rt, "globe-load", 10000, "cash")
    await insert(rt, 2000, 5000)
    await rt.stop()
    silence(rt)

    rt2 = await restart(settings, backend)
    try:
        await until(closed(rt2, ref), "recovery to close the transaction")
        r = row(rt2, ref)
        assert (r.outcome, r.paid, r.credited, r.voucher) == ("cancelled", 7000, 0, 7000)
        assert_balanced(r)
        assert sum(cash.record.stacked) == r.paid
        assert [(v["amount"], v["status"]) for v in rt2.journal.vouchers(ref)] == [
            (7000, "active")]
        assert backend.calls == []
        assert rt2.state.phase is Phase.IDLE               # the new customer is not involved
        await until(lambda: not rt2.background, "the background session to finish")
    finally:
        await rt2.stop()


async def test_recovery_with_a_note_in_escrow(settings: Settings) -> None:
    backend = fast_backend()
    devices = make_devices(settings, backend)
    cash: SimulatedBillAcceptor = devices["cash"]
    rt = Runtime(settings, devices=devices)
    await rt.start()
    ref = await choose(rt, "globe-load", 10000, "cash")
    await insert(rt, 2000)
    cash.stack = lambda value, key="": None    # type: ignore[method-assign]  # dies before stacking
    assert cash.insert(5000)
    await until(lambda: rt.state.escrow == 5000, "the note in escrow")
    await rt.stop()
    silence(rt)

    rt2 = await restart(settings, backend)
    try:
        await until(closed(rt2, ref), "recovery to close the transaction")
        r = row(rt2, ref)
        assert (r.outcome, r.paid, r.voucher) == ("cancelled", 2000, 2000)
    finally:
        await rt2.stop()


@pytest.mark.parametrize("lost", ["reply", "request"])
async def test_recovery_of_a_topup_without_answer(settings: Settings, lost: str) -> None:
    # A request the provider never got fails once the not-found window has passed since it
    # was sent (kiosk/calls_backend.py); short here.
    settings = replace(settings, not_found_window_s=0.3)
    backend = fast_backend()
    rt = Runtime(replace(settings, backend_timeout_s=100), devices=make_devices(settings, backend))
    await rt.start()
    ref = await choose(rt, "globe-load", 5000, "cash")
    if lost == "reply":
        backend.mode, backend.timeout_s = "timeout", 100     # credited, the reply never comes
    else:
        backend.delay_s = 100                               # the request never arrives
    await insert(rt, 5000)
    if lost == "reply":
        await until(lambda: ref in backend.ledger, "the credit at the provider")
    else:
        await until(lambda: ref in backend.calls, "the top-up request")
    assert "TopUp" in kinds(rt, ref)
    assert row(rt, ref).status == "open"
    await rt.stop()
    silence(rt)
    backend.mode, backend.timeout_s, backend.delay_s = "succeed", 0.05, 0.01

    rt2 = await restart(settings, backend)
    try:
        await until(closed(rt2, ref), "recovery to close the transaction")
        r = row(rt2, ref)
        assert_balanced(r)
        assert backend.calls.count(ref) == 1            # looked up, never sent twice
        if lost == "reply":
            assert (r.outcome, r.credited, r.voucher) == ("success", 5000, 0)
            assert backend.ledger == {ref: 5000}
        else:
            assert (r.outcome, r.credited, r.voucher) == ("failed_voucher", 0, 5000)
            assert ref not in backend.ledger
            assert [v["amount"] for v in rt2.journal.vouchers(ref)] == [5000]
        assert "QueryTopUp" in kinds(rt2, ref)
    finally:
        await rt2.stop()

    # A third start finds nothing to do and sends nothing.
    rt3 = await restart(settings, backend)
    try:
        assert rt3.recover() == []
        assert rt3.journal.unresolved() == []
        await asyncio.sleep(0.05)
        assert backend.calls.count(ref) == 1
    finally:
        await rt3.stop()


async def test_recovery_of_a_pending_topup(settings: Settings) -> None:
    backend = fast_backend(SlowStatusBackend)
    backend.mode = "timeout"
    s1 = replace(settings, max_unknown_queries=1)
    rt = Runtime(s1, devices=make_devices(settings, backend))
    await rt.start()
    ref = await choose(rt, "globe-load", 5000, "cash")
    await insert(rt, 5000)
    await until(lambda: rt.state.txn.outcome is Outcome.PENDING, "a PENDING result")
    await rt.stop()
    silence(rt)
    backend.answers = True

    rt2 = await restart(s1, backend)
    try:
        await until(closed(rt2, ref), "recovery to close the transaction")
        r = row(rt2, ref)
        assert (r.outcome, r.credited, r.voucher) == ("success", 5000, 0)
        assert [v["status"] for v in rt2.journal.vouchers(ref)] == ["void"]
        assert backend.calls.count(ref) == 1
    finally:
        await rt2.stop()


class Crash(Exception):
    """The process dies here: this journal write, and every one after it, never happens."""


class Crasher:
    """Makes the n-th journal append (1-based) of a runtime and all later ones fail."""

    def __init__(self, rt: Runtime, n: int) -> None:
        self.n = n
        self.written: list[str] = []
        self.lost: list[ev.Record] = []          # records the dying kiosk could not write
        self._real = rt.journal.enter
        self._real_gate = rt.gate.enter
        rt.journal.enter = self.enter  # type: ignore[method-assign]
        rt.gate.enter = self.gate_enter  # type: ignore[method-assign]

    @property
    def dead(self) -> bool:
        return bool(self.lost)

    def _check(self, rec: ev.Record) -> None:
        if self.dead or len(self.written) + 1 >= self.n:
            self.lost.append(rec)
            raise Crash(f"crash before journaling {rec!r}")
        self.written.append(rec.kind())

    def enter(self, ref: str | None, rec: ev.Record) -> Any:
        self._check(rec)
        return self._real(ref, rec)

    def gate_enter(self, rec: ev.Record, ref: str | None = None) -> Any:
        """The money gate's writes (device threads) die with the process too."""
        self._check(rec)
        return self._real_gate(rec, ref)

    def lost_value(self, kind: type[ev.Record]) -> int:
        return sum(getattr(r, "value", 0) or getattr(r, "amount", 0)
                   for r in self.lost if isinstance(r, kind))


# Journal writes of each flow when nothing goes wrong (a crash before each one is tried).
FLOWS = {
    "cash": 9,            # 2 x (NoteEscrowed, StackNote, NoteCredited), TopUp, answer, close
    "cash-timeout": 11,   # ... TopUp, TopUpUnknown, QueryTopUp, TopUpSucceeded, close
    "cash-cancel": 7,     # NoteEscrowed, StackNote, NoteCredited, Cancel, IssueVoucher, ...
    "card-fail": 8,       # AuthoriseCard, CardApproved, CardCompleted, TopUp, TopUpFailed, ...
}


@pytest.mark.parametrize(("flow", "n"), [(f, n) for f, last in FLOWS.items()
                                         for n in range(1, last + 2)])
async def test_crash_between_any_two_journal_writes(settings: Settings, flow: str,
                                                    n: int) -> None:
    """Kill the kiosk before its n-th journal write; a restart must settle every reference:
    closed, balanced, agreeing with the cash box, the card ledger and the provider, nothing
    credited twice."""
    backend = fast_backend()
    backend.mode = {"cash-timeout": "timeout", "card-fail": "fail"}.get(flow, "succeed")
    devices = make_devices(settings, backend)
    cash: SimulatedBillAcceptor = devices["cash"]
    card: SimulatedCardTerminal = devices["card"]
    rt = Runtime(settings, devices=devices)
    await rt.start()
    crash = Crasher(rt, n)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, _ctx: None)   # device callbacks dying with it
    try:
        if flow == "card-fail":
            await choose(rt, "globe-load", 5000, "card")
        else:
            await choose(rt, "globe-load-any", 7000, "cash")
            for v in ((2000,) if flow == "cash-cancel" else (2000, 5000)):
                await until(lambda: (cash.enabled and cash.escrow is None) or crash.dead,
                            "the acceptor")
                if crash.dead or not cash.insert(v):
                    break
                await until(lambda: cash.escrow is None or crash.dead, "the note's fate")
            if flow == "cash-cancel" and not crash.dead:
                rt.post(ev.Cancel())
        await until(lambda: crash.dead or rt.journal.unresolved() == [], "the end or the crash")
        await asyncio.sleep(0.05)          # let whatever was in flight land (or die)
    except Crash:
        pass
    finally:
        await rt.stop()
        silence(rt)
        loop.set_exception_handler(None)
    assert crash.dead == (n <= FLOWS[flow])
    backend.mode = "succeed"

    rt2 = await restart(settings, backend, devices)
    try:
        rows = rt2.journal.transactions(limit=100)
        assert len(rows) == 1
        ref = rows[0].ref
        await until(closed(rt2, ref), f"recovery (crash before write {n}, after "
                                      f"{crash.written}, lost {crash.lost})")
        r = row(rt2, ref)
        assert_balanced(r)
        assert backend.calls.count(ref) <= 1
        assert r.credited == backend.ledger.get(ref, 0)
        assert r.refunded == card.ledger.reversed.get(ref, 0)
        vs = rt2.journal.vouchers(ref)
        assert sum(v["amount"] for v in vs if v["status"] == "active") == r.voucher
        assert all(v["status"] in ("active", "void") for v in vs)
        # The devices agree with the journal, except for money a device took while the
        # kiosk died writing it down (the note stacked, the approval given).
        orphans = sum(e.data["value"] for e in rt2.journal.events() if e.kind == "OrphanNote")
        assert sum(cash.record.stacked) == r.paid * (r.method == "cash") + crash.lost_value(
            ev.NoteCredited) + orphans
        card_net = card.ledger.authorised.get(ref, 0) - card.ledger.reversed.get(ref, 0)
        assert card_net == (r.paid - r.refunded) * (r.method == "card") + crash.lost_value(
            ev.CardApproved)
    finally:
        await rt2.stop()


async def test_a_wallet_payment_reported_twice_is_accounted_once(tmp_path):
    """The QR poller and the order close can both report the same payment."""
    from kiosk import config
    from kiosk import events as ev
    from kiosk.runtime import Runtime
    rt = Runtime(config.load(data_dir=tmp_path))
    for name in ("sim_reader", "cash", "card", "printer", "backend", "wallet"):
        rt.devices[name].delay_s = 0.01
    await rt.start()
    try:
        for e in (ev.Start(), ev.NumberEntered("09171234567"), ev.ConfirmNumber(True)):
            rt.post(e)
        await until(lambda: rt.state.offered is not None, "the number checked")
        for e in (ev.ChooseProduct("globe-load", 2000), ev.ChoosePayment("qr")):
            rt.post(e)
        for _ in range(200):
            if rt.state.qr_payload:
                break
            await asyncio.sleep(0.01)
        ref = rt.state.txn.ref
        rt.post(ev.Cancel())                                # customer leaves the QR screen
        assert rt.journal.transaction(ref).status == "closed"
        rt.post(ev.QrPaid(ref, 2000, "W00000077"))          # ... but paid on the phone
        rt.post(ev.QrPaid(ref, 2000, "W00000077"))          # reported a second time
        late = [v for v in rt.journal.vouchers(ref)]
        assert [(v["amount"], v["status"]) for v in late] == [(2000, "active")]
    finally:
        await rt.stop()
