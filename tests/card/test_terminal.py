"""The ZVT driver against the byte-exact terminal simulator, through a real pty.

In every scenario the driver's results agree with the terminal's ledger: a payment reported
approved is in `ledger.authorised` with its amount, nothing else is, and every reversal the
kiosk asked for happened exactly once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from drivers import registry
from drivers.base import CardResult
from drivers.card_terminal.terminal import ZvtTerminal
from kiosk import events as ev
from tests.events import EventQueue

FAST = {"t1_s": 0.2, "t3_s": 0.6, "t4_s": 3.0}


class Harness(EventQueue):
    def __init__(self, **opts: Any) -> None:
        super().__init__()
        # The real driver on the terminal simulator's pty: the registry's "zvt-sim".
        self.term = registry.create("card", "zvt-sim", **{**FAST, **opts})
        self.sim = self.term.simulator
        self.sim.step_s, self.sim.t1_s, self.sim.t3_s = 0.02, 0.2, 0.6

    async def start(self) -> Harness:
        await self.term.start(self.put)
        await self.expect(ev.DeviceStatus, ok=True)
        return self

    def texts(self) -> list[str]:
        self.seen += self.drain()
        return [e.text for e in self.seen if isinstance(e, ev.CardText)]


@pytest.fixture
async def h():
    harness = await Harness().start()
    yield harness
    await harness.term.stop()


def assert_agrees(sim: Any, *approved: CardResult) -> None:
    assert sim.ledger.authorised == {r.receipt_no: r.amount for r in approved}


async def test_approved_payment_reports_texts_receipt_and_no_card_number(h):
    r = await h.term.authorise("K1-000001", 15000)
    assert r.approved and r.reason == "" and r.result_code == 0 and r.amount == 15000
    assert (r.receipt_no, r.trace, r.terminal_id, r.card_name) == (
        "0001", "000001", "52500038", "Mastercard")
    assert len(r.auth_code) == 6 and "AMOUNT PHP 150.00" in r.lines
    assert h.texts()[:2] == ["Insert, tap or swipe your card",
                             "Please enter your PIN on the card terminal"]
    assert_agrees(h.sim, r)
    assert h.term.available() and h.term.diagnostics()["terminal_id"] == "52500038"


async def test_declined(h):
    h.sim.next_outcome = "decline"
    r = await h.term.authorise("K1-000002", 15000)
    assert not r.approved and r.reason == "declined" and r.result_code == 0x05
    assert r.receipt_no and "DECLINED (05)" in r.lines
    assert_agrees(h.sim)


async def test_customer_abort_on_the_terminal(h):
    h.sim.next_outcome = "customer_abort"
    r = await h.term.authorise("K1-000003", 15000)
    assert (r.approved, r.reason, r.result_code) == (False, "aborted", 0x6C)
    assert_agrees(h.sim)


async def test_kiosk_abort_while_the_terminal_waits_for_the_card(h):
    h.sim.step_s = 1.0
    task = asyncio.create_task(h.term.authorise("K1-000004", 15000))
    await h.expect(ev.CardText)                       # "insert card": the payment runs
    await h.term.abort()
    r = await asyncio.wait_for(task, 5)
    assert (r.approved, r.reason, r.result_code) == (False, "aborted", 0x6C)
    assert "ECR_ABORT" in h.sim.commands
    assert_agrees(h.sim)


async def test_abort_without_a_payment_does_nothing(h):
    await h.term.abort()
    r = await h.term.authorise("K1-000005", 500)
    assert r.approved and "ECR_ABORT" not in h.sim.commands


async def test_no_answer_is_unknown_then_resolved_by_last_result_and_reversed():
    h = await Harness(t4_s=1.0).start()
    try:
        await _no_answer_then_last_result(h)
    finally:
        await h.term.stop()


async def _no_answer_then_last_result(h: Harness) -> None:
    h.sim.next_outcome, h.sim.no_answer_s = "no_answer", 2.2
    t0 = time.monotonic()
    r = await h.term.authorise("K1-000006", 20000)
    assert (r.approved, r.reason) == (False, "unknown")
    assert 1.0 <= time.monotonic() - t0 < 2.2         # T4, then T3 after the 06 B0
    assert "ECR_ABORT" in h.sim.commands              # tried; too late at the bank stage
    assert await h.term.last_result("K1-000006", 20000) is None   # still busy (84 9C)
    deadline = time.monotonic() + 5
    while h.term.late_results == 0:                   # the bank's answer arrives late
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    found = await h.term.last_result("K1-000006", 20000)
    assert found is not None and found.approved and found.receipt_no == "0001"
    assert_agrees(h.sim, found)
    undone = await h.term.reverse("K1-000006", 20000)      # the top-up failed
    assert undone.approved and h.sim.ledger.reversed == {"0001": 20000}


async def test_last_result_when_the_payment_never_happened(h):
    first = await h.term.authorise("K1-000007", 1000)
    h.seen += h.drain()
    h.sim.step_s = 1.0
    task = asyncio.create_task(h.term.authorise("K1-000008", 3000))
    await h.expect(ev.CardText)
    h.sim.unplug(0.3)                                 # mid-payment, before the bank
    r = await asyncio.wait_for(task, 5)
    assert r.reason == "unknown"
    await h.expect(ev.DeviceStatus, ok=False)
    await h.expect(ev.DeviceStatus, ok=True, timeout=8)
    verdict = await h.term.last_result("K1-000008", 3000)
    assert verdict is not None and (verdict.approved, verdict.reason) == (False, "aborted")
    assert_agrees(h.sim, first)
    assert await h.term.last_result("K1-000008", 3000) is None    # resolved: forgotten


async def test_last_result_for_a_payment_the_driver_never_sent(h):
    assert await h.term.last_result("K9-000001", 100) is None


async def test_a_payment_cancelled_before_it_started_is_never_sent(h):
    h.sim.step_s = 0.3
    first = asyncio.create_task(h.term.authorise("K3-000001", 100))
    await h.expect(ev.CardText)
    second = asyncio.create_task(h.term.authorise("K3-000002", 200))
    await asyncio.sleep(0.05)
    second.cancel()                                   # queued behind the first one
    assert (await first).approved
    await asyncio.sleep(0.3)
    assert h.sim.commands.count("AUTHORISATION") == 1 and h.sim.ledger.authorised == {
        "0001": 100}


async def test_slow_terminal_within_t4(h):
    h.sim.next_outcome, h.sim.slow_s = "slow", 0.4
    r = await h.term.authorise("K1-000009", 15000)
    assert r.approved
    assert_agrees(h.sim, r)


async def test_garbage_and_a_bad_crc_lose_nothing(h):
    h.sim.next_outcome = "garbage"
    r = await h.term.authorise("K1-000010", 15000)
    assert r.approved
    decoder = h.term._channel.decoder
    assert decoder.garbage_bytes >= 11 and decoder.bad_frames == 1
    assert_agrees(h.sim, r)


async def test_reversal_accepted_exactly_once(h):
    r = await h.term.authorise("K1-000011", 15000)
    first = await h.term.reverse("K1-000011", 15000)
    again = await h.term.reverse("K1-000011", 15000)
    assert first.approved and again == first and first.receipt_no == "0002"
    assert h.sim.commands.count("REVERSAL") == 1
    assert h.sim.ledger.reversed == {r.receipt_no: 15000}


async def test_reversal_refused(h):
    r = await h.term.authorise("K1-000012", 15000)
    h.sim.reversal_works = False
    refused = await h.term.reverse("K1-000012", 15000, r.receipt_no)
    assert (refused.approved, refused.reason, refused.result_code) == (False, "declined", 0xB5)
    assert h.sim.ledger.reversed == {}
    h.sim.reversal_works = True                       # the kiosk may try again later
    assert (await h.term.reverse("K1-000012", 15000)).approved


async def test_reversal_without_a_receipt_number(h):
    r = await h.term.reverse("K1-404", 100)
    assert not r.approved and "receipt" in r.text and h.sim.commands.count("REVERSAL") == 0


async def test_every_failed_top_up_is_reversed_exactly_once(h):
    outcomes = ["approve", "decline", "approve", "customer_abort", "approve"]
    failed_top_ups = {0, 4}
    results = []
    for i, outcome in enumerate(outcomes):
        h.sim.next_outcome = outcome
        r = await h.term.authorise(f"K2-{i:06d}", 1000 * (i + 1))
        results.append(r)
        if r.approved and i in failed_top_ups:
            assert (await h.term.reverse(f"K2-{i:06d}", r.amount)).approved
            await h.term.reverse(f"K2-{i:06d}", r.amount)            # a retry: no effect
    approved = [r for r in results if r.approved]
    assert [results.index(r) for r in approved] == [0, 2, 4]
    assert_agrees(h.sim, *approved)
    assert h.sim.ledger.reversed == {results[i].receipt_no: results[i].amount
                                     for i in failed_top_ups}
    reversals = [t for t in h.sim.ledger.transactions if t.kind == "reversal"]
    assert len(reversals) == 2 and all(t.outcome == "approved" for t in reversals)


async def test_unplugged_while_idle_reconnects_and_registers_again(h):
    h.sim.unplug(0.5)
    lost = await h.expect(ev.DeviceStatus, ok=False)
    assert "unavailable" in lost.detail and not h.term.available()
    r = await h.term.authorise("K1-000013", 100)      # meanwhile: offline, nothing sent
    assert r.reason == "offline"
    assert h.sim.wait_plugged(5)
    await h.expect(ev.DeviceStatus, ok=True, timeout=8)
    assert h.sim.registered and h.sim.commands.count("REGISTRATION") == 2
    ok = await h.term.authorise("K1-000014", 100)
    assert ok.approved
    assert_agrees(h.sim, ok)


async def test_terminal_that_forgot_its_registration(h):
    h.sim.registered = False                          # e.g. restarted behind a USB hub
    r = await h.term.authorise("K1-000015", 100)
    assert (r.reason, r.result_code) == ("offline", 0x6B)
    await h.expect(ev.DeviceStatus, ok=False)
    await h.expect(ev.DeviceStatus, ok=True, timeout=8)
    assert (await h.term.authorise("K1-000016", 100)).approved


async def test_terminal_offline_at_start_then_back():
    h = Harness()
    h.sim.offline = True
    await h.term.start(h.put)
    try:
        down = await h.expect(ev.DeviceStatus, ok=False)
        assert "does not answer" in down.detail and not h.term.available()
        r = await h.term.authorise("K1-000017", 100)
        assert (r.approved, r.reason) == (False, "offline")
        assert h.sim.ledger.transactions == []
        h.sim.offline = False
        await h.expect(ev.DeviceStatus, ok=True, timeout=10)
        assert h.term.available()
    finally:
        await h.term.stop()


async def test_no_port():
    term = ZvtTerminal(port="/nonexistent/zvt", **FAST)
    q = EventQueue()
    await term.start(q.put)
    try:
        e = await q.expect(ev.DeviceStatus, ok=False)
        assert "unavailable" in e.detail
        assert (await term.authorise("K1-000018", 100)).reason == "offline"
    finally:
        await term.stop()


async def test_stop_during_a_payment_reports_unknown(h):
    h.sim.step_s = 2.0
    task = asyncio.create_task(h.term.authorise("K1-000019", 100))
    await h.expect(ev.CardText)
    await h.term.stop()
    r = await asyncio.wait_for(task, 5)
    assert r.reason == "unknown"
    assert (await h.term.authorise("K1-000020", 100)).reason == "offline"


async def test_status_enquiry(h):
    st = await h.term.status()
    assert st["ok"] and st["terminal_status"] == 0 and str(st["sw_version"]).startswith("ZVTSIM")


def test_configuration_errors():
    with pytest.raises(ValueError, match="6 digits"):
        ZvtTerminal(password="1234")
    with pytest.raises(ValueError, match="currency"):
        ZvtTerminal(currency="XXX")


# ---------------------------------------------------------------------------- self-test
@pytest.fixture
def sim():
    from drivers.card_terminal.simulator import ZvtSimulator
    s = ZvtSimulator(step_s=0.02).start()
    yield s
    s.stop()


def test_diag_card_pays_shows_texts_and_reverses(sim, capsys):
    from drivers.card_terminal.selftest import diag_card
    assert diag_card(sim.link, 100, keep=False, as_json=False) == 0
    out = capsys.readouterr().out
    assert "Insert, tap or swipe your card" in out and "AMOUNT PHP 1.00" in out
    assert "reversal   approved" in out and out.rstrip().endswith("exit 0")
    assert sim.ledger.authorised == sim.ledger.reversed == {"0001": 100}


def test_diag_card_keep_and_json(sim, capsys):
    import json

    from drivers.card_terminal.selftest import diag_card
    assert diag_card(sim.link, 250, keep=True, as_json=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["payment"]["approved"] and report["reversal"] is None
    assert report["terminal_id"] == "52500038" and report["exit"] == 0 and report["texts"]
    assert sim.ledger.reversed == {}


@pytest.mark.parametrize("setup,code", [("decline", 2), ("customer_abort", 2),
                                        ("reversal_refused", 3)])
def test_diag_card_exit_codes(sim, capsys, setup, code):
    from drivers.card_terminal.selftest import diag_card
    if setup == "reversal_refused":
        sim.reversal_works = False
    else:
        sim.next_outcome = setup
    assert diag_card(sim.link, 100, keep=False, as_json=False) == code
    if code == 3:
        assert "reverse receipt 0001 at the terminal" in capsys.readouterr().out


def test_diag_card_without_a_port(capsys):
    from drivers.card_terminal.selftest import diag_card
    assert diag_card("/nonexistent/zvt", 100, keep=False, as_json=False) == 4
    assert "not_ready" in capsys.readouterr().out
