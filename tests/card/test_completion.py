"""An approval whose completion (06 0F) never comes, and a reversal answered "already
reversed" (B4): through the driver API the kiosk uses (authorise with the journal-before-
confirm hook, last_result, reverse) and through `kiosk diag card`, against the ZVT
simulator on a real pty. The terminal's ledger is the truth every assertion ends on."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.card_terminal import zvt
from drivers.card_terminal.selftest import diag_card
from drivers.card_terminal.simulator import ZvtSimulator
from kiosk import events as ev
from kiosk.engine import Phase
from tests.card.test_card_runtime import closed, kinds, make_runtime, pay_card
from tests.card.test_terminal import FAST, Harness
from tests.events import until

COMPLETION_S = 0.4


class Kiosk:
    """The kiosk's side of the hook: every approval is journaled before it is confirmed."""

    def __init__(self) -> None:
        self.journaled: list[tuple[str, Any]] = []

    def commit(self, ref: str, r: Any) -> bool:
        self.journaled.append((ref, r))
        return True


@pytest.fixture
async def h():
    harness = await Harness(completion_s=COMPLETION_S).start()
    harness.kiosk = Kiosk()
    harness.term.commit = harness.kiosk.commit
    yield harness
    await harness.term.stop()


async def test_approval_without_completion_is_reported_as_such_never_unknown(h):
    h.sim.next_outcome = "no_completion"
    t0 = time.monotonic()
    r = await h.term.authorise("K8-000001", 15000)
    waited = time.monotonic() - t0
    assert (r.approved, r.reason) == (False, "not_completed")
    assert (r.receipt_no, r.amount, r.result_code) == ("0001", 15000, 0) and len(r.auth_code) == 6
    assert "approved with receipt 0001" in r.text and "no completion" in r.text
    assert waited < FAST["t4_s"]                     # completion_s after the 04 0F, not T4
    assert "ECR_ABORT" not in h.sim.commands         # nothing to abort after an approval
    [(ref, booked)] = h.kiosk.journaled
    assert ref == "K8-000001" and booked.approved and booked.receipt_no == "0001"
    [payment] = h.sim.ledger.transactions
    assert payment.delivered and not payment.completed
    assert h.sim.ledger.authorised == {"0001": 15000} and h.sim.ledger.reversed == {}


async def test_not_completed_approval_that_stands_is_found_then_reversed_once(h):
    """The kiosk asks the terminal; its last transaction is this approval: it stands (the
    kiosk completes it). If the top-up then fails, the reversal gives the money back."""
    h.sim.next_outcome = "no_completion"
    r = await h.term.authorise("K8-000002", 15000)
    found = await h.term.last_result("K8-000002", 15000)
    assert found is not None and found.approved and found.receipt_no == r.receipt_no == "0001"
    undone = await h.term.reverse("K8-000002", 15000)     # by ref: the driver kept the receipt
    assert undone.approved and undone.receipt_no == "0002"
    assert h.sim.ledger.authorised == h.sim.ledger.reversed == {"0001": 15000}


@pytest.mark.parametrize("answer", ["abort", "negative"])
async def test_terminal_reversed_it_itself_and_answers_already_reversed(h, answer):
    """No completion, the terminal reverses the payment itself; the kiosk's reversal is
    answered B4 (06 1E B4, or 84 B4 to the command): reported reversed, not failed."""
    h.sim.next_outcome, h.sim.refuse_reversal_with = "no_completion_reversed", answer
    r = await h.term.authorise("K8-000003", 15000)
    assert (r.approved, r.reason, r.receipt_no) == (False, "not_completed", "0001")
    found = await h.term.last_result("K8-000003", 15000)
    assert found is not None and (found.approved, found.reason) == (False, "aborted")
    assert found.text == "the terminal reversed the payment"
    undone = await h.term.reverse("K8-000003", 15000, r.receipt_no)
    assert (undone.approved, undone.result_code, undone.text) == (
        True, zvt.RESULT_ALREADY_REVERSED, "already reversed")
    assert await h.term.reverse("K8-000003", 15000, r.receipt_no) == undone   # asked once
    assert h.sim.commands.count("REVERSAL") == 1
    assert h.sim.ledger.reversed == {"0001": 15000}     # by the terminal, once
    refused = [t for t in h.sim.ledger.transactions if t.kind == "reversal"]
    assert [(t.outcome, t.result_code) for t in refused] == [("refused", 0xB4)]


@pytest.mark.parametrize("answer", ["abort", "negative"])
async def test_reversal_not_possible_is_still_a_failed_reversal(h, answer):
    r = await h.term.authorise("K8-000004", 15000)
    h.sim.reversal_works, h.sim.refuse_reversal_with = False, answer
    refused = await h.term.reverse("K8-000004", 15000, r.receipt_no)
    assert (refused.approved, refused.reason, refused.result_code) == (
        False, "declined", zvt.RESULT_REVERSAL_NOT_POSSIBLE)
    assert h.sim.ledger.reversed == {}


async def test_line_lost_after_the_approval_is_not_completed_and_resolved(h):
    """The port goes between the approval and its confirmation: the terminal reverses the
    payment it could not report; the driver reports the approval it saw as not completed,
    and after the terminal is back says it was reversed (a reversal is answered B4)."""
    def commit_then_unplug(ref: str, r: Any) -> bool:
        h.kiosk.journaled.append((ref, r))
        h.sim.unplug(0.3)                             # before the kiosk's 80 00 00
        return True
    h.term.commit = commit_then_unplug
    r = await h.term.authorise("K8-000005", 15000)
    assert (r.approved, r.reason, r.receipt_no) == (False, "not_completed", "0001")
    assert "line was lost" in r.text
    await h.expect(ev.DeviceStatus, ok=False)
    await h.expect(ev.DeviceStatus, ok=True, timeout=8)
    found = await h.term.last_result("K8-000005", 15000)
    assert found is not None and (found.approved, found.reason) == (False, "aborted")
    undone = await h.term.reverse("K8-000005", 15000, r.receipt_no)
    assert undone.approved and undone.result_code == zvt.RESULT_ALREADY_REVERSED
    assert h.sim.ledger.authorised == h.sim.ledger.reversed == {"0001": 15000}


# ---------------------------------------------------------------------------- the kiosk
@pytest.mark.parametrize("answer", ["abort", "negative"])
async def test_kiosk_books_approval_and_its_reversal_when_the_terminal_reversed_it(
        tmp_path: Path, caplog, answer: str) -> None:
    """Approved, no completion, the terminal reversed it itself: the kiosk journals
    CardApproved, asks the terminal, journals CardNotCompleted, reverses, gets B4 and books
    CardReversed: paid and refunded cancel out, no top-up, no voucher, no alert."""
    rt = make_runtime(tmp_path, completion_s=COMPLETION_S)
    sim = rt.devices["card"].simulator
    sim.next_outcome, sim.refuse_reversal_with = "no_completion_reversed", answer
    await rt.start()
    try:
        await until(rt.devices["card"].available, "the terminal registered")
        with caplog.at_level(logging.WARNING):
            ref = await pay_card(rt)
            await until(closed(rt, ref), "the transaction closed", timeout=15)
        _books_cancel_out(rt, ref, caplog)
    finally:
        await rt.stop()


def _books_cancel_out(rt: Any, ref: str, caplog: Any) -> None:
    sim = rt.devices["card"].simulator
    k = kinds(rt, ref)
    assert k.index("CardApproved") < k.index("CardNotCompleted") < k.index("ReverseCard") \
        < k.index("CardReversed")
    assert "CardCompleted" not in k and "TopUp" not in k and "CardReversalFailed" not in k
    row = rt.journal.transaction(ref)
    assert row is not None and (row.outcome, row.paid, row.refunded, row.credited,
                                row.voucher) == ("cancelled", 5000, 5000, 0, 0)
    assert rt.journal.vouchers(ref) == [] and ref not in rt.backend.ledger
    [payment] = [t for t in sim.ledger.transactions if t.kind == "payment"]
    assert sim.ledger.authorised == sim.ledger.reversed == {payment.receipt_no: 5000}
    assert [t.result_code for t in sim.ledger.transactions if t.kind == "reversal"] == [0xB4]
    assert not any("ALERT card reversal" in r.getMessage() for r in caplog.records)


async def test_kiosk_completes_an_approval_that_stands_without_completion(
        tmp_path: Path) -> None:
    """Approved, no completion, but the terminal's last transaction is this approval: the
    kiosk completes it and tops up; nothing is reversed."""
    rt = make_runtime(tmp_path, completion_s=COMPLETION_S)
    sim = rt.devices["card"].simulator
    sim.next_outcome = "no_completion"
    await rt.start()
    try:
        await until(rt.devices["card"].available, "the terminal registered")
        ref = await pay_card(rt)
        await until(lambda: rt.state.phase is Phase.RESULT, "the result", timeout=15)
        k = kinds(rt, ref)
        assert k.index("CardApproved") < k.index("CardCompleted") < k.index("TopUp")
        assert "CardNotCompleted" not in k and "ReverseCard" not in k
        assert rt.state.txn.outcome.value == "success" and rt.backend.ledger == {ref: 5000}
        assert sim.ledger.authorised == {rt.state.txn.card_receipt_no: 5000}
        assert sim.ledger.reversed == {}
    finally:
        await rt.stop()


# ---------------------------------------------------------------------------- kiosk diag card
TIMERS = {**FAST, "completion_s": COMPLETION_S}


@pytest.fixture
def sim():
    s = ZvtSimulator(step_s=0.02, t1_s=0.2, t3_s=0.6).start()
    yield s
    s.stop()


@pytest.mark.parametrize("keep", [False, True])
def test_diag_reverses_an_approval_whose_completion_never_comes(sim, capsys, keep):
    sim.next_outcome = "no_completion"
    assert diag_card(sim.link, 100, keep=keep, as_json=False, **TIMERS) == 5
    out = capsys.readouterr().out
    assert ("approved (receipt 0001), completion missing, reversed with receipt 0002: the "
            "card is not charged") in out
    assert "unknown" not in out and out.rstrip().endswith("exit 5")
    assert ("(not kept)" in out) == keep
    assert sim.ledger.authorised == sim.ledger.reversed == {"0001": 100}


@pytest.mark.parametrize("answer", ["abort", "negative"])
def test_diag_when_the_terminal_reversed_it_itself(sim, capsys, answer):
    sim.next_outcome, sim.refuse_reversal_with = "no_completion_reversed", answer
    assert diag_card(sim.link, 100, keep=False, as_json=True, **TIMERS) == 5
    report = json.loads(capsys.readouterr().out)
    assert report["payment"]["reason"] == "not_completed"
    assert report["payment"]["receipt_no"] == "0001"
    assert report["reversal"]["approved"] and report["reversal"]["result_code"] == 0xB4
    assert report["outcome"] == ("approved (receipt 0001), completion missing, already "
                                 "reversed by the terminal")
    assert sim.ledger.authorised == sim.ledger.reversed == {"0001": 100}


def test_diag_not_completed_and_the_reversal_refused(sim, capsys):
    sim.next_outcome, sim.reversal_works = "no_completion", False
    assert diag_card(sim.link, 100, keep=False, as_json=False, **TIMERS) == 3
    out = capsys.readouterr().out
    assert "reverse receipt 0001 at the terminal" in out and "unknown" not in out
    assert sim.ledger.authorised == {"0001": 100} and sim.ledger.reversed == {}


def test_diag_shows_the_last_four_digits_only(sim, capsys):
    sim.card_pan = "476173EEEEEE0119"
    assert diag_card(sim.link, 100, keep=False, as_json=False, **TIMERS) == 0
    out = capsys.readouterr().out
    assert "card ****0119" in out and "PAN ************0119" in out and "476173" not in out
