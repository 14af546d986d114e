"""The card number a terminal sends (BMP 22 of its 04 0F, masked with E nibbles or in the
clear, and printed on its receipt lines) never gets past the driver beyond its last four
digits: not in the driver's results, not in the kiosk's events, journal or printed receipt,
not in any log line. The real driver and the kiosk against the ZVT simulator on a pty."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kiosk.engine import Phase
from tests.card.test_card_runtime import make_runtime, pay_card
from tests.card.test_terminal import Harness
from tests.events import until

MASKED, CLEAR = "476173EEEEEE0119", "4761739001010119"


def leaks(text: str, pan: str) -> list[str]:
    """Every run of 5 consecutive digits of `pan` found in `text`: more than the last four.
    ("476173" and "90010" would be; "0119" is allowed.)"""
    windows = {pan[i:i + 5] for i in range(len(pan) - 4) if pan[i:i + 5].isdigit()}
    return sorted(w for w in windows if w in text)


def test_the_leak_check_finds_what_it_must():
    assert leaks(f"PAN {MASKED}", MASKED) == ["47617", "76173"]
    assert leaks("card 4761 7390 0101 0119", CLEAR) == []      # spaced: digits checked below
    assert leaks("4761739001010119", CLEAR) and not leaks("************0119", CLEAR)


@pytest.fixture
async def h():
    harness = await Harness().start()
    yield harness
    await harness.term.stop()


@pytest.mark.parametrize("pan", [MASKED, CLEAR])
async def test_driver_keeps_only_the_last_four_digits(h, caplog, pan):
    h.sim.card_pan = pan
    with caplog.at_level(logging.DEBUG):
        paid = await h.term.authorise("K7-000001", 15000)
        again = await h.term.last_result("K7-000001", 15000)    # nothing unknown: None
        undone = await h.term.reverse("K7-000001", 15000)
    assert paid.approved and paid.card_last4 == "0119"
    assert again is None and undone.approved and undone.card_last4 == "0119"
    # The terminal printed the number as it has it; the driver passes on the last four.
    assert "PAN ************0119" in paid.lines and "PAN ************0119" in undone.lines
    assert h.sim.ledger.authorised == h.sim.ledger.reversed == {"0001": 15000}
    texts = [repr(paid), repr(undone), *h.texts(), *(r.getMessage() for r in caplog.records)]
    for text in texts:
        assert leaks(text, pan) == [], text
        assert pan[:6] not in text.replace(" ", "")


async def test_a_not_completed_payment_and_its_resolution_carry_only_the_last_four(h):
    h.term.completion_s = 0.3
    h.sim.card_pan, h.sim.next_outcome = CLEAR, "no_completion"
    r = await h.term.authorise("K7-000002", 2500)
    found = await h.term.last_result("K7-000002", 2500)
    assert r.reason == "not_completed" and r.card_last4 == "0119"
    assert found is not None and found.approved and found.card_last4 == "0119"
    assert any(line == "PAN ************0119" for line in found.lines)
    for text in (repr(r), repr(found)):
        assert leaks(text, CLEAR) == []


@pytest.mark.parametrize("pan", [MASKED, CLEAR])
async def test_kiosk_events_journal_and_receipt_hold_no_card_number(tmp_path: Path, caplog,
                                                                   pan: str) -> None:
    rt = make_runtime(tmp_path)
    sim = rt.devices["card"].simulator
    sim.card_pan = pan
    with caplog.at_level(logging.DEBUG):
        await rt.start()
        try:
            await until(rt.devices["card"].available, "the terminal registered")
            ref = await pay_card(rt)
            await until(lambda: rt.state.phase is Phase.RESULT, "the result")
            await until(lambda: rt.devices["printer"].printed, "the receipt printed")
            events = rt.journal.events(ref)
        finally:
            await rt.stop()
    assert rt.state.txn.outcome.value == "success" and sim.ledger.authorised
    receipt = next(e for e in events if e.kind == "CardReceipt").data["lines"]
    assert "PAN ************0119" in receipt
    printed = "\n".join(rt.devices["printer"].printed[-1][0])
    assert "************0119" in printed
    kinds = {e.kind for e in events}
    assert {"CardApproved", "CardCompleted", "CardReceipt"} <= kinds
    for text in [printed, *(str(e.data) for e in events),
                 *(r.getMessage() for r in caplog.records)]:
        assert leaks(text, pan) == [], text
