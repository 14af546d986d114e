"""What the kiosk says when the state changes (kiosk/spoken.py), with real engine States,
the real translator, and the voucher code kept unsaid until asked for."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kiosk import events as ev
from kiosk.catalog import Catalog
from kiosk.config import DEFAULT_CONFIG, load_catalog
from kiosk.engine import Engine, Phase, Policy, State
from kiosk.i18n import Translator
from kiosk.messages import extract
from kiosk.money import display
from kiosk.speech import Line, speakable
from kiosk.speech_clips import Amount, Digits
from kiosk.spoken import changes, closing, qr_countdown, voucher_code

REF = "K0001-000001"
GLOBE = "09171234567"
CODE = "1234567812345670"


def plain(lines: list[str]) -> list[str]:
    """Without the zero-width spaces that mark where Chinese lines may break on screen."""
    return [s.replace("\u200b", "") for s in lines]


def money(minor: int) -> str:
    return display(minor, "PHP")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(DEFAULT_CONFIG.parent / "catalog.toml")


@pytest.fixture
def engine(catalog: Catalog) -> Engine:
    return Engine(catalog, Policy(max_overpay=0, min_note=2000, max_unknown_queries=2))


@pytest.fixture
def tr() -> Translator:
    return Translator(("en", "zh_CN"), "en")


class Visit:
    """Steps the engine and keeps what the kiosk would say at each step."""

    def __init__(self, engine: Engine, tr: Callable[[str], str]) -> None:
        self.engine, self.tr, self.state = engine, tr, State()

    def step(self, *events: ev.Record) -> list[str]:
        said: list[str] = []
        for e in events:
            prev = self.state
            self.state, _ = self.engine.step(prev, e)
            said += changes(prev, self.state, self.tr, money)
        return said


def to_payment(engine: Engine, tr: Callable[[str], str], method: str, product: str = "globe-load",
               amount: int = 5000) -> Visit:
    v = Visit(engine, tr)
    op = engine.catalog.check_number(GLOBE).operator or ""
    v.step(ev.Start(), ev.NumberEntered(GLOBE), ev.ConfirmNumber(True),
           ev.SubscriberChecked(GLOBE, op, tuple(p.id for p in engine.catalog.offers(op))),
           ev.ChooseProduct(product, amount))
    assert v.state.phase is Phase.CHOOSE_PAYMENT
    return v


def test_cash_inserted_and_still_to_pay(engine: Engine, tr: Translator) -> None:
    v = to_payment(engine, tr, "cash")
    assert v.step(ev.ChoosePayment("cash"), ev.ReferenceAllocated(REF)) == [
        "Insert your banknotes", "Still to pay: ₱50.00"]
    assert v.step(ev.NoteEscrowed(2000)) == ["Checking your note of ₱20.00…"]
    assert v.step(ev.NoteCredited(2000)) == ["Inserted so far: ₱20.00", "Still to pay: ₱30.00"]
    assert v.step(ev.DeviceStatus("printer", True)) == []           # nothing changed for her
    assert v.step(ev.NoteEscrowed(2000), ev.NoteCredited(2000))[-1] == "Still to pay: ₱10.00"
    # The last note pays in full: no "still to pay", the top-up starts, then succeeds.
    said = v.step(ev.NoteEscrowed(2000), ev.NoteCredited(2000))
    assert said == ["Checking your note of ₱20.00…", "Inserted so far: ₱60.00",
                    "Topping up, please wait"]
    said = v.step(ev.TopUpSucceeded(REF, "OP1"), ev.VoucherIssued(REF, CODE, 1000))
    assert said == ["Done! Your top-up was sent", "Your change: a voucher for ₱10.00",
                    "To hear the voucher code, press /."]


def test_in_chinese(engine: Engine, tr: Translator) -> None:
    tr.set("zh_CN")
    v = to_payment(engine, tr, "cash")
    said = v.step(ev.ChoosePayment("cash"), ev.ReferenceAllocated(REF))
    assert plain(said) == ["请投入纸币", "还需支付\uff1a₱50.00"]
    assert [speakable(s, "zh_CN", "PHP") for s in said] == ["请投入纸币", "还需支付\uff1a50元"]
    # Each line keeps its English source (for a prompt set or the fallback voice).
    assert isinstance(said[1], Line) and said[1].msgid == "Still to pay: {amount}"
    assert said[1].english == "Still to pay: ₱50.00" and said[1].args == {"amount": 5000}
    assert isinstance(said[1].args["amount"], Amount)
    said = v.step(ev.NoteEscrowed(2000), ev.NoteCredited(2000))
    assert plain(said) == ["正在检验您的 ₱20.00 纸币…", "已投入\uff1a₱20.00",
                           "还需支付\uff1a₱30.00"]


def test_a_note_given_back(engine: Engine, tr: Translator) -> None:
    v = to_payment(engine, tr, "cash")
    v.step(ev.ChoosePayment("cash"), ev.ReferenceAllocated(REF), ev.NoteEscrowed(2000))
    assert v.step(ev.NoteReturned(2000)) == ["Your note was given back."]
    # Too large for what is left: the notice says why it came back, once.
    assert v.step(ev.NoteEscrowed(10000)) == [
        "That note is more than you still need to pay. It was given back."]
    assert v.step(ev.NoteReturned(10000)) == []
    assert v.step(ev.NoteRejected("unknown")) == [
        "That note was not accepted. Please try another one."]


def test_a_failed_top_up_keeps_the_money_as_a_voucher(engine: Engine, tr: Translator) -> None:
    v = to_payment(engine, tr, "cash")
    v.step(ev.ChoosePayment("cash"), ev.ReferenceAllocated(REF))
    v.step(ev.NoteEscrowed(5000), ev.NoteCredited(5000))
    assert v.step(ev.TopUpFailed(REF, "backend.rejected")) == []     # the voucher is made
    said = v.step(ev.VoucherIssued(REF, CODE, 5000))
    assert said == ["Your number was not topped up", "The network operator refused the top-up.",
                    "Your money is safe: it is kept for you as a voucher.",
                    "Your voucher for ₱50.00", "To hear the voucher code, press /."]
    assert not any(CODE[-4:] in s or "5 6 7 0" in s for s in said)   # a secret in public
    # Only when asked: digit by digit, in groups of four.
    asked = voucher_code(v.state, tr)
    assert asked == ["Your voucher code is 1 2 3 4, 5 6 7 8, 1 2 3 4, 5 6 7 0."]
    assert isinstance(asked[0], Line) and isinstance(asked[0].args["code"], Digits)
    v.step(ev.ShowReceipt())
    assert voucher_code(v.state, tr) == asked                         # the receipt screen too
    v.step(ev.Done())
    assert voucher_code(v.state, tr) == []


def test_pending_then_success(engine: Engine, tr: Translator) -> None:
    v = to_payment(engine, tr, "cash")
    v.step(ev.ChoosePayment("cash"), ev.ReferenceAllocated(REF), ev.NoteEscrowed(5000),
           ev.NoteCredited(5000))
    assert v.step(ev.TopUpUnknown(REF)) == [(
        "The network is slow to answer. We are checking; your money is safe. "
        "Please do not leave.")]
    v.step(ev.TopUpUnknown(REF), ev.TopUpUnknown(REF))
    said = v.step(ev.VoucherIssued(REF, CODE, 5000, held=True))
    assert said == ["Your top-up is being processed",
                    "Voucher ₱50.00, valid only if this top-up fails",
                    "To hear the voucher code, press /."]
    assert v.step(ev.TopUpSucceeded(REF, "OP1"))[0] == "Done! Your top-up was sent"
    assert v.step(ev.ShowReceipt()) == [] and v.step(ev.Back()) == []    # not said again


def test_cancelled_before_paying(engine: Engine, tr: Translator) -> None:
    v = to_payment(engine, tr, "cash")
    v.step(ev.ChoosePayment("cash"), ev.ReferenceAllocated(REF))
    assert v.step(ev.Cancel()) == []            # back to the start: the UI says that screen


def test_card_terminal_words_and_a_reversal(engine: Engine, tr: Translator) -> None:
    v = to_payment(engine, tr, "card")
    assert v.step(ev.ChoosePayment("card")) == ["Pay by card"]
    tr.set("zh_CN")
    said = v.step(ev.ReferenceAllocated(REF), ev.CardText("Please wait - Incorrect PIN"))
    assert said == [tr("Please wait"), tr("Incorrect PIN")] and said[0] != "Please wait"
    tr.set("en")
    assert v.step(ev.CardText("Code {0} {x")) == ["Code {0} {x"]         # the terminal's, as is
    v.step(ev.CardApproved(REF, 5000, "A1", "T1", "R1"), ev.CardCompleted(REF))
    v.step(ev.TopUpFailed(REF, "backend.rejected"))
    assert v.step(ev.CardReversed(REF)) == [
        "Your number was not topped up", "The network operator refused the top-up.",
        "Your card payment of ₱50.00 was reversed: nothing was charged."]


def test_qr_countdown_warns_at_30_and_10_seconds(tr: Translator) -> None:
    heard: list[str] = []
    prev = None
    for left in range(120, -1, -1):
        heard += qr_countdown(prev, left, tr)
        prev = left
    assert heard == ["30 seconds left to pay.", "10 seconds left to pay."]
    assert qr_countdown(None, 20, tr) == []                   # opened late: no stale warning
    assert qr_countdown(30.4, 29.6, tr) == ["30 seconds left to pay."]
    assert speakable(heard[0], "en", "PHP") == "30 seconds left to pay."


def test_qr_code_ready(engine: Engine, tr: Translator) -> None:
    v = to_payment(engine, tr, "qr")
    v.step(ev.ChoosePayment("qr"))
    assert v.step(ev.ReferenceAllocated(REF)) == []
    assert v.step(ev.QrOrderCreated(REF, "000201...", 1e10)) == ["Scan to pay with your wallet"]


def test_closing_prompt(tr: Translator) -> None:
    assert closing(20, tr) == ["Need more time?", "This screen will close in 20 s."]
    said = closing(15, tr, money_kept=True)
    assert said[-1] == "The money you inserted will be kept for you as a voucher."
    assert speakable(said[1], "en", "PHP") == "This screen will close in 15 seconds."
    tr.set("zh_CN")
    assert plain(closing(20, tr))[1] == "本页面将在 20 秒后关闭。"


def test_the_spoken_strings_are_extracted_for_translation() -> None:
    found = extract()
    for msgid in ("Inserted so far: {amount}", "Your note was given back.",
                  "To hear the voucher code, press {key}.", "Your voucher code is {code}.",
                  "{n} seconds left to pay."):
        assert any(place.startswith("kiosk/spoken.py:") for place in found.get(msgid, [])), msgid
