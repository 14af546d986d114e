"""Engine.step, path by path: the pure state machine and its money rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from kiosk import events as ev
from kiosk.backend.base import Balance
from kiosk.catalog import Catalog
from kiosk.config import DEFAULT_CONFIG, load_catalog
from kiosk.engine import Engine, EngineError, Outcome, Phase, Policy, State

REF = "K0001-000001"
GLOBE = "09171234567"
SMART = "09181234321"
ICCID = "89896301000000000117"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(DEFAULT_CONFIG.parent / "catalog.toml")


@pytest.fixture
def engine(catalog: Catalog) -> Engine:
    # As the runtime builds it from the default config: smallest note 20.00.
    return Engine(catalog, Policy(max_overpay=0, min_note=2000, max_unknown_queries=2))


def run(engine: Engine, state: State, *events: ev.Record) -> tuple[State, list[ev.Record]]:
    """Step through events; return the final state and every effect asked for, in order."""
    effects: list[ev.Record] = []
    for e in events:
        state, more = engine.step(state, e)
        effects += more
    return state, effects


def test_products_wait_for_the_provider_and_only_what_it_sells_is_sold(engine: Engine) -> None:
    s, effects = run(engine, State(), ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True))
    assert effects == [ev.CheckSubscriber(GLOBE, "globe")] and s.offered is None
    s, _ = engine.step(s, ev.ChooseProduct("globe-load", 2000))
    assert s.phase is Phase.CHOOSE_PRODUCT and s.notice == "product.checking"
    # The provider routes the number elsewhere (ported) and sells only one of its packs.
    s, _ = engine.step(s, ev.SubscriberChecked(GLOBE, "smart", ("smart-keep",), 500, None, ""))
    assert s.txn.operator == "smart" and s.offered == ("smart-keep",)
    assert s.balance == Balance(500, None, "")
    s, _ = engine.step(s, ev.ChooseProduct("smart-load", 2000))
    assert s.phase is Phase.CHOOSE_PRODUCT and s.notice == "product.unavailable"
    s, _ = engine.step(s, ev.ChooseProduct("smart-keep", 2000))
    assert s.phase is Phase.CHOOSE_PAYMENT and s.txn.product_id == "smart-keep"


@pytest.mark.parametrize("reason", ["unavailable", "unknown_operator"])
def test_a_failed_number_check_sells_nothing(engine: Engine, reason: str) -> None:
    s, _ = run(engine, State(), ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True),
               ev.SubscriberCheckFailed(GLOBE, reason))
    assert s.offered == () and s.notice == f"backend.{reason}"
    assert s.device_ok("backend") is (reason != "unavailable")
    s, effects = engine.step(s, ev.ChooseProduct("globe-load", 2000))
    assert s.phase is Phase.CHOOSE_PRODUCT and effects == []


def test_a_stale_number_check_is_ignored(engine: Engine) -> None:
    s, _ = run(engine, State(), ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True),
               ev.SubscriberChecked("09181234321", "smart", ("smart-load",)))
    assert s.offered is None and s.txn.operator == "globe"


def checked(engine: Engine, number: str = GLOBE) -> ev.SubscriberChecked:
    """The provider's answer to CheckSubscriber: everything the catalog sells is on sale."""
    op = engine.catalog.check_number(number).operator or ""
    return ev.SubscriberChecked(number, op, tuple(p.id for p in engine.catalog.offers(op)))


def kinds(effects: list[ev.Record]) -> list[str]:
    return [type(x).__name__ for x in effects]


def closes(effects: list[ev.Record]) -> list[ev.CloseTransaction]:
    return [x for x in effects if isinstance(x, ev.CloseTransaction)]


def choosing_payment(engine: Engine, product: str = "globe-load", amount: int = 5000,
                     number: str = GLOBE) -> State:
    s, effects = run(engine, State(), ev.Start(), ev.NumberEntered(number),
                     ev.ConfirmNumber(True), checked(engine, number),
                     ev.ChooseProduct(product, amount))
    assert s.phase is Phase.CHOOSE_PAYMENT, s.notice
    assert effects == [ev.CheckSubscriber(number, engine.catalog.check_number(number).operator)]
    return s


def paying(engine: Engine, method: str, product: str = "globe-load", amount: int = 5000,
           number: str = GLOBE) -> tuple[State, list[ev.Record]]:
    s = choosing_payment(engine, product, amount, number)
    s, effects = engine.step(s, ev.ChoosePayment(method))
    assert effects == [ev.AllocateReference()]
    assert s.txn.ref is None
    s, effects = engine.step(s, ev.ReferenceAllocated(REF))
    assert s.txn.ref == REF
    return s, effects


def cash_paid(engine: Engine, notes: list[int], product: str = "globe-load",
              amount: int = 5000) -> tuple[State, list[ev.Record]]:
    s, _ = paying(engine, "cash", product, amount)
    effects: list[ev.Record] = []
    for v in notes:
        s, more = run(engine, s, ev.NoteEscrowed(v))
        assert more == [ev.StackNote(v)]
        s, more = engine.step(s, ev.NoteCredited(v))
        effects += more
    return s, effects


def assert_balanced_close(c: ev.CloseTransaction) -> None:
    assert c.paid == c.credited + c.voucher + c.refunded


# ---------------------------------------------------------------- identification
def test_start_goes_to_identify(engine: Engine) -> None:
    s, effects = engine.step(State(), ev.Start())
    assert s.phase is Phase.IDENTIFY and effects == []


def test_typed_number_ok(engine: Engine) -> None:
    s, effects = run(engine, State(), ev.Start(), ev.NumberEntered("+63 917 123 4567"))
    assert effects == []
    assert s.phase is Phase.CONFIRM_NUMBER
    assert s.txn.msisdn == GLOBE
    assert s.txn.operator == "globe"
    assert s.txn.number_source == "typed"
    assert s.notice == ""
    s, _ = engine.step(s, ev.ConfirmNumber(True))
    assert s.phase is Phase.CHOOSE_PRODUCT


@pytest.mark.parametrize(("raw", "notice"), [
    ("0917", "number.too_short"),
    ("0917123456", "number.too_short"),
    ("091712345678", "number.too_long"),
    ("01112345678", "number.unknown_prefix"),
    ("0917abc4567", "number.not_digits"),
    ("", "number.empty"),
])
def test_typed_number_invalid(engine: Engine, raw: str, notice: str) -> None:
    s, effects = run(engine, State(), ev.Start(), ev.NumberEntered(raw))
    assert effects == []
    assert s.phase is Phase.IDENTIFY
    assert s.notice == notice
    assert s.check is not None and not s.check.ok
    assert s.txn.msisdn == ""


def test_rejecting_the_number_keeps_what_was_typed(engine: Engine) -> None:
    s, _ = run(engine, State(), ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(False))
    assert s.phase is Phase.IDENTIFY
    assert s.typed == GLOBE
    assert s.txn.msisdn == ""


def test_sim_insert_looks_up_the_subscriber(engine: Engine) -> None:
    s, effects = engine.step(State(), ev.SimIdentified(ICCID))
    assert s.phase is Phase.LOOKUP
    assert effects == [ev.LookupSubscriber(ICCID)]
    assert s.sim_present and s.iccid == ICCID
    # An answer about another SIM is ignored.
    s2, effects = engine.step(s, ev.SubscriberFound("8989000000000000000", SMART))
    assert s2.phase is Phase.LOOKUP and effects == []
    s, effects = engine.step(s, ev.SubscriberFound(ICCID, GLOBE))
    assert effects == []
    assert s.phase is Phase.CONFIRM_NUMBER
    assert s.txn.msisdn == GLOBE and s.txn.operator == "globe"
    assert s.txn.number_source == "sim"
    # Saying "not my number" for a SIM does not pre-fill the keypad with it.
    s, _ = engine.step(s, ev.ConfirmNumber(False))
    assert s.phase is Phase.IDENTIFY and s.typed == ""


def test_sim_insert_from_identify(engine: Engine) -> None:
    s, effects = run(engine, State(), ev.Start(), ev.SimIdentified(ICCID))
    assert s.phase is Phase.LOOKUP and effects == [ev.LookupSubscriber(ICCID)]


def test_subscriber_not_found(engine: Engine) -> None:
    s, effects = run(engine, State(), ev.SimIdentified(ICCID), ev.SubscriberNotFound(ICCID))
    assert effects == [ev.LookupSubscriber(ICCID)]
    assert s.phase is Phase.IDENTIFY
    assert s.notice == "sim.unknown"


def test_subscriber_with_a_number_we_do_not_sell_to(engine: Engine) -> None:
    s, _ = run(engine, State(), ev.SimIdentified(ICCID), ev.SubscriberFound(ICCID, "01112345678"))
    assert s.phase is Phase.IDENTIFY
    assert s.notice == "sim.unknown"


def test_sim_removed_during_lookup(engine: Engine) -> None:
    s, _ = run(engine, State(), ev.SimIdentified(ICCID), ev.SimRemoved())
    assert s.phase is Phase.IDENTIFY
    assert s.notice == "sim.removed"
    assert not s.sim_present


# ---------------------------------------------------------------- products
def test_product_of_another_operator_is_refused(engine: Engine) -> None:
    s, effects = run(engine, State(), ev.Start(), ev.NumberEntered(GLOBE),
                     ev.ConfirmNumber(True), checked(engine), ev.ChooseProduct("smart-load", 2000))
    assert effects == [ev.CheckSubscriber(GLOBE, "globe")]
    assert s.phase is Phase.CHOOSE_PRODUCT
    assert s.notice == "product.wrong_operator"
    assert s.txn.product_id == ""


@pytest.mark.parametrize(("product", "amount", "today", "notice"), [
    ("nope", 2000, None, "product.unknown"),
    ("globe-load", 2500, None, "product.bad_amount"),
    ("globe-load-any", 1050, None, "product.bad_amount"),
    ("globe-load-any", 100100, None, "product.bad_amount"),
    ("globe-data-7d", 9900, date(2027, 1, 1), "product.expired"),
])
def test_product_refusals(engine: Engine, product: str, amount: int, today: date | None,
                          notice: str) -> None:
    s, _ = run(engine, State(), ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True),
               checked(engine), ev.ChooseProduct(product, amount, today))
    assert s.phase is Phase.CHOOSE_PRODUCT
    assert s.notice == notice


def test_product_accepted(engine: Engine) -> None:
    s = choosing_payment(engine, "globe-load-any", 12300)
    assert s.txn.product_id == "globe-load-any" and s.txn.amount == 12300
    s, _ = run(engine, s, ev.Back())
    assert s.phase is Phase.CHOOSE_PRODUCT


def test_payment_method_unavailable(engine: Engine) -> None:
    s = choosing_payment(engine)
    s, _ = engine.step(s, ev.DeviceStatus("cash", False))
    assert s.methods == ("qr", "card", "voucher")     # a voucher needs no device
    s, effects = engine.step(s, ev.ChoosePayment("cash"))
    assert effects == [] and s.phase is Phase.CHOOSE_PAYMENT
    assert s.notice == "cash.unavailable"
    s, _ = engine.step(s, ev.DeviceStatus("backend", False))
    assert s.methods == () and not s.can_sell
    s, effects = engine.step(s, ev.ChoosePayment("card"))
    assert effects == [] and s.notice == "card.unavailable"


# ---------------------------------------------------------------- cash
def test_cash_enables_acceptor_once_reference_exists(engine: Engine) -> None:
    s, effects = paying(engine, "cash")
    assert s.phase is Phase.PAY_CASH
    assert effects == [ev.EnableCash()]


def test_note_without_reference_is_returned(engine: Engine) -> None:
    s = choosing_payment(engine)
    s, _ = engine.step(s, ev.ChoosePayment("cash"))
    s, effects = engine.step(s, ev.NoteEscrowed(2000))
    assert effects == [ev.ReturnNote(2000, "not_paying")]
    assert s.txn.paid == 0 and s.escrow == 0


def test_note_above_remaining_is_returned_at_escrow_and_never_credited(engine: Engine) -> None:
    s, _ = paying(engine, "cash", "globe-load", 5000)
    s, effects = engine.step(s, ev.NoteEscrowed(10000))
    assert effects == [ev.ReturnNote(10000, "too_large")]
    assert s.notice == "note.too_large"
    assert s.escrow == 0
    assert s.txn.paid == 0
    s, effects = engine.step(s, ev.NoteReturned(10000))
    assert effects == [] and s.txn.paid == 0 and s.phase is Phase.PAY_CASH


def test_note_is_credited_only_at_note_credited(engine: Engine) -> None:
    s, _ = paying(engine, "cash", "globe-load", 5000)
    s, effects = engine.step(s, ev.NoteEscrowed(2000))
    assert effects == [ev.StackNote(2000)]
    assert s.escrow == 2000
    assert s.txn.paid == 0                  # escrow is not payment
    assert not s.timeout_allowed
    s, effects = engine.step(s, ev.NoteCredited(2000))
    assert effects == []
    assert s.txn.paid == 2000 and s.txn.notes == (2000,)
    assert s.escrow == 0
    assert s.txn.remaining == 3000
    assert s.phase is Phase.PAY_CASH


def test_exact_cash_payment_tops_up(engine: Engine) -> None:
    s, effects = cash_paid(engine, [5000])
    assert effects == [ev.DisableCash(), ev.TopUp(REF, GLOBE, "globe", "globe-load", 5000)]
    assert s.phase is Phase.FULFILLING
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    # Globe offers a balance inquiry: the new balance is asked for the result screen.
    assert effects == [ev.CloseTransaction(REF, "success", 5000, 5000, 0, 0), ev.PrintReceipt(REF),
                       ev.QueryBalance(REF, GLOBE, "globe")]
    s, effects = engine.step(s, ev.BalanceReported(REF, 6250, 300, "2026-12-05"))
    assert effects == [] and s.balance_after == Balance(6250, 300, "2026-12-05")
    assert s.phase is Phase.RESULT
    assert s.txn.outcome is Outcome.SUCCESS and s.txn.closed
    assert s.txn.operator_ref == "OP1"


def test_several_notes(engine: Engine) -> None:
    s, effects = cash_paid(engine, [2000, 2000, 2000], "globe-load-any", 6000)
    assert kinds(effects) == ["DisableCash", "TopUp"]
    assert s.txn.paid == 6000 and s.txn.notes == (2000, 2000, 2000)


def test_change_below_smallest_note_ends_as_voucher(engine: Engine) -> None:
    # 15.00 to pay, the smallest note is 20.00: the 5.00 change is unavoidable.
    s, _ = paying(engine, "cash", "globe-keep", 1500)
    s, effects = engine.step(s, ev.NoteEscrowed(2000))
    assert effects == [ev.StackNote(2000)]
    s, effects = engine.step(s, ev.NoteCredited(2000))
    assert effects == [ev.DisableCash(), ev.TopUp(REF, GLOBE, "globe", "globe-keep", 1500)]
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    assert effects == [ev.IssueVoucher(REF, 500, "change")]
    s, effects = engine.step(s, ev.VoucherIssued(REF, "1234567812345670", 500))
    assert effects == [ev.CloseTransaction(REF, "success", 2000, 1500, 500, 0),
                       ev.PrintReceipt(REF), ev.QueryBalance(REF, GLOBE, "globe")]
    assert s.txn.outcome is Outcome.SUCCESS
    assert s.txn.voucher == 500 and s.txn.voucher_code == "1234567812345670"


def test_change_of_a_whole_note_is_refused(engine: Engine) -> None:
    # 15.00 to pay: a 50.00 note would leave 35.00 change, more than the smallest note.
    s, _ = paying(engine, "cash", "globe-keep", 1500)
    s, effects = engine.step(s, ev.NoteEscrowed(5000))
    assert effects == [ev.ReturnNote(5000, "too_large")]
    assert s.txn.paid == 0


def test_overpay_allowance(catalog: Catalog) -> None:
    engine = Engine(catalog, Policy(max_overpay=5000, min_note=2000))
    s, _ = paying(engine, "cash", "globe-load", 5000)
    _, effects = engine.step(s, ev.NoteEscrowed(20000))     # 150.00 too much: refused
    assert effects == [ev.ReturnNote(20000, "too_large")]
    s, effects = engine.step(s, ev.NoteEscrowed(10000))     # 50.00 too much: allowed
    assert effects == [ev.StackNote(10000)]
    s, effects = engine.step(s, ev.NoteCredited(10000))
    assert kinds(effects) == ["DisableCash", "TopUp"]
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    assert effects == [ev.IssueVoucher(REF, 5000, "change")]


def test_cancel_with_nothing_paid_closes_reference_as_cancelled(engine: Engine) -> None:
    s, _ = paying(engine, "cash")
    s, effects = engine.step(s, ev.Cancel())
    assert effects == [ev.DisableCash(), ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert s.phase is Phase.IDLE
    assert s.txn.ref is None


def test_back_with_nothing_paid_returns_to_payment_choice(engine: Engine) -> None:
    s, _ = paying(engine, "cash")
    s, effects = engine.step(s, ev.Back())
    assert effects == [ev.DisableCash(), ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert s.phase is Phase.CHOOSE_PAYMENT
    assert s.txn.ref is None and s.txn.paid == 0
    assert s.txn.product_id == "globe-load"          # the choice is kept


def test_cancel_before_reference_then_reference_arrives(engine: Engine) -> None:
    s = choosing_payment(engine)
    s, _ = engine.step(s, ev.ChoosePayment("cash"))
    s, effects = engine.step(s, ev.Cancel())
    assert ev.CloseTransaction not in map(type, effects)
    assert s.phase is Phase.IDLE
    s, effects = engine.step(s, ev.ReferenceAllocated(REF))
    assert effects == [ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]


def test_cancel_with_money_paid_becomes_voucher(engine: Engine) -> None:
    s, _ = cash_paid(engine, [2000])
    s, effects = engine.step(s, ev.Cancel())
    assert effects == [ev.DisableCash(), ev.IssueVoucher(REF, 2000, "cancelled")]
    assert s.phase is Phase.FULFILLING
    assert not s.timeout_allowed
    s, effects = engine.step(s, ev.VoucherIssued(REF, "1111222233334444", 2000))
    assert effects == [ev.CloseTransaction(REF, "cancelled", 2000, 0, 2000, 0),
                       ev.PrintReceipt(REF)]
    assert_balanced_close(effects[0])  # type: ignore[arg-type]
    assert s.txn.outcome is Outcome.CANCELLED
    assert s.phase is Phase.RESULT


@pytest.mark.parametrize("leave", [ev.Timeout(), ev.Back()])
def test_timeout_or_back_with_money_paid_becomes_voucher(engine: Engine,
                                                         leave: ev.Record) -> None:
    s, _ = cash_paid(engine, [2000])
    s, effects = engine.step(s, leave)
    assert effects == [ev.DisableCash(), ev.IssueVoucher(REF, 2000, "cancelled")]


def test_cancel_while_note_in_escrow_waits_for_the_note(engine: Engine) -> None:
    s, _ = cash_paid(engine, [2000])
    s, effects = engine.step(s, ev.NoteEscrowed(2000))
    assert effects == [ev.StackNote(2000)]
    s, cancel_effects = engine.step(s, ev.Cancel())
    assert not any(isinstance(x, (ev.IssueVoucher, ev.CloseTransaction, ev.ReturnNote))
                   for x in cancel_effects)
    assert s.phase is Phase.PAY_CASH
    assert s.txn.cancel_requested
    assert s.escrow == 2000
    # A further note while cancelling is given back.
    s2, more = engine.step(s, ev.NoteEscrowed(2000))
    assert more == [ev.ReturnNote(2000, "not_paying")]
    # The note in escrow is stacked: it counts, and everything becomes a voucher.
    s, effects = engine.step(s, ev.NoteCredited(2000))
    effects = cancel_effects + effects
    assert ev.IssueVoucher(REF, 4000, "cancelled") in effects
    assert ev.DisableCash() in effects               # no more notes are taken
    assert s.txn.paid == 4000
    s, effects = engine.step(s, ev.VoucherIssued(REF, "1111222233334444", 4000))
    assert closes(effects) == [ev.CloseTransaction(REF, "cancelled", 4000, 0, 4000, 0)]


def test_cancel_while_note_in_escrow_then_note_returned_finishes_the_cancel(
        engine: Engine) -> None:
    s, _ = cash_paid(engine, [2000])
    s, _ = engine.step(s, ev.NoteEscrowed(2000))
    s, cancel_effects = engine.step(s, ev.Cancel())
    s, effects = engine.step(s, ev.NoteReturned(2000))
    effects = cancel_effects + effects
    assert ev.DisableCash() in effects
    assert ev.IssueVoucher(REF, 2000, "cancelled") in effects   # only the credited note
    assert s.phase is Phase.FULFILLING
    s, effects = engine.step(s, ev.VoucherIssued(REF, "1111222233334444", 2000))
    assert closes(effects) == [ev.CloseTransaction(REF, "cancelled", 2000, 0, 2000, 0)]


def test_cancel_while_first_note_in_escrow_then_returned_closes_unpaid(engine: Engine) -> None:
    s, _ = paying(engine, "cash")
    s, _ = engine.step(s, ev.NoteEscrowed(2000))
    s, cancel_effects = engine.step(s, ev.Cancel())
    assert closes(cancel_effects) == []
    s, effects = engine.step(s, ev.NoteReturned(2000))
    effects = cancel_effects + effects
    assert closes(effects) == [ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert ev.DisableCash() in effects
    assert s.phase is Phase.IDLE


def test_rejected_note_shows_notice(engine: Engine) -> None:
    s, _ = paying(engine, "cash")
    s, effects = engine.step(s, ev.NoteRejected("unknown_note"))
    assert effects == [] and s.notice == "note.rejected" and s.phase is Phase.PAY_CASH


def test_topup_failed_after_cash_becomes_voucher(engine: Engine) -> None:
    s, _ = cash_paid(engine, [5000])
    s, effects = engine.step(s, ev.TopUpFailed(REF, "backend.rejected"))
    assert effects == [ev.IssueVoucher(REF, 5000, "backend.rejected")]
    s, effects = engine.step(s, ev.VoucherIssued(REF, "1111222233334444", 5000))
    assert effects == [ev.CloseTransaction(REF, "failed_voucher", 5000, 0, 5000, 0),
                       ev.PrintReceipt(REF)]
    assert s.txn.outcome is Outcome.FAILED_VOUCHER
    assert s.txn.failure == "backend.rejected"


def test_answers_for_another_reference_are_ignored(engine: Engine) -> None:
    s, _ = cash_paid(engine, [5000])
    for e in (ev.TopUpSucceeded("K0001-000099", "X"), ev.TopUpFailed("K0001-000099", "x"),
              ev.TopUpUnknown("K0001-000099")):
        s2, effects = engine.step(s, e)
        assert s2 == s and effects == []


def test_unknown_topup_is_queried_with_the_same_reference(engine: Engine) -> None:
    s, _ = cash_paid(engine, [5000])
    s, effects = engine.step(s, ev.TopUpUnknown(REF, "TimeoutError"))
    assert effects == [ev.QueryTopUp(REF, 1)]
    assert s.phase is Phase.FULFILLING
    s, effects = engine.step(s, ev.TopUpUnknown(REF))
    assert effects == [ev.QueryTopUp(REF, 2)]
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP9"))
    assert closes(effects) == [ev.CloseTransaction(REF, "success", 5000, 5000, 0, 0)]
    assert not any(isinstance(x, ev.TopUp) for x in effects)


def _pending(engine: Engine, notes: list[int], product: str = "globe-load",
             amount: int = 5000) -> State:
    s, _ = cash_paid(engine, notes, product, amount)
    paid = sum(notes)
    s, effects = run(engine, s, ev.TopUpUnknown(REF), ev.TopUpUnknown(REF))
    assert effects == [ev.QueryTopUp(REF, 1), ev.QueryTopUp(REF, 2)]
    s, effects = engine.step(s, ev.TopUpUnknown(REF))       # one more than max_unknown_queries
    assert effects == [ev.IssueVoucher(REF, paid, "pending", held=True)]
    s, effects = engine.step(s, ev.VoucherIssued(REF, "9999888877776666", paid, held=True))
    assert effects == [ev.PrintReceipt(REF)]
    assert closes(effects) == []
    assert s.phase is Phase.RESULT
    assert s.txn.outcome is Outcome.PENDING
    assert not s.txn.closed
    assert s.txn.voucher == 0 and s.txn.voucher_held
    return s


def test_unknown_topup_after_max_queries_gives_held_voucher_and_pending(engine: Engine) -> None:
    s = _pending(engine, [5000])
    # Still asking after the customer got the PENDING receipt.
    s, effects = engine.step(s, ev.TopUpUnknown(REF))
    assert effects == [ev.QueryTopUp(REF, 4)]


def test_pending_topup_finally_succeeds_voids_the_held_voucher(engine: Engine) -> None:
    s = _pending(engine, [5000])
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    void = [x for x in effects if isinstance(x, ev.SetVoucherStatus)]
    assert len(void) == 1 and void[0].code == "9999888877776666" and void[0].status == "void"
    assert closes(effects) == [ev.CloseTransaction(REF, "success", 5000, 5000, 0, 0)]
    assert not any(isinstance(x, ev.PrintReceipt) for x in effects)
    assert s.txn.closed and s.txn.outcome is Outcome.SUCCESS


def test_pending_topup_finally_fails_activates_the_held_voucher(engine: Engine) -> None:
    s = _pending(engine, [5000])
    s, effects = engine.step(s, ev.TopUpFailed(REF, "backend.rejected"))
    active = [x for x in effects if isinstance(x, ev.SetVoucherStatus)]
    assert len(active) == 1 and active[0].status == "active"
    assert active[0].amount in (None, 5000)
    assert closes(effects) == [ev.CloseTransaction(REF, "failed_voucher", 5000, 0, 5000, 0)]
    assert s.txn.outcome is Outcome.FAILED_VOUCHER


def test_pending_topup_with_change_keeps_only_the_change_on_the_voucher(engine: Engine) -> None:
    s = _pending(engine, [2000], "globe-keep", 1500)
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    status = [x for x in effects if isinstance(x, ev.SetVoucherStatus)]
    assert len(status) == 1 and status[0].status == "active"
    # The held voucher was issued for the full 20.00; it now stands for the 5.00 change only.
    assert status[0].amount == 500
    assert closes(effects) == [ev.CloseTransaction(REF, "success", 2000, 1500, 500, 0)]


def test_unbalanced_close_is_refused(engine: Engine) -> None:
    s, _ = cash_paid(engine, [5000])
    s, _ = engine.step(s, ev.TopUpFailed(REF, "backend.rejected"))
    with pytest.raises(EngineError):
        engine.step(s, ev.VoucherIssued(REF, "1111222233334444", 4000))


def test_cash_fault_with_money_paid(engine: Engine) -> None:
    s, _ = cash_paid(engine, [2000])
    s, effects = engine.step(s, ev.CashFault("jam"))
    assert effects == [ev.DisableCash(), ev.IssueVoucher(REF, 2000, "cash_fault")]
    assert not s.device_ok("cash")
    s, effects = engine.step(s, ev.VoucherIssued(REF, "1111222233334444", 2000))
    assert closes(effects) == [ev.CloseTransaction(REF, "cancelled", 2000, 0, 2000, 0)]


def test_cash_fault_with_nothing_paid(engine: Engine) -> None:
    s, _ = paying(engine, "cash")
    s, effects = engine.step(s, ev.CashFault("jam"))
    assert effects == [ev.DisableCash(), ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert s.phase is Phase.CHOOSE_PAYMENT
    assert s.notice == "cash.unavailable"
    assert "cash" not in s.methods


def test_notes_outside_a_cash_payment(engine: Engine) -> None:
    s, effects = engine.step(State(), ev.NoteEscrowed(2000))
    assert effects == [ev.ReturnNote(2000, "not_paying")]
    s, effects = engine.step(State(), ev.NoteCredited(2000))
    assert effects == [ev.OrphanNote(2000)]
    assert s.orphan_total == 2000


def test_late_note_during_fulfilment_is_change(engine: Engine) -> None:
    s, _ = cash_paid(engine, [5000])
    s, effects = engine.step(s, ev.NoteCredited(2000))
    assert effects == [] and s.txn.paid == 7000
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    assert effects == [ev.IssueVoucher(REF, 2000, "change")]


# ---------------------------------------------------------------- QR
def test_qr_order_paid(engine: Engine) -> None:
    s, effects = paying(engine, "qr")
    assert s.phase is Phase.PAY_QR
    assert effects == [ev.CreateQrOrder(REF, 5000)]
    s, effects = engine.step(s, ev.QrOrderCreated(REF, "000201...", 1e10))
    assert effects == [] and s.qr_payload == "000201..." and s.qr_expires_at == 1e10
    assert not s.timeout_allowed
    s, effects = engine.step(s, ev.QrPaid(REF, 5000, "W00000001"))
    assert effects == [ev.TopUp(REF, GLOBE, "globe", "globe-load", 5000)]
    assert s.phase is Phase.FULFILLING
    assert s.txn.paid == 5000 and s.txn.payment_ref == "W00000001"
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    assert closes(effects) == [ev.CloseTransaction(REF, "success", 5000, 5000, 0, 0)]


def test_qr_order_expires(engine: Engine) -> None:
    s, _ = paying(engine, "qr")
    s, _ = engine.step(s, ev.QrOrderCreated(REF, "000201...", 1e10))
    s, effects = engine.step(s, ev.QrExpired(REF))
    assert effects == [ev.CloseQrOrder(REF), ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert s.phase is Phase.CHOOSE_PAYMENT
    assert s.notice == "qr.expired"
    assert s.txn.ref is None and s.qr_payload == ""


def test_qr_cancel_closes_the_order_and_late_payment_is_kept(engine: Engine) -> None:
    s, _ = paying(engine, "qr")
    s, _ = engine.step(s, ev.QrOrderCreated(REF, "000201...", 1e10))
    s, effects = engine.step(s, ev.Cancel())
    assert effects == [ev.CloseQrOrder(REF), ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert s.phase is Phase.IDLE
    s, effects = engine.step(s, ev.QrPaid(REF, 5000, "W00000007"))
    assert effects == [ev.LatePayment(REF, 5000, "qr:W00000007")]
    assert s.phase is Phase.IDLE and s.txn.paid == 0


def test_qr_order_failed(engine: Engine) -> None:
    s, _ = paying(engine, "qr")
    s, effects = engine.step(s, ev.QrOrderFailed(REF, "unavailable"))
    assert effects == [ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert s.phase is Phase.CHOOSE_PAYMENT and s.notice == "qr.unavailable"
    assert "qr" not in s.methods


def test_qr_paid_with_wrong_amount_becomes_voucher(engine: Engine) -> None:
    s, _ = paying(engine, "qr")
    s, effects = engine.step(s, ev.QrPaid(REF, 4000, "W1"))
    assert effects == [ev.IssueVoucher(REF, 4000, "amount_mismatch")]
    s, effects = engine.step(s, ev.VoucherIssued(REF, "1111222233334444", 4000))
    assert closes(effects) == [ev.CloseTransaction(REF, "failed_voucher", 4000, 0, 4000, 0)]


# ---------------------------------------------------------------- card
def test_card_approved_tops_up(engine: Engine) -> None:
    s, effects = paying(engine, "card")
    assert s.phase is Phase.PAY_CARD
    assert effects == [ev.AuthoriseCard(REF, 5000)]
    assert not s.timeout_allowed
    s, effects = engine.step(s, ev.CardApproved(REF, 5000, "A000001", "000001"))
    # Booked as paid; the top-up waits for the terminal's completion.
    assert effects == [] and s.phase is Phase.PAY_CARD
    assert s.txn.paid == 5000 and s.txn.payment_ref == "A000001"
    s, effects = engine.step(s, ev.Cancel())                 # too late: approved already
    assert effects == [] and not s.txn.cancel_requested
    s, effects = engine.step(s, ev.CardCompleted(REF))
    assert effects == [ev.TopUp(REF, GLOBE, "globe", "globe-load", 5000)]
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    assert closes(effects) == [ev.CloseTransaction(REF, "success", 5000, 5000, 0, 0)]


def test_card_topup_failure_is_reversed(engine: Engine) -> None:
    s, _ = paying(engine, "card")
    s, _ = run(engine, s, ev.CardApproved(REF, 5000, "A000001", "000001"),
               ev.CardCompleted(REF))
    s, effects = engine.step(s, ev.TopUpFailed(REF, "backend.rejected"))
    assert effects == [ev.ReverseCard(REF, 5000)]
    assert s.phase is Phase.FULFILLING
    s, effects = engine.step(s, ev.CardReversed(REF))
    assert effects == [ev.CloseTransaction(REF, "failed_refunded", 5000, 0, 0, 5000),
                       ev.PrintReceipt(REF)]
    assert s.txn.outcome is Outcome.FAILED_REFUNDED and s.txn.refunded == 5000


def test_card_reversal_failure_becomes_voucher(engine: Engine) -> None:
    s, _ = paying(engine, "card")
    s, _ = run(engine, s, ev.CardApproved(REF, 5000, "A1", "1"), ev.CardCompleted(REF),
               ev.TopUpFailed(REF, "backend.rejected"))
    s, effects = engine.step(s, ev.CardReversalFailed(REF, "refused"))
    assert effects == [ev.IssueVoucher(REF, 5000, "reversal_failed")]
    s, effects = engine.step(s, ev.VoucherIssued(REF, "1111222233334444", 5000))
    assert closes(effects) == [ev.CloseTransaction(REF, "failed_voucher", 5000, 0, 5000, 0)]


def test_card_declined_goes_back_to_payment_choice(engine: Engine) -> None:
    s, _ = paying(engine, "card")
    s, effects = engine.step(s, ev.CardDeclined(REF, "declined"))
    assert effects == [ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert s.phase is Phase.CHOOSE_PAYMENT
    assert s.notice == "card.declined"
    assert s.txn.ref is None
    # A fresh attempt gets a fresh reference.
    s, effects = engine.step(s, ev.ChoosePayment("card"))
    assert effects == [ev.AllocateReference()]


def test_card_cancel_aborts_then_decline_closes(engine: Engine) -> None:
    s, _ = paying(engine, "card")
    s, effects = engine.step(s, ev.Cancel())
    assert effects == [ev.AbortCard(REF)]
    assert s.phase is Phase.PAY_CARD and s.txn.cancel_requested
    s, effects = engine.step(s, ev.CardDeclined(REF, "aborted"))
    assert effects == [ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert s.phase is Phase.IDLE


def test_card_approved_after_cancel_is_reversed(engine: Engine) -> None:
    s, _ = paying(engine, "card")
    s, _ = engine.step(s, ev.Cancel())
    s, effects = engine.step(s, ev.CardApproved(REF, 5000, "A1", "1"))
    assert effects == [ev.ReverseCard(REF, 5000)]
    s, effects = engine.step(s, ev.CardReversed(REF))
    assert closes(effects) == [ev.CloseTransaction(REF, "cancelled", 5000, 0, 0, 5000)]


def test_an_approval_the_terminal_did_not_complete_is_reversed(engine: Engine) -> None:
    """Booked and confirmed, but the terminal reversed it itself (the confirmation came
    too late) or cannot say: reversed (answered "already reversed"), nothing topped up."""
    s, _ = paying(engine, "card")
    s, effects = engine.step(s, ev.CardApproved(REF, 5000, "A1", "1", "0007"))
    assert effects == []
    s, effects = engine.step(s, ev.CardNotCompleted(REF, "unknown"))
    assert effects == [ev.ReverseCard(REF, 5000, "0007")]
    s, effects = engine.step(s, ev.CardReversed(REF))
    assert closes(effects) == [ev.CloseTransaction(REF, "cancelled", 5000, 0, 0, 5000)]
    assert not any(isinstance(e, ev.TopUp) for e in effects)


def test_card_approval_for_a_stale_reference_is_reversed(engine: Engine) -> None:
    s, effects = engine.step(State(), ev.CardApproved("K0001-000077", 5000, "A1", "1"))
    assert effects == [ev.ReverseCard("K0001-000077", 5000)]


# ---------------------------------------------------------------- timeouts
def test_timeout_allowed(engine: Engine) -> None:
    assert not State().timeout_allowed                        # IDLE: nobody to time out
    s, _ = engine.step(State(), ev.Start())
    assert s.timeout_allowed                                  # IDENTIFY
    s = choosing_payment(engine)
    assert s.timeout_allowed                                  # CHOOSE_PAYMENT
    cash, _ = paying(engine, "cash")
    assert cash.timeout_allowed                               # PAY_CASH, nothing in escrow
    cash, _ = engine.step(cash, ev.NoteEscrowed(2000))
    assert not cash.timeout_allowed                           # a note in escrow
    cash, _ = engine.step(cash, ev.NoteCredited(2000))
    assert cash.timeout_allowed
    qr, _ = paying(engine, "qr")
    assert not qr.timeout_allowed                             # PAY_QR
    card, _ = paying(engine, "card")
    assert not card.timeout_allowed                           # PAY_CARD
    ful, _ = cash_paid(engine, [5000])
    assert ful.phase is Phase.FULFILLING and not ful.timeout_allowed
    res, _ = engine.step(ful, ev.TopUpSucceeded(REF, "OP1"))
    assert res.phase is Phase.RESULT and res.timeout_allowed


def test_timeout_in_early_phases_returns_to_idle(engine: Engine) -> None:
    for events in ([ev.Start()], [ev.Start(), ev.NumberEntered(GLOBE)],
                   [ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True)]):
        s, _ = run(engine, State(), *events, ev.Timeout())
        assert s.phase is Phase.IDLE and s.txn.msisdn == ""


# ---------------------------------------------------------------- result
def test_result_receipt_and_done(engine: Engine) -> None:
    s, _ = cash_paid(engine, [5000])
    s, _ = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    s, _ = engine.step(s, ev.ReceiptPrinted(REF))
    assert s.receipt_printed is True
    s, _ = engine.step(s, ev.ShowReceipt())
    assert s.phase is Phase.RECEIPT
    s, _ = engine.step(s, ev.Back())
    assert s.phase is Phase.RESULT
    s, _ = engine.step(s, ev.Done())
    assert s.phase is Phase.IDLE and s.txn.ref is None


def test_device_status_survives_a_visit(engine: Engine) -> None:
    s, _ = engine.step(State(), ev.DeviceStatus("card", False))
    s, _ = run(engine, s, ev.Start(), ev.Cancel())
    assert not s.device_ok("card") and s.device_ok("cash")


def test_records_round_trip_through_dicts() -> None:
    for rec in (ev.ChooseProduct("globe-load", 2000, date(2026, 1, 2)),
                ev.CloseTransaction(REF, "success", 1, 1, 0, 0),
                ev.VoucherIssued(REF, "1", 5, True), ev.SetVoucherStatus(REF, "1", "void")):
        assert ev.from_dict(rec.kind(), rec.to_dict()) == rec
    assert ev.is_effect("TopUp") and not ev.is_effect("TopUpSucceeded")
    assert ev.NoteCredited.money and not ev.Start.money


@pytest.mark.parametrize(("inserted", "outcome", "expect"), [
    (5000, ev.NoteCredited(5000, "k:2"), "fulfil"),       # the last note went in: top-up
    (5000, ev.NoteInDoubt(5000, "k:2", "stacker_jam"), "fulfil"),
    (2000, ev.NoteCredited(2000, "k:2"), "voucher"),      # not enough: all of it a voucher
    (2000, ev.NoteReturned(2000, "k:2"), "voucher"),      # given back: the first note's
])
def test_a_fault_with_a_note_in_transit_waits_for_the_note(
        engine: Engine, inserted: int, outcome: ev.Record, expect: str) -> None:
    """The acceptor faults while a note is between escrow and the box: the payment ends
    only once the acceptor says where that note is, so it is in the voucher or the top-up,
    never an orphan of a transaction already closed."""
    s, _ = paying(engine, "cash", product="globe-load-any", amount=7000)
    s, _ = engine.step(s, ev.NoteEscrowed(2000, "k:1"))
    s, _ = engine.step(s, ev.NoteCredited(2000, "k:1", REF))
    s, effects = engine.step(s, ev.NoteEscrowed(inserted, "k:2"))
    assert effects == [ev.StackNote(inserted, "k:2")]
    s, effects = engine.step(s, ev.CashFault("stacker_jam"))
    assert effects == [ev.DisableCash()] and s.phase is Phase.PAY_CASH
    s, effects = engine.step(s, ev.Timeout())                       # the customer waits
    assert effects == [] and s.phase is Phase.PAY_CASH
    outcome = replace(outcome, ref=REF) if hasattr(outcome, "ref") else outcome
    s, effects = engine.step(s, outcome)
    if expect == "fulfil":
        assert s.phase is Phase.FULFILLING and kinds(effects)[-1] == "TopUp"
        assert s.txn.paid == 7000
    else:
        paid = 2000 + (inserted if not isinstance(outcome, ev.NoteReturned) else 0)
        assert [e for e in effects if isinstance(e, ev.IssueVoucher)] == [
            ev.IssueVoucher(REF, paid, "cash_fault")]


def test_late_note_never_joins_a_card_payment(engine: Engine) -> None:
    # A note was on its way to the cash box when the acceptor jammed; the customer pays by
    # card instead. When the acceptor finally stacks the note, it is not card money: a card
    # reversal would otherwise "refund" cash to the card.
    s, _ = paying(engine, "cash")
    s, _ = engine.step(s, ev.NoteEscrowed(2000))
    s, effects = engine.step(s, ev.CashFault("jam"))
    assert closes(effects) == [] and s.phase is Phase.PAY_CASH     # the note is settled first
    s, effects = engine.step(s, ev.NoteReturned(2000))              # the jam gave it back
    assert closes(effects) == [ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert s.phase is Phase.CHOOSE_PAYMENT and s.notice == "cash.unavailable"
    s, effects = engine.step(s, ev.ChoosePayment("card"))
    s, effects = engine.step(s, ev.ReferenceAllocated("K0001-000002"))
    s, _ = run(engine, s, ev.CardApproved("K0001-000002", 5000, "A1", "1"),
               ev.CardCompleted("K0001-000002"))
    assert s.phase is Phase.FULFILLING
    s, effects = engine.step(s, ev.NoteCredited(2000))
    assert effects == [ev.OrphanNote(2000)]
    assert s.txn.paid == 5000
    s, effects = engine.step(s, ev.TopUpFailed("K0001-000002", "backend.rejected"))
    assert effects == [ev.ReverseCard("K0001-000002", 5000)]


@pytest.mark.parametrize("reason", ["not_sim", "mute", "bad_iccid", "removed", "unreadable"])
def test_an_unreadable_card_starts_the_visit_with_an_explanation(engine: Engine,
                                                                  reason: str) -> None:
    s, effects = run(engine, State(), ev.SimUnreadable(reason))
    assert (s.phase, s.notice, s.sim_present, effects) == (
        Phase.IDENTIFY, f"sim.{reason}", True, [])
    # Reading the right card afterwards goes on as usual.
    s, effects = run(engine, s, ev.SimRemoved(), ev.SimIdentified("8989630100000000010"))
    assert s.phase is Phase.LOOKUP and kinds(effects) == ["LookupSubscriber"]


def test_an_unreadable_card_while_paying_changes_nothing_but_the_reminder(
        engine: Engine) -> None:
    s, _ = paying(engine, "cash")
    before = s
    s, effects = run(engine, s, ev.SimUnreadable("not_sim"))
    assert effects == [] and s.phase is before.phase and s.txn == before.txn
    assert s.sim_present                     # "do not forget your card" at the end


def test_a_missing_sim_reader_is_recorded_and_typing_still_works(engine: Engine) -> None:
    s, _ = run(engine, State(), ev.DeviceStatus("sim_reader", False, "no reader"))
    assert not s.device_ok("sim_reader") and s.can_sell
    s, _ = run(engine, s, ev.Start(), ev.NumberEntered("09171234567"))
    assert s.phase is Phase.CONFIRM_NUMBER


# ---------------------------------------------------------------- vouchers as payment
CODE1, CODE2 = "1234567812345670", "4111111111111111"


def paying_voucher(engine: Engine, amount: int = 5000) -> State:
    s = choosing_payment(engine, "globe-load", amount)
    s, effects = engine.step(s, ev.ChoosePayment("voucher"))
    assert s.phase is Phase.PAY_VOUCHER and effects == [ev.AllocateReference()]
    s, effects = engine.step(s, ev.ReferenceAllocated(REF))
    assert effects == [] and s.txn.ref == REF
    return s


def test_voucher_worth_the_price_pays_it_alone(engine: Engine) -> None:
    s = paying_voucher(engine, 5000)
    s, effects = engine.step(s, ev.VoucherEntered(CODE1))
    assert effects == [ev.RedeemVoucher(REF, CODE1)] and s.notice == "voucher.checking"
    s, effects = engine.step(s, ev.VoucherRedeemed(REF, CODE1, 5000))
    assert effects == [ev.TopUp(REF, GLOBE, "globe", "globe-load", 5000)]
    assert s.phase is Phase.FULFILLING and s.txn.vouchers_in == ((CODE1, 5000),)


def test_voucher_worth_more_leaves_change_as_a_new_voucher(engine: Engine) -> None:
    s = paying_voucher(engine, 2000)
    s, _ = engine.step(s, ev.VoucherEntered(CODE1))
    s, effects = engine.step(s, ev.VoucherRedeemed(REF, CODE1, 5000))
    assert kinds(effects) == ["TopUp"]
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    assert effects == [ev.IssueVoucher(REF, 3000, "change")]


def test_two_vouchers_then_the_rest_in_cash(engine: Engine) -> None:
    s = paying_voucher(engine, 10000)
    s, _ = engine.step(s, ev.VoucherEntered(CODE1))
    s, effects = engine.step(s, ev.VoucherRedeemed(REF, CODE1, 2000))
    assert effects == [] and s.phase is Phase.PAY_VOUCHER and s.txn.remaining == 8000
    s, effects = engine.step(s, ev.VoucherEntered(CODE1))        # the same one again
    assert effects == [] and s.notice == "voucher.used"
    s, _ = engine.step(s, ev.VoucherEntered(CODE2))
    s, _ = engine.step(s, ev.VoucherRedeemed(REF, CODE2, 3000))
    s, effects = engine.step(s, ev.ChoosePayment("cash"))
    assert s.phase is Phase.PAY_CASH and effects == [ev.EnableCash()] and s.txn.ref == REF
    s, effects = run(engine, s, ev.NoteEscrowed(5000), ev.NoteCredited(5000))
    assert ev.TopUp(REF, GLOBE, "globe", "globe-load", 10000) in effects
    assert s.txn.paid == 10000


def test_refused_voucher_says_why_and_takes_nothing(engine: Engine) -> None:
    s = paying_voucher(engine)
    s, _ = engine.step(s, ev.VoucherEntered(CODE1))
    s, effects = engine.step(s, ev.VoucherRefused(REF, CODE1, "used"))
    assert effects == [] and s.notice == "voucher.used" and s.txn.paid == 0
    s, effects = engine.step(s, ev.Cancel())
    assert effects == [ev.CloseTransaction(REF, "cancelled", 0, 0, 0, 0)]
    assert s.phase is Phase.IDLE


def test_cancel_after_a_voucher_gives_a_new_voucher(engine: Engine) -> None:
    s = paying_voucher(engine, 10000)
    s, _ = engine.step(s, ev.VoucherEntered(CODE1))
    s, _ = engine.step(s, ev.VoucherRedeemed(REF, CODE1, 2000))
    s, effects = engine.step(s, ev.Cancel())
    assert effects == [ev.IssueVoucher(REF, 2000, "cancelled")]
    s, effects = engine.step(s, ev.VoucherIssued(REF, "9999999999999995", 2000))
    [close] = closes(effects)
    assert (close.outcome, close.paid, close.voucher) == ("cancelled", 2000, 2000)


def test_failed_top_up_after_a_voucher_gives_a_voucher(engine: Engine) -> None:
    s = paying_voucher(engine, 5000)
    s, _ = engine.step(s, ev.VoucherEntered(CODE1))
    s, _ = engine.step(s, ev.VoucherRedeemed(REF, CODE1, 5000))
    s, effects = engine.step(s, ev.TopUpFailed(REF, "backend.rejected"))
    assert effects == [ev.IssueVoucher(REF, 5000, "backend.rejected")]


def test_any_amount_product_tops_up_all_the_cash_paid(engine: Engine) -> None:
    """RANGE products top up the whole amount paid instead of giving change."""
    s = choosing_payment(engine, "globe-load-any", 7000)
    s, _ = run(engine, s, ev.ChoosePayment("cash"), ev.ReferenceAllocated(REF))
    s, effects = run(engine, s, ev.NoteEscrowed(5000), ev.NoteCredited(5000))
    s, effects = engine.step(s, ev.NoteEscrowed(5000))      # 10000 for 7000: taken whole
    assert effects == [ev.StackNote(5000)]
    s, effects = engine.step(s, ev.NoteCredited(5000))
    assert ev.TopUp(REF, GLOBE, "globe", "globe-load-any", 10000) in effects
    assert s.txn.amount == 10000 and s.txn.paid == 10000
    s, effects = engine.step(s, ev.TopUpSucceeded(REF, "OP1"))
    [close] = closes(effects)
    assert (close.paid, close.credited, close.voucher) == (10000, 10000, 0)


def test_any_amount_beyond_the_maximum_still_returns_the_note(engine: Engine) -> None:
    s = choosing_payment(engine, "globe-load-any", 99000)
    s, _ = run(engine, s, ev.ChoosePayment("cash"), ev.ReferenceAllocated(REF),
               ev.NoteEscrowed(50000), ev.NoteCredited(50000), ev.NoteEscrowed(20000),
               ev.NoteCredited(20000), ev.NoteEscrowed(20000), ev.NoteCredited(20000))
    s, effects = engine.step(s, ev.NoteEscrowed(100000))     # 190000 > the 1000.00 maximum
    assert effects == [ev.ReturnNote(100000, "too_large")]
