"""The recovery policy (kiosk/recovery.py): a pure function of a rebuilt transaction."""

from __future__ import annotations

from dataclasses import replace

from kiosk import events as ev
from kiosk.engine import Phase, State, Txn
from kiosk.recovery import resume

REF = "K0001-000009"


def card_state(**txn: object) -> State:
    t = Txn(msisdn="09171234567", operator="globe", product_id="globe-load", amount=5000,
            method="card", ref=REF)
    return State(phase=Phase.PAY_CARD, txn=replace(t, **txn))  # type: ignore[arg-type]


def test_an_approval_without_its_completion_is_reversed() -> None:
    plan = resume(card_state(paid=5000, card_receipt_no="0042"), [], note_pending=False)
    assert plan.carry == (ev.ReverseCard(REF, 5000, "0042"),) and plan.first == ()


def test_a_reversal_asked_before_the_restart_is_asked_again_once() -> None:
    asked = ev.ReverseCard(REF, 5000, "0042")
    plan = resume(card_state(paid=5000, card_receipt_no="0042", cancel_requested=True),
                  [asked], note_pending=False)
    assert plan.carry == (asked,) and plan.first == ()


def test_an_unpaid_card_payment_is_declined() -> None:
    plan = resume(card_state(), [], note_pending=False)
    assert plan.carry == () and plan.first == (ev.CardDeclined(REF, "restart"),)


def test_a_note_told_to_stack_keeps_its_escrow_until_the_acceptor_says() -> None:
    s = State(phase=Phase.PAY_CASH, escrow=5000, escrow_key="e:1",
              txn=Txn(msisdn="09171234567", operator="globe", product_id="globe-load-any",
                      amount=7000, method="cash", ref=REF, paid=2000))
    kept = resume(s, [], note_pending=True)
    assert kept.state.escrow == 5000 and kept.first == (ev.Timeout(),)
    dropped = resume(s, [], note_pending=False)          # never told to stack: given back
    assert dropped.state.escrow == 0 and dropped.state.escrow_key == ""


def test_a_top_up_asked_for_is_looked_up_before_anything_else() -> None:
    s = State(phase=Phase.FULFILLING, txn=Txn(msisdn="09171234567", operator="globe",
                                              product_id="globe-load", amount=5000,
                                              method="cash", ref=REF, paid=5000))
    plan = resume(s, [ev.TopUp(REF, "09171234567", "globe", "globe-load", 5000)], False)
    assert plan.carry == () and plan.first == (ev.TopUpUnknown(REF, "restart"),)


def test_every_effect_the_last_event_asked_for_is_carried_in_order() -> None:
    """A PENDING top-up that failed in the background asked for two things: make the held
    voucher valid, and close. A restart between must carry out both (carrying the first
    alone left the transaction open for ever)."""
    activate = ev.SetVoucherStatus(REF, "1234567890123452", "active", amount=5000)
    close = ev.CloseTransaction(REF, "failed_voucher", 5000, 0, 5000, 0)
    state = replace(card_state(paid=5000), phase=Phase.RESULT)
    plan = resume(state, [activate, close], note_pending=False)
    assert plan.carry == (activate, close) and plan.first == ()
